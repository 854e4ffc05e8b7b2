"""The docs render as written: every markdown table keeps all of its rows on GitHub (issue 23).

GitHub renders markdown with cmark-gfm; ``cmarkgfm`` is its Python binding. A
blank line inside a table ends it, and the rows after it render as a
paragraph of pipes: the source still looks like a table, the page does not.
So each run of table lines in the source (outside code fences) must come out
as one ``<table>`` with one ``<tr>`` per line, the delimiter row excepted.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import click
import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from provisioner.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DELIMITER_ROW = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class SourceTable:
    """A run of consecutive lines starting with ``|`` outside code fences."""

    first_line: int
    lines: tuple[str, ...]

    @property
    def rows(self) -> int:
        """The rows GitHub should show: every line but the delimiter row."""
        return sum(1 for line in self.lines if not DELIMITER_ROW.match(line))


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of ``text`` outside fenced code blocks."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif (
            fence is not None
            and match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= len(fence)
        ):
            if not line.strip()[len(match.group(1)) :].strip():
                fence = None
        elif fence is None:
            out.append((number, line))
    return out


def source_tables(text: str) -> list[SourceTable]:
    """Every run of table lines in the source, blank-line breaks included as separate runs."""
    tables: list[SourceTable] = []
    run: list[tuple[int, str]] = []
    previous = 0
    for number, line in [*prose_lines(text), (-1, "")]:
        is_row = line.lstrip().startswith("|")
        if is_row and (not run or number == previous + 1):
            run.append((number, line))
        else:
            if run:
                tables.append(SourceTable(run[0][0], tuple(row for _, row in run)))
            run = [(number, line)] if is_row else []
        previous = number
    return tables


class _TableRows(HTMLParser):
    """The number of ``<tr>`` of each ``<table>`` in rendered HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append(0)
        elif tag == "tr":
            self.tables[-1] += 1


def rendered_tables(text: str) -> list[int]:
    """Rows per table as GitHub renders ``text`` (cmark-gfm with GitHub's extensions)."""
    html = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    parser = _TableRows()
    parser.feed(html)
    return parser.tables


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_renders_with_all_of_its_rows(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = [(table.first_line, table.rows) for table in source_tables(text)]
    rendered = rendered_tables(text)
    assert [rows for _, rows in expected] == rendered, (
        f"{path.name}: source tables (first line, rows) {expected} render as tables of {rendered} rows; "
        "a blank line or a missing delimiter row breaks a table on GitHub"
    )


def test_a_blank_line_inside_a_table_is_caught() -> None:
    broken = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n"
    assert [t.rows for t in source_tables(broken)] == [2, 1]
    assert rendered_tables(broken) == [2]


def test_tables_inside_code_fences_are_not_tables() -> None:
    text = "````markdown\n| a |\n|---|\n| 1 |\n````\n\n```text\n| x |\n```\n"
    assert source_tables(text) == [] and rendered_tables(text) == []


def test_the_guarantees_page_lists_every_promise_of_the_readme() -> None:
    def promises(text: str) -> set[str]:
        return set(re.findall(r"^\| (\d+[a-z]?) \|", text, flags=re.M))

    readme = promises(DOCS[0].read_text(encoding="utf-8"))
    assert {"1", "10", "11", "12", "13"} <= readme
    assert promises((ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")) == readme


# --- every documented command is real, and the ones on the embedded sandbox run ----------

SHELL_BLOCK = re.compile(r"^(`{3,})(?:sh|console|bash|shell)\n(.*?)^\1[ \t]*$", re.S | re.M)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Setup steps of a block that a test run already has done (a venv, an install) or cannot do.
SKIPPED_STEP = re.compile(r"^(python3? -m venv|\S*pip install|\S*python -m pytest)\b")
FAKE_BIN = {"chromium": "#!/bin/sh\nexit 0\n"}  # the screenshot step: no browser in the suite


@dataclass(frozen=True)
class ShellBlock:
    """A fenced sh/console block of a markdown file."""

    where: str  # file:line, for messages
    text: str

    def lines(self) -> list[str]:
        """Its command lines: continuations joined, a console block's ``$`` prompts only."""
        joined = self.text.replace("\\\n", " ")
        lines = joined.splitlines()
        if any(line.startswith("$ ") for line in lines):
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        return [line for line in lines if line.strip()]

    def invocations(self) -> list[list[str]]:
        """The arguments of each ``provisioner`` command in the block (after ``provisioner``)."""
        found = []
        for line in self.lines():
            for step in re.split(r"&&|;|\|\|?", line):
                words = shlex.split(step, comments=True)
                while words and ASSIGNMENT.match(words[0]):
                    words = words[1:]
                if words[:1] and words[0].endswith("provisioner"):
                    found.append(words[1:])
        return found


def shell_blocks() -> list[ShellBlock]:
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in SHELL_BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            blocks.append(ShellBlock(f"{path.relative_to(ROOT)}:{line}", match.group(2)))
    return blocks


BLOCKS = shell_blocks()
INVOCATIONS = [(block.where, args) for block in BLOCKS for args in block.invocations()]


def parse_problem(args: list[str]) -> str | None:
    """Why click would refuse ``provisioner ARGS`` (command, options, choices), or None.

    Parsed with the commands' own ``make_context``, as a real run would be, but
    nothing is invoked. A path that must exist is the one error accepted: the
    docs name files of the reader's own repository.
    """
    context = click.Context(cli, info_name="provisioner")
    group: click.Group = cli
    words = list(args)
    while True:
        if not words or words[0] not in group.list_commands(context):
            return f"no such command: {words[:1]}"
        command = group.get_command(context, words[0])
        assert command is not None
        try:
            context = command.make_context(words[0], words[1:], parent=context)
        except click.BadParameter as error:
            if isinstance(getattr(error.param, "type", None), click.Path):
                return None
            return error.format_message()
        except click.UsageError as error:
            return error.format_message()
        if not isinstance(command, click.Group):
            return None
        # The subcommand's name: ``_protected_args`` since click 8.2, ``protected_args`` before.
        protected = vars(context).get("_protected_args", vars(context).get("protected_args", []))
        group, words = command, [*protected, *context.args]


def test_the_docs_show_the_commands_this_test_checks() -> None:
    commands = {args[0] for _, args in INVOCATIONS}
    assert {"apply", "plan", "export", "review"} <= commands
    assert any("docs/review.md" in where for where, _ in INVOCATIONS)


@pytest.mark.parametrize("where, args", INVOCATIONS, ids=[f"{w} {' '.join(a[:2])}" for w, a in INVOCATIONS])
def test_every_documented_command_parses(where: str, args: list[str]) -> None:
    assert parse_problem(args) is None, f"{where}: provisioner {shlex.join(args)}"


def test_a_wrong_flag_or_choice_is_caught() -> None:
    assert parse_problem(["plan", "-c", "a.yaml", "--bogus"]) is not None
    assert parse_problem(["plan", "-c", "a.yaml", "--format", "yaml"]) is not None
    assert parse_problem(["sandbox", "serve", "--db", "x.db", "--port", "8765"]) is None
    assert parse_problem(["apply", "-c", "a.yaml", "--plan", "missing.json"]) is None


def sandbox_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment whose ``provisioner`` is this checkout's, and whose browser is a stub."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"provisioner": f'#!/bin/sh\nexec "{sys.executable}" -m provisioner "$@"\n', **FAKE_BIN}
    for name, script in scripts.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_", "DEEPGRAM_"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        NO_COLOR="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Docs Test",
        GIT_AUTHOR_EMAIL="docs@example.com",
        GIT_COMMITTER_NAME="Docs Test",
        GIT_COMMITTER_EMAIL="docs@example.com",
    )
    return env


def runnable_script(block: ShellBlock) -> str:
    """The block as a script: setup steps a test run has done are skipped, the venv's binary is PATH's."""
    out = []
    for line in block.lines():
        steps = [s.strip() for s in line.replace(".venv/bin/provisioner", "provisioner").split("&&")]
        out.append(" && ".join("true" if SKIPPED_STEP.match(step) else step for step in steps))
    return "\n".join(out) + "\n"


SANDBOX_BLOCKS = [block for block in BLOCKS if "--sandbox" in block.text]


def test_the_review_recipe_and_the_quickstart_are_among_the_blocks_run() -> None:
    where = [block.where for block in SANDBOX_BLOCKS]
    assert any(w.startswith("README.md") for w in where) and any(
        w.startswith("docs/review.md") for w in where
    )


@pytest.mark.parametrize("block", SANDBOX_BLOCKS, ids=[b.where for b in SANDBOX_BLOCKS])
def test_every_block_on_the_embedded_sandbox_runs(block: ShellBlock, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    (work / "docs").mkdir()
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", runnable_script(block)],
        cwd=work,
        env=sandbox_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{block.where} fails as written:\n{result.stdout}\n{result.stderr}"
    assert "Error" not in result.stderr, result.stderr
    assert list(work.rglob("*.db")), "the block ran no command on the embedded sandbox"


QUICKSTART_KEYS = {
    "DEEPGRAM_KEY_DEVELOPMENT": "dev-key",
    "DEEPGRAM_KEY_STAGING": "staging-key",
    "DEEPGRAM_KEY_PRODUCTION": "prod-key",
}


def test_the_plan_out_hint_works_as_copied_when_the_plan_makes_a_secret(tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {**sandbox_env(tmp_path), **QUICKSTART_KEYS}
    quickstart = (work / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    # The organization before the webhooks were added: the plan then creates three, each with
    # a signing secret the server shows only once.
    before = re.sub(r"    webhooks:\n(?:      .*\n)+", "", quickstart)
    assert before != quickstart
    (work / "before.yaml").write_text(before, encoding="utf-8")

    def run(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", shlex.join(words)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = run("provisioner", "apply", "-c", "before.yaml", "--sandbox", "sandbox.db", "--auto-approve")
    assert first.returncode == 0, first.stderr
    saved = run(
        "provisioner",
        "plan",
        "-c",
        "examples/quickstart.yaml",
        "--sandbox",
        "sandbox.db",
        "--out",
        "plan.json",
    )
    assert saved.returncode == 0, saved.stderr
    hint = re.search(r"apply it with `([^`]+)`", saved.stderr)
    assert hint is not None, saved.stderr
    assert "--secrets-dir secrets" in hint.group(1)

    applied = subprocess.run(
        ["bash", "-e", "-c", hint.group(1)], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert applied.returncode == 0, f"the hint `{hint.group(1)}` fails as copied:\n{applied.stderr}"
    assert "Applied 3, failed 0, skipped 0." in applied.stdout
    assert len([f for f in (work / "secrets").rglob("*") if f.is_file()]) == 3


# The README's sample plans: the quickstart applied, then edited as the README says
# (eli promoted and given production access for an incident, frank invited, dana moved off staging).
SAMPLE_EDITS = (
    (
        "  - {email: eli@example.com, role: developer}\n",
        "  - {email: eli@example.com, role: admin}\n  - {email: frank@example.com, role: developer}\n",
    ),
    (
        '  engineering: [dana@example.com, eli@example.com, "@ops"]',
        '  engineering: [dana@example.com, eli@example.com, frank@example.com, "@ops"]',
    ),
    (
        '  staging: {members: ["@engineering"]}',
        '  staging: {members: [eli@example.com, frank@example.com, "@ops"]}',
    ),
    (
        '        - {user: dana@example.com, expires: 2030-01-31, reason: "launch week on-call"}\n',
        '        - {user: dana@example.com, expires: 2030-01-31, reason: "launch week on-call"}\n'
        '        - {user: eli@example.com, expires: 2030-12-31, reason: "INC-4711 on-call"}\n',
    ),
)


def _readme_block(opening: str) -> str:
    readme = DOCS[0].read_text(encoding="utf-8")
    fence = opening.split("markdown")[0].split("text")[0]
    start = readme.index(opening + "\n") + len(opening) + 1
    return readme[start : readme.index("\n" + fence + "\n", start) + 1]


def test_the_readme_sample_plans_are_what_a_real_run_prints(tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {**sandbox_env(tmp_path), **QUICKSTART_KEYS}

    def run(*words: str) -> str:
        done = subprocess.run(
            ["provisioner", *words], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    config = "examples/quickstart.yaml"
    run("apply", "-c", config, "--sandbox", "sandbox.db", "--secrets-dir", "secrets", "--auto-approve")
    text = (work / config).read_text(encoding="utf-8")
    for before, after in SAMPLE_EDITS:
        assert before in text, before
        text = text.replace(before, after)
    (work / config).write_text(text, encoding="utf-8")

    # The digest covers the organization's id, which each new sandbox draws at random.
    def same(text: str) -> str:
        return re.sub(r"sha256:[0-9a-f]{64}", "sha256:…", text)

    assert same(_readme_block("```text")) == same(run("plan", "-c", config, "--sandbox", "sandbox.db"))
    markdown = run("plan", "-c", config, "--sandbox", "sandbox.db", "--format", "markdown")
    assert same(_readme_block("````markdown")) == same(markdown)


def test_the_readme_commands_section_names_every_option_of_apply() -> None:
    readme = DOCS[0].read_text(encoding="utf-8")
    section = readme[readme.index("## Commands") : readme.index("\n## ", readme.index("## Commands") + 1)]
    apply = cli.get_command(click.Context(cli), "apply")
    assert apply is not None
    global_options = {"-v", "--verbose", "--color", "--help", "-h"}

    def named(option: click.Option) -> bool:
        return any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", section) for o in option.opts)

    options = [p for p in apply.params if isinstance(p, click.Option) and not set(p.opts) & global_options]
    assert {"--secrets-dir", "--secrets-command", "--rotate-only", "--plan"} <= {
        o for p in options for o in p.opts
    }
    assert [p.opts for p in options if not named(p)] == []
    plan_row = next(
        line for line in section.splitlines() if line.startswith("| `provisioner apply -c PATH --plan")
    )
    assert "without asking" in plan_row


def test_no_doc_or_example_advises_one_c_per_file_of_a_split_config() -> None:
    """Each -c is a separate organization; a config split over files is one folder given to -c."""
    texts = {p: p.read_text(encoding="utf-8") for p in [*DOCS, *sorted((ROOT / "examples").rglob("*.y*ml"))]}
    wrong = re.compile(
        r"repeat -c for a config split|list every file of a split config|\[-c, [^]]+, -c, [^]]+\]"
    )
    assert [str(p.relative_to(ROOT)) for p, text in texts.items() if wrong.search(text)] == []
    assert "-c, access/]" in texts[ROOT / "docs" / "ci.md"]
