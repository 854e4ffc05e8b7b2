"""plan and apply, end to end: the real CLI against a sandbox over loopback HTTP."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.support import QUICKSTART_KEYS, Api, Cli, org_config

BODY = """
environments:
  development: {members: ["@engineering"]}
  production: {members: ["@sre"]}
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
  - {email: svc-ci@acme.com, role: developer}
groups:
  engineering: [alice@acme.com, bob@acme.com]
  sre: [alice@acme.com]
workspaces:
  - name: notetaker
    environments: [development, production]
    members:
      production: [svc-ci@acme.com]
  - name: playground
    members: [bob@acme.com]
"""

DESIRED_MEMBERSHIPS = {
    ("notetaker-development", "alice@acme.com"),
    ("notetaker-development", "bob@acme.com"),
    ("notetaker-production", "alice@acme.com"),
    ("notetaker-production", "svc-ci@acme.com"),
    ("playground", "bob@acme.com"),
}


def write(tmp_path: Path, sandbox, body: str = BODY, name: str | None = None) -> str:  # noqa: ANN001
    path = tmp_path / "org.yaml"
    path.write_text(org_config(sandbox.base_url, body, name=name))
    return str(path)


def test_apply_from_empty_then_second_plan_is_empty(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    first = cli("plan", "-c", config, "--detailed-exitcode")
    assert first.returncode == 2, first.stderr
    assert "+ " in first.stdout and "Plan: " in first.stdout

    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    users = api.users()
    assert {e: u["role"] for e, u in users.items()} == {
        "admin@example.com": "admin",
        "alice@acme.com": "admin",
        "bob@acme.com": "developer",
        "svc-ci@acme.com": "developer",
    }
    assert set(api.workspaces()) == {"notetaker-development", "notetaker-production", "playground"}
    assert api.memberships() == DESIRED_MEMBERSHIPS

    second = cli("plan", "-c", config, "--detailed-exitcode")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No changes" in second.stdout


def test_drift_made_through_the_api_is_detected_and_reverted(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    assert cli("apply", "-c", config, "--auto-approve").returncode == 0
    # Out of band: promote bob, invite mallory, revoke alice's production access.
    bob = api.users()["bob@acme.com"]
    assert api.request("PATCH", f"/users/{bob['id']}/", {"role": "admin"})[0] == 200
    assert api.request("POST", "/users/", {"email": "mallory@evil.example", "role": "admin"})[0] == 201
    prod = api.workspaces()["notetaker-production"]["id"]
    alice = api.users()["alice@acme.com"]["id"]
    [m] = [
        m for m in api.list("/workspace_memberships/") if m["workspace_id"] == prod and m["user_id"] == alice
    ]
    assert api.request("DELETE", f"/workspace_memberships/{m['id']}/")[0] == 204

    drift = cli("plan", "-c", config, "--detailed-exitcode")
    assert drift.returncode == 2
    assert "mallory@evil.example" in drift.stdout
    assert "bob@acme.com" in drift.stdout
    assert "alice@acme.com" in drift.stdout

    assert cli("apply", "-c", config, "--auto-approve").returncode == 0
    users = api.users()
    assert "mallory@evil.example" not in users
    assert users["bob@acme.com"]["role"] == "developer"
    assert api.memberships() == DESIRED_MEMBERSHIPS
    assert cli("plan", "-c", config, "--detailed-exitcode").returncode == 0


def test_plan_formats(sandbox, cli: Cli, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    as_json = cli("plan", "-c", config, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["summary"]["create"] == len(doc["changes"]) > 0
    again = cli("plan", "-c", config, "--format", "json")
    assert again.stdout == as_json.stdout  # byte-identical for the same inputs
    md = cli("plan", "-c", config, "--format", "markdown")
    assert md.returncode == 0 and "<details>" in md.stdout


def test_apply_without_terminal_or_auto_approve_refuses(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    result = cli("apply", "-c", config)
    assert result.returncode == 1
    assert "--auto-approve" in result.stderr
    assert set(api.users()) == {"admin@example.com"}


def test_saved_plan_applies_and_a_stale_one_is_refused(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    planfile = str(tmp_path / "plan.json")
    assert cli("plan", "-c", config, "--out", planfile).returncode == 0
    # The organization changes after the plan was made: the plan is stale.
    assert api.request("POST", "/users/", {"email": "bob@acme.com", "role": "developer"})[0] == 201
    stale = cli("apply", "-c", config, "--plan", planfile)
    assert stale.returncode == 1
    assert "stale" in stale.stderr
    assert set(api.users()) == {"admin@example.com", "bob@acme.com"}

    assert cli("plan", "-c", config, "--out", planfile).returncode == 0
    ok = cli("apply", "-c", config, "--plan", planfile)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert api.memberships() == DESIRED_MEMBERSHIPS


def test_modified_or_old_plan_file_is_refused(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    planfile = tmp_path / "plan.json"
    assert cli("plan", "-c", config, "--out", str(planfile)).returncode == 0
    original = planfile.read_text()
    planfile.write_text(original.replace("svc-ci@acme.com", "svc-cx@acme.com"))
    modified = cli("apply", "-c", config, "--plan", str(planfile))
    assert modified.returncode == 1 and "modified" in modified.stderr.lower()
    planfile.write_text(original)
    old = cli("apply", "-c", config, "--plan", str(planfile), "--max-age", "0s")
    assert old.returncode == 1 and "old" in old.stderr.lower()
    assert set(api.users()) == {"admin@example.com"}


def test_missing_key_is_a_clean_error(sandbox, cli: Cli, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    result = cli("plan", "-c", config, token="")
    assert result.returncode == 1
    assert "PROVISIONER_TEST_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_exits_1_and_calls_no_api(sandbox, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(org_config(sandbox.base_url, "users:\n  - {email: a@b.example, role: Admin}\n"))
    sandbox.reset_stats()
    result = cli("apply", "-c", str(path), "--auto-approve")
    assert result.returncode == 1
    assert "bad.yaml:" in result.stderr and "Traceback" not in result.stderr
    assert sandbox.stats()["total"] == 0


def _apply_on_a_terminal(cli: Cli, config: str, answer: str) -> subprocess.CompletedProcess:
    """Run apply with a pseudo-terminal as stdin and type ``answer`` at the prompt."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode() + b"\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
        env.update({"PROVISIONER_TEST_KEY": cli.token, "NO_COLOR": "1"})
        return subprocess.run(
            [sys.executable, "-m", "provisioner", "apply", "-c", config],
            cwd=cli.cwd,
            env=env,
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(master)
        os.close(slave)


def test_apply_on_a_terminal_asks_for_yes(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    declined = _apply_on_a_terminal(cli, config, "no")
    assert declined.returncode == 1
    assert "Only 'yes' will be accepted" in declined.stdout + declined.stderr
    assert "cancelled" in declined.stderr
    assert set(api.users()) == {"admin@example.com"}

    accepted = _apply_on_a_terminal(cli, config, "yes")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert api.memberships() == DESIRED_MEMBERSHIPS


def test_a_sandbox_path_that_is_not_a_database_is_a_clean_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    result = Cli(tmp_path, "unused", env=QUICKSTART_KEYS)(
        "plan",
        "-c",
        str(Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"),
        "--sandbox",
        str(junk),
    )
    assert result.returncode == 1
    assert "is not a sandbox database" in result.stderr
    assert "Traceback" not in result.stderr
