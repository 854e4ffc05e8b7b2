"""Workspace settings end to end: the real CLI against the sandbox server over HTTP.

Webhooks and credentials per environment, write-only secrets compared by
digest, server-made signing secrets delivered to a sink, drift and export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Api, Cli, org_config

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """\
users:
  - {email: admin@example.com, role: admin}
environments:
  staging: {members: [admin@example.com]}
  production: {members: [admin@example.com]}
workspaces:
  - name: notetaker
    environments: [staging, production]
    webhooks:
      - url: "https://hooks.example.invalid/recall/{environment}"
        events: [bot.status_change]
    transcription:
      deepgram:
        api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}"}
    platforms:
      google_calendar:
        client_id: gcal-client-{environment}
        client_secret: {file: "secrets/gcal-{environment}"}
"""

KEYS = {
    "DEEPGRAM_KEY_STAGING": "dg-staging-0123456789",
    "DEEPGRAM_KEY_PRODUCTION": "dg-production-0123456789",
}


def write_config(cli: Cli, sandbox, body: str = SETTINGS) -> Path:  # noqa: ANN001
    path = cli.cwd / "org.yaml"
    path.write_text(org_config(sandbox.base_url, body))
    secrets = cli.cwd / "secrets"
    secrets.mkdir(exist_ok=True)
    for env in ("staging", "production"):
        (secrets / f"gcal-{env}").write_text(f"gcal-secret-{env}-0123456789\n")
    return path


def applied(cli: Cli, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = cli(
        "apply", "-c", "org.yaml", "--auto-approve", "--secrets-dir", "sink", *extra, extra_env=env or KEYS
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def planned(cli: Cli, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return cli("plan", "-c", "org.yaml", "--detailed-exitcode", *extra, extra_env=env or KEYS)


def pbkdf2(value: str, digest: dict) -> str:
    return hashlib.pbkdf2_hmac(
        "sha256", value.encode(), bytes.fromhex(digest["salt"]), digest["iterations"]
    ).hex()


def credentials(api: Api) -> dict[tuple[str, str], dict]:
    names = {w["id"]: w["name"] for w in api.list("/workspaces/")}
    return {(names[c["workspace_id"]], c["provider"]): c for c in api.list("/credentials/")}


def webhooks(api: Api) -> dict[tuple[str, str], dict]:
    names = {w["id"]: w["name"] for w in api.list("/workspaces/")}
    return {(names[h["workspace_id"]], h["url"]): h for h in api.list("/webhook_endpoints/")}


def test_readme_quickstart_applies_with_inline_variables_writes_0600_secrets_and_then_plans_no_changes(
    tmp_path: Path,
) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    command = readme.split("```sh\n", 1)[1].split("```", 1)[0].strip()
    job = command.split(" && ")[-1]  # the install is this checkout; run the main job as printed
    assert "DEEPGRAM_KEY_PRODUCTION=" in job and "--secrets-dir" in job
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "provisioner"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m provisioner "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_", "DEEPGRAM_"))}
    first = subprocess.run(
        ["sh", "-c", job], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "+ webhook https://hooks.example.invalid/recall/production (notetaker-production)" in first.stdout
    assert "+ credential deepgram (notetaker-production): api_key from env DEEPGRAM_KEY_PRODUCTION" in (
        first.stdout
    )
    files = sorted(p for p in (tmp_path / "secrets").rglob("*") if p.is_file())
    assert len(files) == 3  # one signing secret per environment's webhook
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().startswith("whsec_")
        assert path.read_text() not in first.stdout + first.stderr
    again = (
        job.replace(" apply ", " plan ").replace(" --auto-approve", "").replace(" --secrets-dir secrets", "")
    )
    second = subprocess.run(
        ["sh", "-c", again + " --detailed-exitcode"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No changes" in second.stdout


def test_change_a_webhook_then_no_changes(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write_config(cli, sandbox)
    applied(cli)
    (cli.cwd / "org.yaml").write_text(
        org_config(
            sandbox.base_url,
            SETTINGS.replace("events: [bot.status_change]", "events: [bot.status_change, transcript.done]"),
        )
    )
    plan = planned(cli)
    assert plan.returncode == 2, plan.stderr
    line = "~ webhook https://hooks.example.invalid/recall/production (notetaker-production): events +transcript.done"
    assert line in plan.stdout
    applied(cli)
    hook = webhooks(api)[("notetaker-production", "https://hooks.example.invalid/recall/production")]
    assert hook["events"] == ["bot.status_change", "transcript.done"]
    assert planned(cli).returncode == 0


def test_rotating_a_credential_changes_its_digest_and_the_plan_says_so(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    applied(cli)
    before = credentials(api)[("notetaker-production", "deepgram")]["secrets"]["api_key"]
    assert pbkdf2(KEYS["DEEPGRAM_KEY_PRODUCTION"], before) == before["digest"]
    rotated = {**KEYS, "DEEPGRAM_KEY_PRODUCTION": "dg-production-ROTATED-987654"}
    # A new value behind the same reference changes no plan (a plan reads no value) ...
    quiet = planned(cli, env=rotated)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    # ... a drift check that holds the secrets reports it, with what to do.
    drift = cli("drift", "-c", "org.yaml", extra_env=rotated)
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "raise `version` to 2" in drift.stdout and "ROTATED" not in drift.stdout + drift.stderr
    # Raising the reference's version is the reviewed way to send it.
    (cli.cwd / "org.yaml").write_text(
        org_config(
            sandbox.base_url,
            SETTINGS.replace(
                'api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}"}',
                'api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}", version: 2}',
            ),
        )
    )
    plan = planned(cli, env=rotated)
    assert plan.returncode == 2
    assert (
        "~ credential deepgram (notetaker-production): api_key written again from env "
        "DEEPGRAM_KEY_PRODUCTION (version 2) (version 1 -> 2)" in plan.stdout
    )
    assert "ROTATED" not in plan.stdout + plan.stderr
    applied(cli, env=rotated)
    after = credentials(api)[("notetaker-production", "deepgram")]["secrets"]["api_key"]
    assert after["digest"] != before["digest"] and after["salt"] != before["salt"]
    assert pbkdf2(rotated["DEEPGRAM_KEY_PRODUCTION"], after) == after["digest"]
    assert planned(cli, env=rotated).returncode == 0


def test_out_of_band_changes_are_drift(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write_config(cli, sandbox)
    applied(cli, "--audit-log", "audit.jsonl")
    hook = webhooks(api)[("notetaker-staging", "https://hooks.example.invalid/recall/staging")]
    status, _, _ = api.request("PATCH", f"/webhook_endpoints/{hook['id']}/", {"enabled": False})
    assert status == 200
    credential = credentials(api)[("notetaker-production", "deepgram")]
    status, _, _ = api.request(
        "PATCH", f"/credentials/{credential['id']}/", {"secrets": {"api_key": "set-by-hand-in-dashboard"}}
    )
    assert status == 200
    drift = cli("drift", "-c", "org.yaml", "--audit-log", "audit.jsonl", "--format", "json", extra_env=KEYS)
    assert drift.returncode == 2, drift.stderr
    report = json.loads(drift.stdout)
    text = json.dumps(report)
    assert "notetaker-staging https://hooks.example.invalid/recall/staging" in json.dumps(
        report["out_of_band"]
    )
    assert "unapplied" not in json.dumps(report.get("unapplied", []))
    assert "notetaker-production deepgram" in text
    assert "set-by-hand" not in text
    human = cli("drift", "-c", "org.yaml", "--audit-log", "audit.jsonl", extra_env=KEYS)
    assert "written outside provisioner" in human.stdout and "enabled" in human.stdout


def test_export_then_plan_with_the_listed_variables_shows_no_changes(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    applied(cli)
    # One secret written by hand: its source is unknown, so export names a variable for it.
    credential = credentials(api)[("notetaker-production", "deepgram")]
    status, _, _ = api.request(
        "PATCH",
        f"/credentials/{credential['id']}/",
        {"secrets": {"api_key": KEYS["DEEPGRAM_KEY_PRODUCTION"]}},
    )
    assert status == 200
    exported = cli(
        "export", "--api-url", sandbox.base_url, "--token-env", "PROVISIONER_TEST_KEY", "-o", "org.yaml"
    )
    assert exported.returncode == 0, exported.stderr
    text = (cli.cwd / "org.yaml").read_text()
    assert "gcal-client-production" in text and "{env:" in text
    for value in KEYS.values():
        assert value not in text
    # Recorded sources come back as the references that wrote them.
    assert 'client_secret: {file: "secrets/gcal-production"}' in text
    variables = [line.strip() for line in exported.stderr.splitlines() if line.startswith("  SECRET_")]
    assert variables == ["SECRET_NOTETAKER_PRODUCTION_DEEPGRAM_API_KEY"]
    plan = planned(cli, env={**KEYS, **dict.fromkeys(variables, "dg-0123456789")})
    # Only the secret whose source nobody recorded is written again; everything else is as exported.
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert (
        plan.stdout.count("written again") == 1 and "Plan: 0 to add, 1 to change, 0 to remove." in plan.stdout
    )


def test_a_missing_secret_reference_names_every_one_and_changes_nothing(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    (cli.cwd / "secrets" / "gcal-staging").unlink()
    sandbox.reset_stats()
    partial = {"DEEPGRAM_KEY_STAGING": KEYS["DEEPGRAM_KEY_STAGING"]}
    result = cli("apply", "-c", "org.yaml", "--auto-approve", "--secrets-dir", "sink", extra_env=partial)
    assert result.returncode == 1
    err = result.stderr
    assert "2 secret references cannot be read" in err
    for missing in (
        "DEEPGRAM_KEY_PRODUCTION",
        "secrets/gcal-staging",
    ):
        assert missing in err
    assert "org.yaml:" in err and "Traceback" not in err
    # Refused after the read and before a single write (a plan reads no secret; only apply does).
    writes = [r for r in sandbox.stats()["by_route"] if r.split()[0] in ("POST", "PATCH", "DELETE")]
    assert writes == []
    # validate stays offline and secret-free: the same config is valid.
    assert cli("validate", "-c", "org.yaml").returncode == 0


def test_a_literal_secret_is_refused_with_its_place_and_without_its_value(cli: Cli, sandbox) -> None:  # noqa: ANN001
    body = SETTINGS.replace(
        'api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}"}', "api_key: dg-literal-SENTINEL-4242"
    )
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, body))
    result = cli("validate", "-c", "org.yaml")
    assert result.returncode == 1
    assert "SENTINEL" not in result.stdout + result.stderr
    assert "org.yaml:" in result.stderr and "transcription.deepgram.api_key" in result.stderr
    assert "{env: VARIABLE_NAME}" in result.stderr and "{file:" in result.stderr


def test_secrets_command_gets_each_signing_secret_on_stdin_and_stdout_shows_none(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    recorder = cli.cwd / "record.py"
    recorder.write_text(
        "import os, sys, json\n"
        "with open('got.jsonl', 'a') as f:\n"
        "    f.write(json.dumps({'name': sys.argv[1], 'env': os.environ['PROVISIONER_SECRET_NAME'],"
        " 'workspace': os.environ['PROVISIONER_SECRET_WORKSPACE'], 'value': sys.stdin.read()}) + '\\n')\n"
    )
    result = cli(
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--secrets-command",
        f"{sys.executable} record.py {{name}}",
        extra_env=KEYS,
    )
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in (cli.cwd / "got.jsonl").read_text().splitlines()]
    assert sorted(g["workspace"] for g in got) == ["notetaker-production", "notetaker-staging"]
    for g in got:
        assert g["name"] == g["env"] and g["name"].startswith("RECALL_NOTETAKER_")
        assert g["value"].startswith("whsec_") and g["value"] not in result.stdout + result.stderr


def test_an_apply_that_makes_signing_secrets_without_a_sink_is_refused_before_any_change(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    sandbox.reset_stats()
    result = cli("apply", "-c", "org.yaml", "--auto-approve", extra_env=KEYS)
    assert result.returncode == 1
    assert "--secrets-dir" in result.stderr and "shows only once" in result.stderr
    writes = [r for r in sandbox.stats()["by_route"] if r.split()[0] in ("POST", "PATCH", "DELETE")]
    assert writes == []


def test_a_failed_delivery_leaves_no_endpoint_behind(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write_config(cli, sandbox)
    failing = f'{sys.executable} -c "import sys; sys.stdin.read(); sys.exit(3)"'
    result = cli("apply", "-c", "org.yaml", "--auto-approve", "--secrets-command", failing, extra_env=KEYS)
    assert result.returncode == 1
    assert "could not be delivered" in result.stdout + result.stderr
    assert webhooks(api) == {}
    plan = planned(cli)
    assert plan.stdout.count("+ webhook ") == 2  # the next plan shows exactly what remains


def test_a_non_https_webhook_is_refused_except_to_loopback(cli: Cli, sandbox) -> None:  # noqa: ANN001
    body = SETTINGS.replace("https://hooks.example.invalid", "http://hooks.example.invalid")
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, body))
    result = cli("validate", "-c", "org.yaml")
    assert result.returncode == 1 and "plain http" in result.stderr and "org.yaml:" in result.stderr
    (cli.cwd / "org.yaml").write_text(
        org_config(sandbox.base_url, SETTINGS.replace("https://hooks.example.invalid", "http://127.0.0.1:9"))
    )
    assert cli("validate", "-c", "org.yaml").returncode == 0


def test_shared_urls_and_shared_secret_references_are_warned(cli: Cli, sandbox) -> None:  # noqa: ANN001
    body = SETTINGS.replace("/recall/{environment}", "/recall/all").replace(
        "DEEPGRAM_KEY_{ENVIRONMENT}", "DEEPGRAM_KEY"
    )
    write_config(cli, sandbox, body)
    plan = cli("plan", "-c", "org.yaml", extra_env={**KEYS, "DEEPGRAM_KEY": "dg-shared-0123456789"})
    assert plan.returncode == 0, plan.stderr
    assert "webhook URL https://hooks.example.invalid/recall/all receives events from the environments" in (
        plan.stdout
    )
    assert (
        "the secret reference env DEEPGRAM_KEY is used in the environments production, staging" in plan.stdout
    )


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_the_sentinel_secret_is_in_no_output_plan_file_audit_record_or_log(
    cli: Cli,
    sandbox,
    fmt: str,  # noqa: ANN001
) -> None:
    sentinel = "SENTINEL-dg-9f8e7d6c5b4a"
    keys = {**KEYS, "DEEPGRAM_KEY_PRODUCTION": sentinel}
    write_config(cli, sandbox)
    outputs = []
    first = cli(
        "-v",
        "-v",
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--secrets-dir",
        "sink",
        "--audit-log",
        "audit.jsonl",
        extra_env=keys,
    )
    assert first.returncode == 0, first.stderr
    outputs += [first.stdout, first.stderr]
    rotated = {**keys, "DEEPGRAM_KEY_PRODUCTION": sentinel + "-2"}
    # The rotated value goes out by raising the reference's version (a plan reads no value).
    write_config(
        cli,
        sandbox,
        SETTINGS.replace(
            'api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}"}',
            'api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}", version: 2}',
        ),
    )
    plan = cli("-v", "-v", "plan", "-c", "org.yaml", "--format", fmt, "--out", "plan.json", extra_env=rotated)
    assert plan.returncode == 0, plan.stderr
    outputs += [plan.stdout, plan.stderr, (cli.cwd / "plan.json").read_text()]
    second = cli(
        "-v",
        "-v",
        "apply",
        "-c",
        "org.yaml",
        "--plan",
        "plan.json",
        "--secrets-dir",
        "sink",
        "--audit-log",
        "audit.jsonl",
        extra_env=rotated,
    )
    assert second.returncode == 0, second.stderr
    drift = cli("-v", "drift", "-c", "org.yaml", "--format", fmt, extra_env=keys)
    assert drift.returncode == 2
    outputs += [
        second.stdout,
        second.stderr,
        drift.stdout,
        drift.stderr,
        (cli.cwd / "audit.jsonl").read_text(),
    ]
    saved = json.loads((cli.cwd / "plan.json").read_text())
    # version: 2 on the template raises both environments' deepgram key.
    assert [c["after"]["write"] for c in saved["changes"]] == [["api_key"], ["api_key"]]
    assert fmt == "json" or "api_key written again" in plan.stdout
    for text in outputs:
        assert sentinel[:20] not in text
