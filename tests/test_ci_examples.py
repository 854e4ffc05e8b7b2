"""The CI examples only use commands and flags the CLI really has.

Each example is parsed as YAML; every ``provisioner ...`` invocation in its
shell steps (GitHub ``run``, GitLab ``script``/``before_script``/
``after_script``, the pre-commit hook's ``entry`` + ``args``) is checked by
click introspection of ``provisioner.cli.main.cli``: the subcommand exists,
each ``-x``/``--flag`` is one of its options, and a literal value given to a
``click.Choice`` option is one of its choices. A renamed flag thus breaks this
test instead of a user's pipeline.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import click
import pytest
import yaml

from provisioner.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
PRE_COMMIT = ROOT / ".pre-commit-hooks.yaml"

# Tokens after which a shell word is in command position again.
_COMMAND_STARTS = {";", "&&", "||", "|", "(", "then", "do", "else", "if", "!", "time", "exec"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


@dataclass(frozen=True)
class Invocation:
    """One ``provisioner`` command line found in an example."""

    source: str  # file and job, for the failure message
    argv: tuple[str, ...]  # the words after ``provisioner``

    def __str__(self) -> str:
        return f"{self.source}: provisioner {shlex.join(self.argv)}"


# --------------------------------------------------------------------------
# Finding the shell scripts in each kind of file


def _github_scripts(doc: dict) -> Iterator[tuple[str, str]]:
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            # Only ``run`` is shell; ``with: script:`` of github-script is JavaScript.
            if "run" in step:
                yield f"{GITHUB.name}:{job_name}", step["run"]


def _gitlab_scripts(doc: dict) -> Iterator[tuple[str, str]]:
    for job_name, job in doc.items():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            lines = job.get(key) or []
            for line in [lines] if isinstance(lines, str) else lines:
                yield f"{GITLAB.name}:{job_name}", line


def _without_heredocs(script: str) -> tuple[str, list[str]]:
    """The script with here-document bodies removed, and those bodies.

    The bodies are another language (Python here) and would confuse shlex.
    """
    kept: list[str] = []
    bodies: list[str] = []
    lines = iter(script.splitlines())
    for line in lines:
        kept.append(line)
        match = _HEREDOC.search(line)
        if match:
            body = []
            for inner in lines:
                if inner.strip() == match.group(2):
                    break
                body.append(inner)
            bodies.append("\n".join(body))
    return "\n".join(kept), bodies


def _ends_command(word: str) -> bool:
    """A separator, a redirection (``>``, ``2>``) or a pipe ends the argument list."""
    redirect = word[:1].isdigit() and word[1:2] in ("<", ">")
    return word in _COMMAND_STARTS or word[:1] in tuple("<>&|;()") or redirect


def _invocations(source: str, script: str) -> Iterator[Invocation]:
    shell, _ = _without_heredocs(script)
    shell = shell.replace("\\\n", " ")
    for line in shell.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        at_start = True
        for i, token in enumerate(tokens):
            if at_start and _ASSIGNMENT.match(token):
                continue  # FOO=bar provisioner ...
            if at_start and token == "provisioner":
                argv = []
                for word in tokens[i + 1 :]:
                    if _ends_command(word):
                        break
                    argv.append(word)
                yield Invocation(source, tuple(argv))
            at_start = token in _COMMAND_STARTS


def invocations(path: Path) -> list[Invocation]:
    doc = yaml.safe_load(path.read_text())
    if path == PRE_COMMIT:
        found = []
        for hook in doc:
            program, *entry = shlex.split(hook["entry"])
            if program == "provisioner":
                argv = tuple(entry + hook.get("args", []))
                found.append(Invocation(f"{path.name}:{hook['id']}", argv))
        return found
    scripts = _github_scripts(doc) if path == GITHUB else _gitlab_scripts(doc)
    return [inv for source, script in scripts for inv in _invocations(source, script)]


# --------------------------------------------------------------------------
# Checking an invocation against the click command tree


def problems(invocation: Invocation) -> list[str]:
    """What is wrong with one invocation; empty when every word is known."""
    argv = list(invocation.argv)
    group_options = {o for p in cli.params for o in getattr(p, "opts", [])}
    while argv and argv[0].startswith("-"):
        if argv.pop(0).split("=")[0] not in group_options:
            return [f"{invocation}: unknown global option"]
    if not argv:
        return [f"{invocation}: no subcommand"]
    name, args = argv[0], argv[1:]
    command = cli.commands.get(name)
    if command is None:
        return [f"{invocation}: no subcommand {name!r}"]
    options: dict[str, click.Option] = {
        opt: param
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts + param.secondary_opts
    }
    found: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not word.startswith("-") or word == "-":
            continue  # a value or a positional argument
        flag, _, inline = word.partition("=")
        param = options.get(flag)
        if param is None:
            found.append(f"{invocation}: 'provisioner {name}' has no option {flag}")
            continue
        if param.is_flag or param.count:
            continue
        value = inline if inline else (args[i] if i < len(args) else None)
        if not inline:
            i += 1
        if value is None:
            found.append(f"{invocation}: {flag} needs a value")
        elif isinstance(param.type, click.Choice) and "$" not in value:
            if value not in param.type.choices:
                found.append(f"{invocation}: {flag} {value!r} not in {list(param.type.choices)}")
    return found


# --------------------------------------------------------------------------
# The tests


def test_the_extractor_finds_commands_in_command_position_only() -> None:
    script = (
        "python -m pip install provisioner\n"
        "set +e; FOO=1 provisioner plan -c a.yaml --format markdown > plan.md 2> err\n"
        "echo provisioner apply\n"
        "if provisioner drift -c a.yaml; then echo ok; fi\n"
        "python3 - <<'PY'\nprint('provisioner apply --nope')\nPY\n"
        "provisioner apply -c a.yaml \\\n  --auto-approve  # trailing comment --ignored\n"
    )
    found = [inv.argv for inv in _invocations("t", script)]
    assert found == [
        ("plan", "-c", "a.yaml", "--format", "markdown"),
        ("drift", "-c", "a.yaml"),
        ("apply", "-c", "a.yaml", "--auto-approve"),
    ]


def test_the_checker_reports_unknown_subcommands_flags_and_choices() -> None:
    assert problems(Invocation("t", ("frobnicate",))) == [
        "t: provisioner frobnicate: no subcommand 'frobnicate'"
    ]
    assert problems(Invocation("t", ("validate", "--no-such-flag"))) == [
        "t: provisioner validate --no-such-flag: "
        "'provisioner validate' has no option --no-such-flag"
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (GITHUB, {"validate", "plan", "apply", "drift"}),
        (GITLAB, {"validate", "plan", "apply", "drift"}),
        (PRE_COMMIT, {"validate"}),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_every_provisioner_command_in_the_examples_is_real(path: Path, expected: set[str]) -> None:
    found = invocations(path)
    # Guard against a vacuous pass: the extractor must see the commands we wrote.
    assert {inv.argv[0] for inv in found} == expected
    issues = [issue for inv in found for issue in problems(inv)]
    assert issues == []


def test_the_gitops_contract_of_the_examples() -> None:
    """The properties the examples exist to show, stated once."""
    for path in (GITHUB, GITLAB):
        by_command = {inv.argv[0]: set(inv.argv) for inv in invocations(path)}
        assert {"--format", "github" if path == GITHUB else "text"} <= by_command["validate"]
        assert {"--format", "markdown", "--detailed-exitcode"} <= by_command["plan"]
        assert {"--auto-approve", "--audit-log"} <= by_command["apply"]
        assert "--force" not in by_command["apply"]
        assert "--audit-log" in by_command["drift"]
        text = path.read_text()
        assert "<!-- provisioner-plan -->" in text  # the plan comment is updated, not repeated
        assert "RECALL_API_KEY" in text and "RECALL_API_KEY=" not in text  # key only from env

    github = yaml.safe_load(GITHUB.read_text())
    triggers = github[True]  # YAML 1.1 reads the key `on` as a boolean
    assert {"pull_request", "push", "schedule"} <= set(triggers)
    jobs = github["jobs"]
    serial = {"group": "provisioner-organization", "cancel-in-progress": False}
    assert jobs["apply"]["concurrency"] == serial
    assert jobs["drift"]["concurrency"] == jobs["apply"]["concurrency"]
    secret = "${{ secrets.RECALL_API_KEY }}"
    for job in ("plan", "apply", "drift"):
        (step,) = [s for s in jobs[job]["steps"] if "provisioner " + job in s.get("run", "")]
        assert step["env"] == {"RECALL_API_KEY": secret}

    gitlab = yaml.safe_load(GITLAB.read_text())
    assert gitlab["apply"]["resource_group"] == gitlab["drift"]["resource_group"]


def test_the_python_embedded_in_the_gitlab_example_compiles() -> None:
    gitlab = yaml.safe_load(GITLAB.read_text())
    bodies = [body for line in gitlab["plan"]["script"] for body in _without_heredocs(line)[1]]
    assert len(bodies) == 1
    tree = ast.parse(bodies[0])
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert "<!-- provisioner-plan -->" in strings


def test_the_pre_commit_hook_validates_a_path_not_the_changed_files() -> None:
    (hook,) = yaml.safe_load(PRE_COMMIT.read_text())
    assert hook["id"] == "provisioner-validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    assert hook["args"][0] == "-c"
    assert re.search(hook["files"], "access.yaml") and not re.search(hook["files"], "README.md")
