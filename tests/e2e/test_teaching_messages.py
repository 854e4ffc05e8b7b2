"""Messages a newcomer meets: each says what happened and what to type instead (issue 23).

Every test runs the real CLI in a subprocess; the ones that need an
organization use the embedded sandbox (``--sandbox``), which needs no key.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Cli

ORG = """\
version: 1
organization:
  name: sandbox
  region: us-east-1
users:
  - {email: admin@example.com, role: admin}
  - {email: dana@example.com, role: developer}
"""


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """The CLI in ``tmp_path``, which holds ``org.yaml`` (for the embedded sandbox: no key needed)."""
    (tmp_path / "org.yaml").write_text(ORG)
    return Cli(tmp_path, "unused-key-for-the-embedded-sandbox")


def _usage_failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())  # click wraps nothing, but be safe about line breaks


def test_a_positional_config_gets_did_you_mean_c(run: Cli) -> None:
    message = _usage_failure(run("plan", "base.yaml"))
    assert "Missing option '-c'" in message
    assert "did you mean -c base.yaml?" in message
    assert "provisioner plan -c base.yaml" in message


def test_a_second_path_after_one_c_explains_that_each_c_is_an_organization(run: Cli) -> None:
    message = _usage_failure(run("validate", "-c", "org.yaml", "users.yaml"))
    assert "unexpected extra argument (users.yaml)" in message
    assert "each -c is a separate organization" in message and "-c FOLDER" in message


@pytest.mark.parametrize(
    "words, fixed",
    [
        (["-c", "x", "plan"], "provisioner plan -c x"),
        (["--sandbox", "x", "plan"], "provisioner plan --sandbox x"),
        (
            ["-v", "--sandbox=my db", "apply", "--auto-approve"],
            "provisioner apply -v '--sandbox=my db' --auto-approve",
        ),
    ],
)
def test_an_option_before_its_command_says_put_it_after_the_command(
    run: Cli, words: list[str], fixed: str
) -> None:
    message = _usage_failure(run(*words))
    assert "No such option" in message
    assert f"put it after the command: {fixed}" in message


def test_an_unknown_option_before_the_command_gets_no_wrong_hint(run: Cli) -> None:
    message = _usage_failure(run("--bogus", "plan"))
    assert "No such option '--bogus'" in message and "put it after" not in message


@pytest.mark.parametrize("typo, meant", [("plna", "plan"), ("aply", "apply"), ("valdate", "validate")])
def test_a_command_typo_gets_a_suggestion(run: Cli, typo: str, meant: str) -> None:
    message = _usage_failure(run(typo))
    assert f"No such command '{typo}'. Did you mean {meant}?" in message


def test_a_tab_in_the_indentation_is_named_with_file_line_column(run: Cli, tmp_path: Path) -> None:
    (tmp_path / "tab.yaml").write_text("version: 1\norganization:\n\tname: x\n  region: us-east-1\n")
    result = run("validate", "-c", "tab.yaml")
    assert result.returncode == 1
    assert "a tab character at tab.yaml:3:1; YAML indents with spaces" in result.stdout + result.stderr
    assert "cannot start any token" not in result.stdout + result.stderr


def test_a_tab_after_spaces_is_named_at_its_own_column(run: Cli, tmp_path: Path) -> None:
    (tmp_path / "tab.yaml").write_text("version: 1\norganization:\n  \tname: x\n")
    result = run("validate", "-c", "tab.yaml")
    assert "a tab character at tab.yaml:3:3" in result.stdout + result.stderr


def test_show_of_a_file_that_is_not_a_plan_says_what_a_plan_file_is(run: Cli, tmp_path: Path) -> None:
    (tmp_path / "plan.md").write_text("### provisioner plan for `sandbox`\n\n**Plan: 1 to add.**\n")
    message = _usage_failure(run("show", "plan.md"))
    assert "plan.md is not a plan file" in message
    assert "provisioner plan -c CONFIG --out PLANFILE" in message
    assert "Expecting value" not in message


# --- a mistyped --sandbox path never makes a second organization unasked ------------------


def test_the_first_apply_on_a_fresh_folder_creates_the_sandbox(run: Cli, tmp_path: Path) -> None:
    result = run("apply", "-c", "org.yaml", "--sandbox", "sandbox.db", "--auto-approve")
    assert result.returncode == 0, result.stderr
    assert "Created a new sandbox organization in sandbox.db" in result.stderr
    assert (tmp_path / "sandbox.db").is_file()


def _with_sandbox(run: Cli, tmp_path: Path) -> None:
    first = run("apply", "-c", "org.yaml", "--sandbox", "sandbox.db", "--auto-approve")
    assert first.returncode == 0, first.stderr


def test_a_typo_of_an_existing_sandbox_is_refused_without_a_terminal(run: Cli, tmp_path: Path) -> None:
    _with_sandbox(run, tmp_path)
    message = _usage_failure(run("apply", "-c", "org.yaml", "--sandbox", "sandbx.db", "--auto-approve"))
    assert "sandbox.db in the same folder is a sandbox database" in message
    assert "nothing was changed" in message and "--new-sandbox" in message
    assert "Did you mean --sandbox sandbox.db?" in message
    assert not (tmp_path / "sandbx.db").exists()

    # The flag the message names creates it.
    created = run("apply", "-c", "org.yaml", "--sandbox", "sandbx.db", "--new-sandbox", "--auto-approve")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "sandbx.db").is_file()


def test_a_clearly_different_name_beside_a_sandbox_is_created_without_asking(
    run: Cli, tmp_path: Path
) -> None:
    _with_sandbox(run, tmp_path)
    result = run("apply", "-c", "org.yaml", "--sandbox", "quick.db", "--auto-approve")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "quick.db").is_file()


def test_plan_on_a_typo_names_the_sandbox_next_to_it(run: Cli, tmp_path: Path) -> None:
    _with_sandbox(run, tmp_path)
    message = _usage_failure(run("plan", "-c", "org.yaml", "--sandbox", "sandbx.db"))
    assert "no such sandbox database. Did you mean --sandbox sandbox.db?" in message


def _apply_on_a_terminal(tmp_path: Path, answer: str) -> tuple[int, str]:
    """``apply --sandbox sandbx.db`` with a pseudo-terminal as stdin, answering ``answer``."""
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env["NO_COLOR"] = "1"
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provisioner",
                "apply",
                "-c",
                "org.yaml",
                "--sandbox",
                "sandbx.db",
                "--auto-approve",
            ],
            cwd=tmp_path,
            env=env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, answer.encode() + b"\n")  # read once the question is asked
        out, err = process.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    return process.returncode, out + err


def test_a_typo_of_an_existing_sandbox_is_asked_about_on_a_terminal(run: Cli, tmp_path: Path) -> None:
    _with_sandbox(run, tmp_path)
    code, output = _apply_on_a_terminal(tmp_path, "n")
    assert "Create a new, empty sandbox organization in sandbx.db?" in output
    assert code == 1 and "did you mean --sandbox sandbox.db?" in output
    assert not (tmp_path / "sandbx.db").exists()

    code, output = _apply_on_a_terminal(tmp_path, "y")
    assert code == 0, output
    assert "Created a new sandbox organization in sandbx.db" in output
    assert (tmp_path / "sandbx.db").is_file()


# --- the embedded sandbox looks embedded -------------------------------------------------


def test_the_embedded_sandbox_is_named_as_such_and_stable_in_every_format(run: Cli, tmp_path: Path) -> None:
    _with_sandbox(run, tmp_path)
    (tmp_path / "org.yaml").write_text(ORG + "  - {email: eli@example.com, role: developer}\n")
    for fmt in ("text", "markdown", "json"):
        first = run("plan", "-c", "org.yaml", "--sandbox", "sandbox.db", "--format", fmt)
        second = run("plan", "-c", "org.yaml", "--sandbox", "sandbox.db", "--format", fmt)
        assert first.returncode == 0, first.stderr
        assert first.stdout == second.stdout, f"{fmt} differs from run to run"
        assert "127.0.0.1" not in first.stdout and "not the region" not in first.stdout
        if fmt == "json":
            assert json.loads(first.stdout)["endpoint"] == "embedded sandbox (sandbox.db)"
        elif fmt == "markdown":
            assert "Endpoint: `embedded sandbox (sandbox.db)`\n" in first.stdout
        else:
            assert first.stdout.startswith("Endpoint: embedded sandbox (sandbox.db)\n")
