"""Exit codes mean one thing everywhere (0 ok, 1 error, 2 changes or drift), through the real CLI.

Usage errors (a missing -c file, an unknown flag or command, a bad choice) are
errors: 1, never the 2 that a pipeline reads as "changes". Durations and
numbers from flags and environment variables are refused with a message, never
a traceback. The global options work after the command too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provisioner.errors import StalePlanError
from provisioner.plan.digest import PlanTarget
from provisioner.plan.model import Plan
from provisioner.plan.planfile import load_plan, save_plan
from provisioner.sandbox import start_sandbox
from tests.support import QUICKSTART_KEYS, Cli

QUICKSTART = str(Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml")


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path, "unused", env=QUICKSTART_KEYS)


def no_traceback(result) -> None:  # noqa: ANN001
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "-c", "missing.yaml", "--detailed-exitcode"],
        ["apply", "-c", "missing.yaml", "--auto-approve"],
        ["drift", "-c", "missing.yaml"],
        ["validate", "-c", "missing.yaml"],
    ],
    ids=["plan", "apply", "drift", "validate"],
)
def test_a_missing_config_file_is_exit_1_with_the_same_message_everywhere(run: Cli, args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert (
        "missing.yaml: no such file or directory; point -c at a config file" in result.stdout + result.stderr
    )
    no_traceback(result)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["plan", "-c", QUICKSTART, "--bogus"], "No such option '--bogus'"),
        (["plan", "-c", QUICKSTART, "--format", "yaml", "--detailed-exitcode"], "'yaml' is not one of"),
        (["drift", "-c", QUICKSTART, "--format", "yaml"], "'yaml' is not one of"),
        (["bogus"], "No such command 'bogus'"),
        (["--bogus", "plan"], "No such option '--bogus'"),
        (["plan"], "Missing option '-c'"),
        (["plan", "-c", QUICKSTART, "--parallelism", "0"], "'--parallelism'"),
        (
            ["plan", "-c", QUICKSTART, "-c", QUICKSTART, "--out", "x.plan"],
            "--out saves one organization's plan",
        ),
        (["sandbox", "serve", "--db", "x.db", "--port", "-5"], "'--port'"),
        (["sandbox", "serve", "--db", "x.db", "--rate-limit", "nan"], "'nan' is not a finite number"),
        (
            ["sandbox", "serve", "--db", "x.db", "--recall-limits", "0/300"],
            "'0/300' is not published nor LIST/OTHER",
        ),
        (["plan", "-c", QUICKSTART, "--pace", "fast"], "'fast': write auto, published, off"),
    ],
)
def test_usage_errors_exit_1_not_2(run: Cli, args: list[str], words: str) -> None:
    result = run(*args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert words in result.stderr
    no_traceback(result)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("99999999999d", "'99999999999d' is longer than the longest allowed, 365d"),
        ("9" * 5000 + "d", "is longer than the longest allowed, 365d"),
        ("-1s", "'-1s' is not a duration"),
        ("\u0663m", "is not a duration"),  # an Arabic-Indic digit: int() would take it
        ("1 week", "'1 week' is not a duration; write a whole number and a unit"),
    ],
)
def test_max_age_is_validated_without_a_traceback(run: Cli, value: str, words: str) -> None:
    result = run("apply", "-c", QUICKSTART, "--plan", QUICKSTART, "--max-age", value)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert words in result.stderr
    assert len(result.stderr) < 1000, "a long value is quoted as a short excerpt"
    no_traceback(result)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROVISIONER_READ_TIMEOUT", "nan"),
        ("PROVISIONER_READ_TIMEOUT", "inf"),
        ("PROVISIONER_DEADLINE", "1e400"),
        ("PROVISIONER_BACKOFF_MAX", "-1"),
        ("PROVISIONER_MAX_RETRIES", "1.5"),
        ("PROVISIONER_MAX_RETRIES", "99999999999999999999"),
    ],
)
def test_limits_from_the_environment_are_validated_without_a_traceback(
    run: Cli, tmp_path: Path, name: str, value: str
) -> None:
    result = run("plan", "-c", QUICKSTART, "--sandbox", str(tmp_path / "s.db"), extra_env={name: value})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"the environment variable {name}={value!r} is not a" in result.stderr
    assert "fix or unset it" in result.stderr
    no_traceback(result)


def test_a_one_second_max_age_reads_in_seconds(tmp_path: Path) -> None:
    made = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    path = tmp_path / "p.plan"
    save_plan(
        Plan("acme", ()), path, target=PlanTarget("org-1", "acme", ""), tool_version="t", created_at=made
    )
    with pytest.raises(StalePlanError) as caught:
        load_plan(path, tool_version="t", now=made + timedelta(seconds=5), max_age=timedelta(seconds=1))
    assert "is 5s old, older than the limit of 1s" in str(caught.value)


def test_global_options_work_after_the_command(run: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    start_sandbox(db).stop()  # plan reads an existing sandbox; only apply creates one
    after = run("plan", "-c", QUICKSTART, "--sandbox", db, "-v")
    assert after.returncode == 0, after.stderr
    assert "INFO provisioner.api: GET /api/v1/me/ 200" in after.stderr
    quiet = run("plan", "-c", QUICKSTART, "--sandbox", db)
    assert "INFO" not in quiet.stderr

    # NO_COLOR is set by the test runner; an explicit --color always outranks it, before or after.
    for args in (["--color", "always", "plan"], ["plan", "--color", "always"]):
        colored = run(*args, "-c", QUICKSTART, "--sandbox", db)
        assert colored.returncode == 0 and "\x1b[32m" in colored.stdout, (args, colored.stdout)
    last_wins = run("--color", "always", "plan", "-c", QUICKSTART, "--sandbox", db, "--color", "never")
    assert "\x1b[" not in last_wins.stdout
    assert "\x1b[" not in run("plan", "-c", QUICKSTART, "--sandbox", db).stdout
