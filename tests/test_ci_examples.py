"""The CI examples only use commands and flags the CLI really has, and keep their promises.

Each example is parsed as YAML; every ``provisioner ...`` invocation in its
shell steps (GitHub ``run``, GitLab ``script``/``before_script``/
``after_script``, the pre-commit hook's ``entry`` + ``args``) is checked by
click introspection of ``provisioner.cli.main.cli``: the subcommand exists,
each ``-x``/``--flag`` is one of its options, and a literal value given to a
``click.Choice`` option is one of its choices. A renamed flag thus breaks this
test instead of a user's pipeline.

The promises (issue 10 promise 7, issue 11 item 4, issue 17): the examples
install only a pinned build of this project; plan and drift use a developer
key and only the apply job, in its protected environment, gets the admin key;
a queued drift check cannot cancel a pending apply; the audit-log cache key
includes the run attempt; the merge job pins the apply to the digest of the
reviewed plan comment, posts the new plan when they differ, and documents the
emergency override.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml

from provisioner import DISTRIBUTION, __version__
from provisioner.cli.main import cli
from provisioner.service.apply import DIFFERS

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
ROTATE = ROOT / "examples" / "ci" / "rotate-api-keys.yml"
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
    scripts = _github_scripts(doc) if path in (GITHUB, ROTATE) else _gitlab_scripts(doc)
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
    command = cli.get_command(click.Context(cli), name)  # commands load lazily
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
        "t: provisioner validate --no-such-flag: 'provisioner validate' has no option --no-such-flag"
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (GITHUB, {"validate", "plan", "apply", "drift", "review"}),
        (GITLAB, {"validate", "plan", "apply", "drift", "review"}),
        (PRE_COMMIT, {"validate"}),
        (ROTATE, {"apply"}),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_every_provisioner_command_in_the_examples_is_real(path: Path, expected: set[str]) -> None:
    found = invocations(path)
    # Guard against a vacuous pass: the extractor must see the commands we wrote.
    assert {inv.argv[0] for inv in found} == expected
    issues = [issue for inv in found for issue in problems(inv)]
    assert issues == []


def _by_command(path: Path) -> dict[str, list[set[str]]]:
    found: dict[str, list[set[str]]] = {}
    for inv in invocations(path):
        found.setdefault(inv.argv[0], []).append(set(inv.argv))
    return found


def test_the_gitops_contract_of_the_examples() -> None:
    """The properties the examples exist to show, stated once."""
    for path in (GITHUB, GITLAB):
        by_command = _by_command(path)
        assert all({"--format", "github" if path == GITHUB else "text"} <= v for v in by_command["validate"])
        assert any({"--format", "markdown", "--detailed-exitcode"} <= v for v in by_command["plan"])
        assert all({"--auto-approve", "--audit-log"} <= v for v in by_command["apply"])
        assert all("--force" not in v for v in by_command["apply"])
        assert all("--audit-log" in v for v in by_command["drift"])
        text = path.read_text()
        assert "<!-- provisioner-plan -->" in text  # the plan comment is updated, not repeated
        assert "RECALL_API_KEY" in text and "RECALL_API_KEY=" not in text  # key only from env

    github = yaml.safe_load(GITHUB.read_text())
    triggers = github[True]  # YAML 1.1 reads the key `on` as a boolean
    assert {"pull_request", "push", "schedule", "workflow_dispatch"} <= set(triggers)


# --------------------------------------------------------------------------
# Least privilege (issue 10, promise 7)


def _github_key_steps(jobs: dict) -> dict[str, set[str]]:
    """Job name -> the secrets that its steps put into RECALL_API_KEY."""
    keys: dict[str, set[str]] = {}
    for name, job in jobs.items():
        for step in job.get("steps", []):
            if "RECALL_API_KEY" in (step.get("env") or {}):
                keys.setdefault(name, set()).add(step["env"]["RECALL_API_KEY"])
    return keys


def test_github_plan_and_drift_use_a_developer_key_and_only_apply_gets_the_admin_key() -> None:
    text = GITHUB.read_text()
    doc = yaml.safe_load(text)
    jobs = doc["jobs"]
    developer, admin = "${{ secrets.RECALL_DEVELOPER_KEY }}", "${{ secrets.RECALL_ADMIN_KEY }}"
    assert _github_key_steps(jobs) == {
        "plan": {developer},
        "drift": {developer},
        "review": {developer},
        "apply": {admin},
    }
    # Every step that calls the API has the key; no step or workflow-level env has it otherwise.
    for name, job in jobs.items():
        for step in job.get("steps", []):
            if re.search(r"\bprovisioner (plan|apply|drift|review)\b", step.get("run", "")):
                assert "RECALL_API_KEY" in step.get("env", {}), (name, step.get("name"))
    assert "RECALL_API_KEY" not in doc.get("env", {})
    # The admin key is an environment secret: only the job in the protected environment names it.
    assert jobs["apply"]["environment"] == "access"
    assert [name for name, job in jobs.items() if "environment" in job] == ["apply"]
    assert [name for name, job in jobs.items() if "RECALL_ADMIN_KEY" in yaml.safe_dump(job)] == ["apply"]
    assert "secrets.RECALL_API_KEY" not in text


def test_gitlab_plan_and_drift_use_a_developer_key_and_only_apply_gets_the_admin_key() -> None:
    doc = yaml.safe_load(GITLAB.read_text())
    jobs = {name: job for name, job in doc.items() if isinstance(job, dict) and "stage" in job}
    assert jobs["plan"]["variables"] == {"RECALL_API_KEY": "$RECALL_DEVELOPER_KEY"}
    assert jobs["drift"]["variables"] == {"RECALL_API_KEY": "$RECALL_DEVELOPER_KEY"}
    assert jobs["review"]["variables"] == {"RECALL_API_KEY": "$RECALL_DEVELOPER_KEY"}
    assert jobs["apply"]["variables"] == {"RECALL_API_KEY": "$RECALL_ADMIN_KEY"}
    assert jobs["apply"]["environment"]["name"] == "access"
    assert [name for name, job in jobs.items() if "environment" in job] == ["apply"]
    assert [name for name, job in jobs.items() if "RECALL_ADMIN_KEY" in yaml.safe_dump(job)] == ["apply"]
    assert "RECALL_API_KEY" not in doc["variables"] and "RECALL_ADMIN_KEY" not in yaml.safe_dump(
        doc["default"]
    )
    # The note token may be readable by MR authors: the example asks for the Reporter role.
    assert "role Reporter" in GITLAB.read_text()


def test_a_queued_drift_check_cannot_cancel_a_pending_apply() -> None:
    jobs = yaml.safe_load(GITHUB.read_text())["jobs"]
    # GitHub keeps one pending run per concurrency group and cancels the older
    # pending one: apply and drift must not share a group.
    assert jobs["apply"]["concurrency"] == {"group": "provisioner-apply", "cancel-in-progress": False}
    assert jobs["drift"]["concurrency"]["group"] != jobs["apply"]["concurrency"]["group"]
    assert jobs["drift"]["concurrency"]["cancel-in-progress"] is False

    # GitLab queues resource-group jobs and never cancels them; the order
    # (process_mode=oldest_first) is set through the API and documented.
    gitlab_text = GITLAB.read_text()
    gitlab = yaml.safe_load(gitlab_text)
    assert gitlab["apply"]["resource_group"] == gitlab["drift"]["resource_group"]
    assert f"resource_groups/{gitlab['apply']['resource_group']}" in gitlab_text
    assert "process_mode=oldest_first" in gitlab_text
    assert gitlab["apply"]["interruptible"] is False and gitlab["drift"]["interruptible"] is False


def test_the_audit_log_cache_key_includes_the_run_attempt() -> None:
    jobs = yaml.safe_load(GITHUB.read_text())["jobs"]
    cache_steps = [
        step
        for job in jobs.values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("actions/cache") and step["with"]["path"] == "audit.jsonl"
    ]
    assert len(cache_steps) == 4  # apply restores and saves, drift and review restore
    for step in cache_steps:
        assert "${{ github.run_attempt }}" in step["with"]["key"]


def test_the_plan_jobs_keep_the_state_snapshot_between_runs() -> None:
    """Issue 24: each plan job plans with --cache-dir and persists that folder in the CI cache."""
    plan = yaml.safe_load(GITHUB.read_text())["jobs"]["plan"]
    steps = plan["steps"]
    folder = ".provisioner-cache"
    cached = [
        s for s in steps if str(s.get("uses", "")).startswith("actions/cache") and s["with"]["path"] == folder
    ]
    assert [s["uses"].split("@")[0] for s in cached] == ["actions/cache/restore", "actions/cache/save"]
    assert all("${{ github.run_attempt }}" in s["with"]["key"] for s in cached)
    (run,) = [s["run"] for s in steps if s.get("name") == "Plan"]
    assert f'provisioner plan -c "$PROVISIONER_CONFIG" --cache-dir {folder}' in run
    # Restored before the plan, saved after it.
    names = [s.get("name") for s in steps]
    assert (
        names.index("Restore the state snapshot")
        < names.index("Plan")
        < names.index("Save the state snapshot")
    )
    gitlab = yaml.safe_load(GITLAB.read_text())["plan"]
    assert {"key": "provisioner-snapshot", "paths": [folder], "policy": "pull-push"} in gitlab["cache"]
    assert any(f"--cache-dir {folder}" in line for line in gitlab["script"])


# --------------------------------------------------------------------------
# An installable name (issue 11, item 4)

_PIP_INSTALL = re.compile(r"\bpip install\b(.*)")
PINNED_REQUIREMENT = f"{DISTRIBUTION} @ git+${{PROVISIONER_REPO}}@${{PROVISIONER_COMMIT}}"


def _shell_lines(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    if path == GITHUB:
        scripts = [script for _, script in _github_scripts(doc)]
    else:
        scripts = [script for _, script in _gitlab_scripts(doc)]
        scripts += list(doc.get("default", {}).get("before_script", []))
    return [line for script in scripts for line in _without_heredocs(script)[0].splitlines()]


def test_the_distribution_is_named_recall_provisioner() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "recall-provisioner"
    assert project["scripts"] == {"provisioner": "provisioner.cli.main:main"}
    assert importlib.metadata.version(DISTRIBUTION) == __version__ == project["version"]


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_the_examples_install_only_a_pinned_build_of_this_project(path: Path) -> None:
    installs = [m.group(1) for line in _shell_lines(path) for m in [_PIP_INSTALL.search(line)] if m]
    assert installs, "the example installs nothing?"
    for arguments in installs:
        requirements = [w for w in shlex.split(arguments) if not w.startswith("-")]
        assert requirements == [PINNED_REQUIREMENT], arguments
    doc = yaml.safe_load(path.read_text())
    variables = doc["env"] if path == GITHUB else doc["variables"]
    assert re.fullmatch(r"[0-9a-f]{40}", variables["PROVISIONER_COMMIT"])  # a full commit, not a tag
    assert re.fullmatch(r"https://github\.com/[^/\s]+/provisioner", variables["PROVISIONER_REPO"])
    # The placeholder commit is refused before anything is installed.
    assert "0" * 40 + ")" in path.read_text() or "!= " + "0" * 40 in path.read_text()
    assert "provisioner==" not in path.read_text()


# --------------------------------------------------------------------------
# What was reviewed is what gets applied (issue 17)


def test_every_apply_in_the_examples_is_pinned_to_a_reviewed_digest() -> None:
    for path in (GITHUB, GITLAB):
        applies = _by_command(path)["apply"]
        assert len(applies) == 3
        assert all(("--expect" in v) != ("--expect-file" in v) for v in applies)
        assert sum("--expect-file" in v for v in applies) == 1  # the merge: from the plan comment
        assert sum("--override-expect" in v for v in applies) == 1  # the emergency override
        assert all("--override-expect" not in v or "--expect" in v for v in applies)


def test_github_merge_job_reads_the_digest_of_the_bot_s_last_plan_comment() -> None:
    apply = yaml.safe_load(GITHUB.read_text())["jobs"]["apply"]
    steps = {step.get("id"): step for step in apply["steps"]}
    find = steps["reviewed"]["run"]
    assert 'gh api "repos/$GITHUB_REPOSITORY/commits/$GITHUB_SHA/pulls"' in find
    assert "issues/$pr/comments" in find and "--paginate" in find
    assert '.user.login == "github-actions[bot]"' in find and "<!-- provisioner-plan -->" in find
    assert "> reviewed.md" in find
    assert "--expect-file reviewed.md" in steps["apply"]["run"]
    assert apply["permissions"]["pull-requests"] == "write"
    # The override and the expected digest come in through env, never spliced into the script.
    assert "${{" not in steps["apply"]["run"]
    inputs = yaml.safe_load(GITHUB.read_text())[True]["workflow_dispatch"]["inputs"]
    assert {"expect", "override_reason"} <= set(inputs)


def test_github_posts_the_new_plan_for_review_when_it_differs() -> None:
    apply = yaml.safe_load(GITHUB.read_text())["jobs"]["apply"]
    steps = {step.get("id"): step for step in apply["steps"]}
    grep = re.search(r'grep -q "([^"]+)" apply\.err', steps["apply"]["run"])
    assert grep and grep.group(1) in DIFFERS
    (post,) = [s for s in apply["steps"] if "differs == 'true'" in str(s.get("if", ""))]
    assert "failure()" in post["if"]
    assert "provisioner plan -c" in post["run"] and "--format markdown" in post["run"]
    assert "gh pr comment" in post["run"] and "gh issue create" in post["run"]
    # Not approved: the new plan must never be read back as the reviewed one.
    assert "<!-- provisioner-plan -->" not in post["run"]


def test_gitlab_merge_job_reads_the_digest_of_the_last_plan_note() -> None:
    apply = yaml.safe_load(GITLAB.read_text())["apply"]
    script = "\n".join(apply["script"])
    assert "/repository/commits/" in script and "/merge_requests" in script and "/notes?" in script
    assert 'n["author"]["id"] == me and MARKER in n["body"]' in script
    assert 'open("reviewed.md", "w")' in script and "--expect-file reviewed.md" in script
    grep = re.search(r'grep -q "([^"]+)" apply\.err', script)
    assert grep and grep.group(1) in DIFFERS
    # The new plan goes back without the marker.
    post = script.split("grep -q", 1)[1]
    assert "MARKER" not in post and "<!-- provisioner-plan -->" not in post


def test_the_docs_explain_the_pin_the_override_and_the_install() -> None:
    docs = (ROOT / "docs" / "ci.md").read_text()
    for needle in (
        "--expect-file",
        "--override-expect",
        "Plan digest:",
        "recall-provisioner",
        "process_mode=oldest_first",
        "RECALL_DEVELOPER_KEY",
        "RECALL_ADMIN_KEY",
        "provisioner show",
    ):
        assert needle in docs, needle


def test_the_python_embedded_in_the_gitlab_example_compiles() -> None:
    gitlab = yaml.safe_load(GITLAB.read_text())
    bodies = [body for line in gitlab["plan"]["script"] for body in _without_heredocs(line)[1]]
    assert len(bodies) == 1
    tree = ast.parse(bodies[0])
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert "<!-- provisioner-plan -->" in strings
    apply_bodies = [body for line in gitlab["apply"]["script"] for body in _without_heredocs(line)[1]]
    assert len(apply_bodies) == 2
    for body in apply_bodies:
        ast.parse(body)


def test_the_pre_commit_hook_validates_a_path_not_the_changed_files() -> None:
    (hook,) = yaml.safe_load(PRE_COMMIT.read_text())
    assert hook["id"] == "provisioner-validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    assert hook["args"][0] == "-c"
    assert re.search(hook["files"], "access.yaml") and not re.search(hook["files"], "README.md")


def test_a_quarterly_job_runs_review_and_keeps_html_and_csv() -> None:
    """Issue 15: a scheduled quarterly review whose HTML and CSV are kept as artifacts."""
    github = yaml.safe_load(GITHUB.read_text())
    quarterly = "0 7 1 1,4,7,10 *"
    assert {"cron": quarterly} in github[True]["schedule"]
    jobs = github["jobs"]
    assert quarterly in jobs["review"]["if"] and quarterly not in jobs["drift"]["if"]
    assert jobs["review"]["permissions"] == {"contents": "read"}
    upload = next(
        s for s in jobs["review"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")
    )
    assert set(upload["with"]["path"].split()) == {"access-review.html", "access-review.csv"}
    formats = {frozenset(v) & {"html", "csv", "markdown"} for v in _by_command(GITHUB)["review"]}
    assert {frozenset({"html"}), frozenset({"csv"})} <= formats

    gitlab = yaml.safe_load(GITLAB.read_text())
    assert gitlab["review"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "schedule" && $PROVISIONER_JOB == "review"'}
    ]
    assert "review" not in gitlab["drift"]["rules"][0]["if"].replace('!= "review"', "")
    assert {"access-review.html", "access-review.csv"} <= set(gitlab["review"]["artifacts"]["paths"])
    assert quarterly in GITLAB.read_text()


def test_the_rotation_example_applies_only_due_rotations_with_the_admin_key_in_the_protected_environment() -> (
    None
):
    """Scheduled rotation (issue 14): --rotate-only, the secret only through the sink, least privilege."""
    (only,) = _by_command(ROTATE)["apply"]
    assert {"--rotate-only", "--auto-approve", "--audit-log", "--secrets-command"} <= only
    assert "--force" not in only and "--expect" not in only
    doc = yaml.safe_load(ROTATE.read_text())
    (job,) = doc["jobs"].values()
    assert job["environment"] == "access" and job["if"] == "github.ref == 'refs/heads/main'"
    # Its own group (issue 21): a queued rotation never cancels a pending apply, nor the reverse.
    assert job["concurrency"] == {"group": "provisioner-rotate", "cancel-in-progress": False}
    assert doc["permissions"] == {"contents": "read"}
    keyed = [s for s in job["steps"] if "RECALL_API_KEY" in (s.get("env") or {})]
    assert [s["env"]["RECALL_API_KEY"] for s in keyed] == ["${{ secrets.RECALL_ADMIN_KEY }}"]
    assert "gh secret set {name}" in keyed[0]["run"]
    # Issue 21: the command gets a minimal environment; gh's own token is passed by name, nothing more.
    assert "--secrets-command-env GH_TOKEN" in keyed[0]["run"]
    assert "--secrets-command-env RECALL_API_KEY" not in keyed[0]["run"]


def test_third_party_actions_are_pinned_to_a_commit() -> None:
    """Issue 21: a tag can be moved; a 40-character commit SHA cannot."""
    for path in sorted((GITHUB.parent).glob("*.yml")):
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), (path.name, uses)


def test_the_plan_job_holds_no_secret_and_the_comment_is_cut_only_by_the_tool() -> None:
    """Issue 21: the pull-request job has the developer key and nothing else; no slice() of the plan."""
    text = GITHUB.read_text()
    jobs = yaml.safe_load(text)["jobs"]
    plan_env = yaml.safe_dump(jobs["plan"])
    assert "secrets." in plan_env and set(re.findall(r"secrets\.(\w+)", plan_env)) == {"RECALL_DEVELOPER_KEY"}
    assert (
        "slice(" not in text
        and "--base" in yaml.safe_dump(jobs["plan"])
        and "--base" in yaml.safe_dump(jobs["apply"])
    )
    apply_env = yaml.safe_dump(jobs["apply"])
    assert "--secrets-command" in apply_env and "DEEPGRAM_KEY_PRODUCTION" in apply_env
