"""API keys as code, end to end: the real CLI against the sandbox server over HTTP.

Keys per environment delivered to a sink, rotation across applies with the
sandbox's clock (never sleeping), what a removal would break, unmanaged keys.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from provisioner.config import load_config
from tests.support import Api, Cli, org_config

DAY = 86400

KEYS = """\
users:
  - {email: admin@example.com, role: admin}
  - {email: svc-ci@example.com, role: developer, service_account: true}
  - {email: bob@example.com, role: developer}
environments:
  staging: {members: [svc-ci@example.com, bob@example.com]}
  production: {members: [svc-ci@example.com, bob@example.com]}
workspaces:
  - name: notetaker
    environments: [staging, production]
    api_keys:
      - name: ci-deploy
        owner: svc-ci@example.com
        rotate_every: 90d
        sink: "RECALL_API_KEY_{ENVIRONMENT}"
policy:
  api_keys:
    production_owners: service_accounts
"""


def write(cli: Cli, sandbox, body: str = KEYS) -> None:  # noqa: ANN001
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, body))


def apply(cli: Cli, *extra: str) -> subprocess.CompletedProcess:
    result = cli("apply", "-c", "org.yaml", "--auto-approve", "--secrets-dir", "sink", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def plan(cli: Cli, *extra: str) -> subprocess.CompletedProcess:
    return cli("plan", "-c", "org.yaml", "--detailed-exitcode", *extra)


def secret(cli: Cli, workspace: str) -> str:
    # The config's sink: RECALL_API_KEY_{ENVIRONMENT}; the file is named after it.
    return (cli.cwd / "sink" / "sandbox" / workspace / sink_name(workspace)).read_text()


def sink_name(workspace: str) -> str:
    return f"RECALL_API_KEY_{workspace.rsplit('-', 1)[1].upper()}"


def live_keys(api: Api) -> list[dict]:
    return [k for k in api.list("/api_keys/") if not k["disabled"]]


def set_clock(api: Api, offset: float) -> None:
    status, body, _ = api.request("POST", "/_sandbox/clock", {"offset_seconds": offset})
    assert status == 200, body


def use(sandbox, key: str) -> dict:  # noqa: ANN001
    status, body, _ = Api(sandbox.base_url, key).request("GET", "/me/")
    assert status == 200, body
    return body


def test_keys_per_environment_are_delivered_0600_and_authenticate(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    first = apply(cli, "--audit-log", "audit.jsonl")
    assert (
        "+ api key ci-deploy (notetaker-production) of svc-ci@example.com, delivered as RECALL_API_KEY_PRODUCTION"
        in first.stdout
    )
    for workspace in ("notetaker-staging", "notetaker-production"):
        path = cli.cwd / "sink" / "sandbox" / workspace / sink_name(workspace)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        value = path.read_text()
        assert use(sandbox, value)["email"] == "svc-ci@example.com"
        for text in (first.stdout, first.stderr, (cli.cwd / "audit.jsonl").read_text()):
            assert value not in text and value[:16] not in text
    assert len(live_keys(api)) == 2
    assert plan(cli).returncode == 0


def test_a_secrets_command_gets_each_key_under_the_configured_name(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    (cli.cwd / "record.py").write_text(
        "import json, os, sys\n"
        "with open('got.jsonl', 'a') as f:\n"
        "    f.write(json.dumps({'name': sys.argv[1], 'value': sys.stdin.read()}) + '\\n')\n"
    )
    command = f"{sys.executable} record.py {{name}}"
    result = cli("apply", "-c", "org.yaml", "--auto-approve", "--secrets-command", command)
    assert result.returncode == 0, result.stderr
    got = {g["name"]: g["value"] for g in map(json.loads, (cli.cwd / "got.jsonl").read_text().splitlines())}
    assert sorted(got) == ["RECALL_API_KEY_PRODUCTION", "RECALL_API_KEY_STAGING"]
    for value in got.values():
        assert use(sandbox, value)["email"] == "svc-ci@example.com"
        assert value not in result.stdout + result.stderr


def test_rotation_is_make_before_break_across_applies_on_the_sandbox_clock(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    set_clock(api, -97 * DAY)  # the keys are made 97 days ago
    apply(cli)
    set_clock(api, 0)
    old = secret(cli, "notetaker-production")
    due = plan(cli)
    assert due.returncode == 2
    assert "~ rotate api key ci-deploy (notetaker-production): 97 days old, rotate_every 90d" in due.stdout
    assert "delivered as RECALL_API_KEY_PRODUCTION" in due.stdout
    comment = cli("plan", "-c", "org.yaml", "--format", "markdown").stdout
    top = comment.split("#### ", 1)[0]  # the summary, before any per-section heading
    assert "**API keys (created, rotated, disabled)**" in top
    assert "`rotate api key ci-deploy (notetaker-production): 97 days old, rotate_every 90d" in top
    apply(cli)
    new = secret(cli, "notetaker-production")
    assert new != old and use(sandbox, new)["email"] == "svc-ci@example.com"
    # The old key still works: nothing breaks before its consumers move.
    assert use(sandbox, old)["email"] == "svc-ci@example.com"
    waiting = plan(cli)
    assert "- disable api key" not in waiting.stdout
    assert (
        "stays enabled after its rotation" in waiting.stdout
        and "policy.api_keys.rotation_grace" in waiting.stdout
    )
    # The old key is used after the new one was made: it keeps waiting...
    use(sandbox, old)
    assert "the old key was used after the new key was made" in plan(cli).stdout
    assert plan(cli).returncode == 0  # waiting is no change


def test_after_the_grace_period_the_old_key_is_disabled_even_while_still_used(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    set_clock(api, -97 * DAY)
    apply(cli)
    old = secret(cli, "notetaker-production")
    set_clock(api, -25 * 3600)  # the rotation happens 25 hours ago: the 24h grace has passed
    apply(cli)
    new = secret(cli, "notetaker-production")
    set_clock(api, 0)
    use(sandbox, old)  # still in use, after the new key was made
    ready = plan(cli)
    assert ready.returncode == 2
    assert "- disable api key ci-deploy (notetaker-production)" in ready.stdout
    assert "replaced by the newer key" in ready.stdout
    apply(cli)
    status, _, _ = Api(sandbox.base_url, old).request("GET", "/me/")
    assert status == 401
    assert use(sandbox, new)["email"] == "svc-ci@example.com"
    assert plan(cli).returncode == 0


def test_an_old_key_goes_early_once_its_consumers_use_the_new_one(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    set_clock(api, -97 * DAY)
    apply(cli)
    set_clock(api, 0)
    apply(cli)  # the rotation
    use(sandbox, secret(cli, "notetaker-production"))  # a consumer moved to the new key
    ready = plan(cli)
    assert "- disable api key ci-deploy (notetaker-production)" in ready.stdout


def test_a_failed_delivery_leaves_no_live_key(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    failing = f'{sys.executable} -c "import sys; sys.stdin.read(); sys.exit(4)"'
    result = cli(
        "apply", "-c", "org.yaml", "--auto-approve", "--secrets-command", failing, "--audit-log", "a.jsonl"
    )
    assert result.returncode == 1
    assert "the new key was disabled and deleted" in result.stdout + result.stderr
    assert api.list("/api_keys/") == []
    record = json.loads((cli.cwd / "a.jsonl").read_text().splitlines()[-1])
    assert "could not be delivered" in json.dumps(record)
    assert plan(cli).stdout.count("+ api key ci-deploy") == 2  # the next plan shows exactly what remains


def test_removing_a_user_names_the_keys_it_breaks_and_refuses_a_recently_used_production_one(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    apply(cli)
    users = api.users()
    workspaces = api.workspaces()
    status, made, _ = api.request(
        "POST",
        "/api_keys/",
        {
            "name": "bob-laptop",
            "user_id": users["bob@example.com"]["id"],
            "workspace_id": workspaces["notetaker-production"]["id"],
        },
        headers={"Idempotency-Key": "bob-laptop-1"},
    )
    assert status == 201, made
    use(sandbox, made["key"])  # used just now
    write(
        cli,
        sandbox,
        KEYS.replace("  - {email: bob@example.com, role: developer}\n", "").replace(
            ", bob@example.com]", "]"
        ),
    )
    refused = plan(cli)
    assert refused.returncode == 1
    line = "removing bob@example.com disables 1 API key: bob-laptop on notetaker-production (last used 0 minutes ago)"
    assert line in refused.stdout
    assert "service account" in refused.stderr and "--force" in refused.stderr
    markdown = cli("plan", "-c", "org.yaml", "--format", "markdown", "--force")
    assert markdown.returncode == 0, markdown.stderr
    top = markdown.stdout.split("#### ", 1)[0]
    assert "What this plan breaks" in top and line in top
    assert apply(cli, "--force").returncode == 0
    assert api.list("/api_keys/") and all(k["name"] == "ci-deploy" for k in api.list("/api_keys/"))


def test_revoking_a_users_access_disables_their_keys_there_as_the_plan_says(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    apply(cli)
    users, workspaces = api.users(), api.workspaces()
    made = {}
    for instance in ("notetaker-production", "notetaker-staging"):
        status, made[instance], _ = api.request(
            "POST",
            "/api_keys/",
            {
                "name": "bob-laptop",
                "user_id": users["bob@example.com"]["id"],
                "workspace_id": workspaces[instance]["id"],
            },
            headers={"Idempotency-Key": f"bob-laptop-{instance}"},
        )
        assert status == 201, made[instance]
    write(
        cli,
        sandbox,
        KEYS.replace(
            "production: {members: [svc-ci@example.com, bob@example.com]}",
            "production: {members: [svc-ci@example.com]}",
        ),
    )
    planned = plan(cli)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert (
        "revoking the access of bob@example.com to notetaker-production disables 1 API key: "
        "bob-laptop on notetaker-production (never used)"
    ) in planned.stdout
    apply(cli)
    # What the plan said is what happened: the key there is disabled, the other one works.
    status, body, _ = Api(sandbox.base_url, made["notetaker-production"]["key"]).request("GET", "/me/")
    assert (status, body["code"]) == (401, "authentication_failed")
    use(sandbox, made["notetaker-staging"]["key"])
    assert plan(cli).returncode == 0


def test_demoting_an_admin_leaves_their_keys_read_only_as_the_plan_says(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    with_carol = KEYS.replace(
        "  - {email: bob@example.com, role: developer}\n",
        "  - {email: bob@example.com, role: developer}\n  - {email: carol@example.com, role: admin}\n",
    )
    write(cli, sandbox, with_carol)
    apply(cli)
    status, made, _ = api.request(
        "POST",
        "/api_keys/",
        {
            "name": "carol-laptop",
            "user_id": api.users()["carol@example.com"]["id"],
            "workspace_id": api.workspaces()["notetaker-staging"]["id"],
        },
        headers={"Idempotency-Key": "carol-laptop-1"},
    )
    assert status == 201, made
    carols = Api(sandbox.base_url, made["key"])
    write(
        cli,
        sandbox,
        with_carol.replace("carol@example.com, role: admin", "carol@example.com, role: developer"),
    )
    planned = plan(cli)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert (
        "demoting carol@example.com leaves read-only 1 API key: carol-laptop on notetaker-staging (never used)"
    ) in planned.stdout
    apply(cli)
    # What the plan said is what happened: the key still reads, and may no longer write.
    assert carols.request("GET", "/workspaces/")[0] == 200
    status, body, _ = carols.request("POST", "/workspaces/", {"name": "after-demotion"})
    assert (status, body["code"]) == (403, "permission_denied")


@pytest.mark.parametrize("policy", ["keep", "report", "disable"])
def test_unmanaged_keys_follow_the_policy(cli: Cli, sandbox, api: Api, policy: str) -> None:  # noqa: ANN001
    write(cli, sandbox)
    apply(cli)
    ids = {k: v["id"] for k, v in api.users().items()}
    status, made, _ = api.request(
        "POST",
        "/api_keys/",
        {
            "name": "by-hand",
            "user_id": ids["bob@example.com"],
            "workspace_id": api.workspaces()["notetaker-staging"]["id"],
        },
        headers={"Idempotency-Key": f"by-hand-{policy}"},
    )
    assert status == 201
    write(cli, sandbox, KEYS + f"    unmanaged: {policy}\n")
    result = plan(cli)
    if policy == "keep":
        assert result.returncode == 0 and "by-hand" not in result.stdout
    elif policy == "report":
        assert result.returncode == 0
        assert (
            f"API key notetaker-staging by-hand {made['prefix']} of bob@example.com is not in the configuration (never used)"
            in result.stdout
        )
        drift = cli("drift", "-c", "org.yaml")
        assert "by-hand" in drift.stdout
    else:
        assert result.returncode == 2
        assert (
            f"- disable api key by-hand (notetaker-staging) {made['prefix']} of bob@example.com"
            in result.stdout
        )
        apply(cli)
        assert [k["name"] for k in live_keys(api)] == ["ci-deploy", "ci-deploy"]
        assert plan(cli).returncode == 0


def test_export_then_plan_shows_no_changes(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    apply(cli)
    exported = cli(
        "export", "--api-url", sandbox.base_url, "--token-env", "PROVISIONER_TEST_KEY", "-o", "org.yaml"
    )
    assert exported.returncode == 0, exported.stderr
    assert "api_keys:" in (cli.cwd / "org.yaml").read_text()
    assert plan(cli).returncode == 0


def _what_only_a_config_says(path) -> tuple:  # noqa: ANN001
    desired = load_config(path).desired
    return (
        sorted(u.email for u in desired.users.values() if u.service_account),
        sorted(
            (k.workspace, k.name, k.owner, k.rotate_every_s, k.sink_name) for k in desired.api_keys.values()
        ),
    )


def test_export_with_the_audit_log_is_lossless_and_plans_no_changes(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    apply(cli, "--audit-log", "audit.jsonl")
    declared = _what_only_a_config_says(cli.cwd / "org.yaml")
    assert declared[0] == ["svc-ci@example.com"] and {k[3] for k in declared[1]} == {90 * DAY}
    exported = cli(
        "export",
        "--api-url",
        sandbox.base_url,
        "--token-env",
        "PROVISIONER_TEST_KEY",
        "--audit-log",
        "audit.jsonl",
        "-o",
        "exported.yaml",
    )
    assert exported.returncode == 0, exported.stderr
    text = (cli.cwd / "exported.yaml").read_text()
    assert "{email: svc-ci@example.com, role: developer, service_account: true}" in text
    assert "rotate_every: 90d" in text and 'sink: "RECALL_API_KEY_{ENVIRONMENT}"' in text
    assert _what_only_a_config_says(cli.cwd / "exported.yaml") == declared
    again = cli("plan", "-c", "exported.yaml", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    # Without an apply on record, the export says what it could not restore.
    (cli.cwd / "other.jsonl").write_text("")
    bare = cli(
        "export",
        "--api-url",
        sandbox.base_url,
        "--token-env",
        "PROVISIONER_TEST_KEY",
        "--audit-log",
        "other.jsonl",
    )
    assert bare.returncode == 0, bare.stderr
    assert "service_account" not in bare.stdout and "records no apply" in bare.stderr


def test_a_person_owning_a_production_key_is_refused_by_policy(cli: Cli, sandbox) -> None:  # noqa: ANN001
    write(cli, sandbox, KEYS.replace("owner: svc-ci@example.com", "owner: bob@example.com"))
    result = cli("validate", "-c", "org.yaml")
    assert result.returncode == 1
    assert "bob@example.com is a person" in result.stderr and "service_account: true" in result.stderr
    assert "org.yaml:" in result.stderr


def test_rotate_only_applies_due_rotations_and_leaves_every_other_change(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    set_clock(api, -97 * DAY)
    apply(cli)
    set_clock(api, 0)
    # An unreviewed change lands in the config too: --rotate-only must not apply it.
    write(cli, sandbox, KEYS.replace("users:\n", "users:\n  - {email: eve@example.com, role: admin}\n"))
    result = cli(
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--rotate-only",
        "--secrets-dir",
        "sink",
        "--audit-log",
        "a.jsonl",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("~ rotate api key ci-deploy") == 2
    assert "eve@example.com" not in result.stdout
    assert "1 other change(s) of the plan not applied" in result.stderr
    assert "eve@example.com" not in api.users()
    assert len(live_keys(api)) == 4  # make before break: both old keys still live
    refused = cli("apply", "-c", "org.yaml", "--rotate-only", "--expect", "sha256:" + "0" * 64)
    assert refused.returncode == 1 and "takes no --plan or --expect" in refused.stderr


def test_the_key_a_run_authenticates_with_is_never_disabled_by_it(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    apply(cli)
    admin_id = api.users()["admin@example.com"]["id"]
    status, made, _ = api.request(
        "POST",
        "/api_keys/",
        {
            "name": "provisioner",
            "user_id": admin_id,
            "workspace_id": api.workspaces()["notetaker-staging"]["id"],
        },
        headers={"Idempotency-Key": "own-key"},
    )
    assert status == 201
    write(cli, sandbox, KEYS + "    unmanaged: disable\n")
    result = cli("plan", "-c", "org.yaml", "--detailed-exitcode", token=made["key"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the key this run authenticates with, so not disabled" in result.stdout
    assert "- disable api key provisioner" not in result.stdout


def test_no_key_secret_in_any_output_plan_file_audit_record_or_log(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    set_clock(api, -97 * DAY)
    outputs = [apply(cli, "-vv", "--audit-log", "audit.jsonl")]
    set_clock(api, 0)
    first = [secret(cli, w) for w in ("notetaker-staging", "notetaker-production")]
    saved = cli("-vv", "plan", "-c", "org.yaml", "--out", "plan.json", "--format", "markdown")
    assert saved.returncode == 0, saved.stderr
    outputs.append(saved)
    outputs.append(apply(cli, "-vv", "--plan", "plan.json", "--audit-log", "audit.jsonl"))  # the rotation
    rotated = [secret(cli, w) for w in ("notetaker-staging", "notetaker-production")]
    assert set(rotated).isdisjoint(first)
    outputs.append(cli("-vv", "drift", "-c", "org.yaml", "--audit-log", "audit.jsonl", "--format", "json"))
    outputs.append(cli("-vv", "review", "-c", "org.yaml", "--format", "markdown"))
    texts = [t for r in outputs for t in (r.stdout, r.stderr)]
    texts += [(cli.cwd / "plan.json").read_text(), (cli.cwd / "audit.jsonl").read_text()]
    assert any("rotate api key ci-deploy" in t for t in texts)
    for value in first + rotated:
        for text in texts:
            assert value[4:20] not in text


def test_key_ages_come_from_the_servers_clock_in_both_directions(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    """Issue 23: a key's age is measured on the clock that stamped it (the server's ``Date``)."""
    write(cli, sandbox)
    apply(cli)
    assert plan(cli).returncode == 0  # fresh keys: nothing due
    # The server's clock runs 97 days ahead of this machine's. A few seconds more: ``Date``
    # is whole seconds, so a plan made within a second of the keys could read them as
    # 96 days 23:59:59 old (flaky on a fast machine), which says nothing about the clock.
    set_clock(api, 97 * DAY + 5)
    due = plan(cli)
    assert due.returncode == 2, due.stdout + due.stderr
    assert "rotate api key ci-deploy (notetaker-production): 97 days old, rotate_every 90d" in due.stdout
    set_clock(api, 0)
    assert plan(cli).returncode == 0  # and back: the keys are new again on the server's clock
