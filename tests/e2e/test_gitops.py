"""Adoption and GitOps end to end: export, drift, audit log, several organizations."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import TOKEN_ENV, Api, Cli, org_config

BODY = """
environments:
  development: {members: ["@eng"]}
  production: {members: [alice@acme.com]}
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
  - {email: carol@acme.com, role: developer}
groups:
  eng: [alice@acme.com, bob@acme.com, carol@acme.com]
workspaces:
  - name: notetaker
    environments: [development, production]
  - name: scratch
    members: [bob@acme.com]
"""


def write(tmp_path: Path, sandbox, body: str = BODY, name: str = "org.yaml") -> str:  # noqa: ANN001
    path = tmp_path / name
    path.write_text(org_config(sandbox.base_url, body))
    return str(path)


def test_drift_separates_out_of_band_changes_from_unapplied_config(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    log = str(tmp_path / "audit.jsonl")
    assert cli("apply", "-c", config, "--auto-approve", "--audit-log", log).returncode == 0

    clean = cli("drift", "-c", config, "--audit-log", log)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # Out of band: someone invites mallory through the API.
    assert api.request("POST", "/users/", {"email": "mallory@evil.example", "role": "developer"})[0] == 201
    oob = cli("drift", "-c", config, "--audit-log", log, "--format", "json")
    assert oob.returncode == 2
    report = json.loads(oob.stdout)
    assert [c["key"] for c in report["out_of_band"]] == ["mallory@evil.example"]
    assert report["unapplied"] == []

    # And a config change nobody applied yet: dave joins.
    edited = write(
        tmp_path,
        sandbox,
        BODY.replace(
            "  - {email: carol@acme.com, role: developer}\n",
            "  - {email: carol@acme.com, role: developer}\n  - {email: dave@acme.com, role: developer}\n",
        ),
    )
    both = json.loads(cli("drift", "-c", edited, "--audit-log", log, "--format", "json").stdout)
    assert [c["key"] for c in both["out_of_band"]] == ["mallory@evil.example"]
    assert [c["key"] for c in both["unapplied"]] == ["dave@acme.com"]

    # Only the unapplied change once the out-of-band one is reverted by hand.
    mallory = api.users()["mallory@evil.example"]["id"]
    assert api.request("DELETE", f"/users/{mallory}/")[0] == 204
    only = cli("drift", "-c", edited, "--audit-log", log, "--format", "json")
    assert only.returncode == 2
    doc = json.loads(only.stdout)
    assert doc["out_of_band"] == [] and [c["key"] for c in doc["unapplied"]] == ["dave@acme.com"]

    # Without the log every difference is drift.
    plain = cli("drift", "-c", edited)
    assert plain.returncode == 2 and "dave@acme.com" in plain.stdout


def test_audit_record_holds_the_run_and_never_the_key(sandbox, cli: Cli, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    result = cli("apply", "-c", config, "--auto-approve", "--audit-log", "-")
    assert result.returncode == 0
    record = json.loads(result.stdout.strip().splitlines()[-1])
    for field in (
        "time",
        "tool_version",
        "organization",
        "config_digest",
        "state_fingerprint",
        "applied",
        "failed",
        "skipped",
        "git_commit",
    ):
        assert field in record
    assert record["result"] == "success" and record["failed"] == [] and len(record["applied"]) > 0
    assert sandbox.token not in result.stdout + result.stderr


def test_export_then_plan_shows_no_changes(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:
    config = write(tmp_path, sandbox)
    assert cli("apply", "-c", config, "--auto-approve").returncode == 0
    assert api.request("POST", "/users/", {"email": "pending@acme.com", "role": "developer"})[0] == 201
    exported = tmp_path / "exported.yaml"
    result = cli("export", "--api-url", sandbox.base_url, "--token-env", TOKEN_ENV, "-o", str(exported))
    assert result.returncode == 0, result.stderr
    text = exported.read_text()
    assert "pending" in text and "notetaker" in text
    again = cli("export", "--api-url", sandbox.base_url, "--token-env", TOKEN_ENV)
    assert again.stdout == text  # byte-identical
    plan = cli("plan", "-c", str(exported), "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_two_organizations_in_one_plan_and_one_apply(make_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    first, second = make_sandbox(), make_sandbox()
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    a = tmp_path / "eu" / "org.yaml"
    b = tmp_path / "us" / "org.yaml"
    body = "users:\n  - {email: admin@example.com, role: admin}\n  - {email: x@acme.com, role: developer}\n"
    a.write_text(org_config(first.base_url, body).replace(TOKEN_ENV, "RECALL_KEY_EU"))
    b.write_text(org_config(second.base_url, body).replace(TOKEN_ENV, "RECALL_KEY_US"))
    cli = Cli(tmp_path, "unused")
    keys = {"RECALL_KEY_EU": first.token, "RECALL_KEY_US": second.token}
    plan = cli("plan", "-c", str(a), "-c", str(b), "--detailed-exitcode", extra_env=keys)
    assert plan.returncode == 2, plan.stderr
    assert plan.stdout.count("=== Organization") == 2
    assert cli("apply", "-c", str(a), "-c", str(b), "--auto-approve", extra_env=keys).returncode == 0
    for sb in (first, second):
        assert set(Api(sb.base_url, sb.token).users()) == {"admin@example.com", "x@acme.com"}
    assert cli("plan", "-c", str(a), "-c", str(b), "--detailed-exitcode", extra_env=keys).returncode == 0
    # One organization failing (no key) makes the combined exit code 1, and the other still runs.
    partial = cli("plan", "-c", str(a), "-c", str(b), extra_env={"RECALL_KEY_EU": first.token})
    assert partial.returncode == 1 and "RECALL_KEY_US" in partial.stderr
    assert "No changes" in partial.stdout
