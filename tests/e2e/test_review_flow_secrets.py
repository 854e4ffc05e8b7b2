"""Issue 21: secrets and keys through the review flow, end to end on the sandbox server.

A least-privilege plan (a developer's key, no secret values) is the merge
job's plan; where each secret goes is planned; a pull request cannot route a
secret, relabel production or loosen the guards that judge it; only the
tool's own keys are rotated or disabled as replaced.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support import Api, Cli, org_config

CONFIG = """\
users:
  - {email: admin@example.com, role: admin}
  - {email: svc-ci@example.com, role: developer, service_account: true}
  - {email: dev@example.com, role: developer}
environments:
  staging: {members: [svc-ci@example.com, dev@example.com]}
  production: {members: [svc-ci@example.com]}
workspaces:
  - name: notetaker
    environments: [staging, production]
    webhooks:
      - url: "https://hooks.example.invalid/recall/{environment}"
        events: [bot.status_change]
    transcription:
      deepgram:
        api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}"}
    api_keys:
      - name: ci-deploy
        owner: svc-ci@example.com
        rotate_every: 90d
        sink: "RECALL_CI_DEPLOY_{ENVIRONMENT}"
"""
SECRETS = {"DEEPGRAM_KEY_STAGING": "dg-staging-0123456789", "DEEPGRAM_KEY_PRODUCTION": "dg-production-012345"}
DIGEST = re.compile(r"Plan digest: `?(sha256:[0-9a-f]{64})")


def write(cli: Cli, sandbox, body: str = CONFIG, name: str = "org.yaml") -> None:  # noqa: ANN001
    (cli.cwd / name).write_text(org_config(sandbox.base_url, body))


def applied(cli: Cli, *extra: str) -> subprocess.CompletedProcess:
    result = cli(
        "apply", "-c", "org.yaml", "--auto-approve", "--secrets-dir", "sink", *extra, extra_env=SECRETS
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def developer_key(api: Api, email: str = "dev@example.com") -> str:
    """A key of a developer, made by the admin (it authenticates as that developer)."""
    users = {u["email"]: u["id"] for u in api.list("/users/")}
    workspace = api.list("/workspaces/")[0]["id"]
    status, body, _ = api.request(
        "POST", "/api_keys/", {"name": "laptop", "workspace_id": workspace, "user_id": users[email]}
    )
    assert status == 201, body
    return str(body["key"])


def digest_of(result: subprocess.CompletedProcess) -> str:
    found = DIGEST.findall(result.stdout)
    assert found, result.stdout + result.stderr
    return found[-1]


def test_a_developer_key_without_secrets_plans_exactly_what_the_admin_plans(
    cli: Cli, sandbox, api: Api
) -> None:  # noqa: ANN001
    write(cli, sandbox)
    applied(cli)
    dev = developer_key(api)
    # Unchanged: the developer's plan sees every key and needs no secret value.
    quiet = cli("plan", "-c", "org.yaml", "--detailed-exitcode", token=dev)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "No changes" in quiet.stdout
    # A change: the same changes and the same digest as the admin's plan with every secret.
    write(
        cli, sandbox, CONFIG.replace("events: [bot.status_change]", "events: [bot.status_change, bot.done]")
    )
    admin = cli("plan", "-c", "org.yaml", extra_env=SECRETS)
    developer = cli("plan", "-c", "org.yaml", token=dev)
    assert admin.returncode == developer.returncode == 0, developer.stderr
    assert digest_of(admin) == digest_of(developer)
    assert "secret references cannot be read" not in developer.stderr
    # drift with the developer's key invents nothing about keys.
    drift = cli("drift", "-c", "org.yaml", "--format", "json", token=dev)
    assert "api_key" not in json.dumps(json.loads(drift.stdout).get("unknown", [])) or drift.returncode == 2


def test_changing_only_a_sink_is_a_planned_rotation_listed_among_the_secrets_written(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    applied(cli)
    write(
        cli,
        sandbox,
        CONFIG.replace('sink: "RECALL_CI_DEPLOY_{ENVIRONMENT}"', "sink: RECALL_DEVELOPER_KEY_{ENVIRONMENT}"),
    )
    plan = cli("plan", "-c", "org.yaml", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "delivered as RECALL_DEVELOPER_KEY_PRODUCTION (was RECALL_CI_DEPLOY_PRODUCTION)" in plan.stdout
    assert "RECALL_DEVELOPER_KEY_PRODUCTION <- API key ci-deploy (notetaker-production)" in plan.stdout
    markdown = cli("plan", "-c", "org.yaml", "--format", "markdown").stdout
    head = markdown.split("Plan digest")[0]
    assert "Secrets this apply writes" in head and "`RECALL_DEVELOPER_KEY_PRODUCTION`" in head
    # A scheduled rotation never applies it: it is a reviewed change.
    rotation = cli("apply", "-c", "org.yaml", "--rotate-only", "--auto-approve", "--secrets-dir", "sink")
    assert rotation.returncode == 0, rotation.stderr
    assert "RECALL_DEVELOPER_KEY" not in rotation.stdout
    assert not list((cli.cwd / "sink").rglob("RECALL_DEVELOPER_KEY*"))


def test_destination_names_are_unique_valid_and_never_the_runs_key(cli: Cli, sandbox) -> None:  # noqa: ANN001
    plain = CONFIG.replace('        sink: "RECALL_CI_DEPLOY_{ENVIRONMENT}"\n', "")
    # A plain workspace whose default names collide with the production instance's.
    collide = plain + (
        "  - name: notetaker_production\n"
        "    members: [dev@example.com]\n"
        "    webhooks:\n"
        "      - url: https://hooks.example.invalid/recall/production\n"
        "        events: [bot.status_change]\n"
        "    api_keys:\n"
        "      - {name: ci-deploy, owner: dev@example.com}\n"
        "      - {name: CI.DEPLOY, owner: dev@example.com}\n"
    )
    write(cli, sandbox, collide)
    result = cli("validate", "-c", "org.yaml")
    assert result.returncode == 1
    assert "RECALL_NOTETAKER_PRODUCTION_API_KEY_CI_DEPLOY" in result.stderr
    assert "CI.DEPLOY" in result.stderr and "each secret needs a name of its own" in result.stderr
    assert result.stderr.count("each secret needs a name of its own") == 3  # two keys and the webhook
    for bad, why in (
        ("___", "starts with a letter"),
        ("{", "starts with a letter"),
        ("PROVISIONER_TEST_KEY", "holds the API key"),
    ):
        write(cli, sandbox, CONFIG.replace('sink: "RECALL_CI_DEPLOY_{ENVIRONMENT}"', f'sink: "{bad}"'))
        refused = cli("validate", "-c", "org.yaml")
        assert refused.returncode == 1 and why in refused.stderr, (bad, refused.stderr)
        assert "org.yaml:" in refused.stderr


def test_an_outsiders_key_of_the_same_name_is_never_a_rotation(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    applied(cli)
    users = {u["email"]: u["id"] for u in api.list("/users/")}
    production = {w["name"]: w["id"] for w in api.list("/workspaces/")}["notetaker-production"]
    dev = developer_key(api)
    made = Api(sandbox.base_url, dev).request(
        "POST",
        "/api_keys/",
        {"name": "ci-deploy", "workspace_id": production, "user_id": users["dev@example.com"]},
    )
    assert made[0] == 201, made
    plan = cli("plan", "-c", "org.yaml", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout  # no rotation, no disabling of the service account's key
    assert "is not in the configuration" in plan.stdout and "dev@example.com" in plan.stdout
    rotation = cli("apply", "-c", "org.yaml", "--rotate-only", "--auto-approve", "--secrets-dir", "sink")
    assert rotation.returncode == 0 and "disable api key" not in rotation.stdout
    svc = [k for k in api.list("/api_keys/") if k["user_id"] == users["svc-ci@example.com"]]
    assert len(svc) == 2 and not any(k["disabled"] for k in svc)


def test_a_relabelled_production_instance_keeps_its_call_outs_and_is_in_the_digest(cli: Cli, sandbox) -> None:  # noqa: ANN001
    write(cli, sandbox)
    applied(cli)
    write(cli, sandbox, name="base.yaml")
    relabelled = (
        CONFIG.replace("environments: [staging, production]", "environments: [staging]").replace(
            "  production: {members: [svc-ci@example.com]}\n", ""
        )
        + "  - name: notetaker-production\n    members: [svc-ci@example.com, dev@example.com]\n"
    )
    write(cli, sandbox, relabelled)
    without = cli("plan", "-c", "org.yaml", "--format", "markdown")
    held = cli("plan", "-c", "org.yaml", "--base", "base.yaml", "--format", "markdown")
    assert held.returncode == 0, held.stderr
    assert "Production access changes" in held.stdout and "relabelling production" in held.stdout.lower()
    assert "Production access changes" not in without.stdout
    assert digest_of(held) != digest_of(without)


def test_a_pull_request_cannot_loosen_the_guards_that_judge_it(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    applied(cli)
    write(cli, sandbox, name="base.yaml")
    # An unmanaged production key, used just now.
    users = {u["email"]: u["id"] for u in api.list("/users/")}
    production = {w["name"]: w["id"] for w in api.list("/workspaces/")}["notetaker-production"]
    _, made, _ = api.request(
        "POST",
        "/api_keys/",
        {"name": "hand-made", "workspace_id": production, "user_id": users["admin@example.com"]},
    )
    assert Api(sandbox.base_url, made["key"]).request("GET", "/me/")[0] == 200
    loose = CONFIG + "policy:\n  api_keys:\n    unmanaged: disable\n    recent_use_days: 0\n"
    write(cli, sandbox, loose)
    plan = cli("plan", "-c", "org.yaml", "--base", "base.yaml", "--detailed-exitcode")
    # Shown first, and judged by the base's stricter policy: nothing is disabled.
    assert "policy.api_keys.recent_use_days: 7 -> 0" in plan.stdout
    assert "policy.api_keys.unmanaged: keep -> disable" in plan.stdout
    assert plan.returncode == 0 and "hand-made" not in plan.stdout, plan.stdout + plan.stderr
    # Even without a base, unmanaged: disable does not break a recently used production key.
    write(cli, sandbox, CONFIG + "policy:\n  api_keys:\n    unmanaged: disable\n")
    refused = cli("plan", "-c", "org.yaml")
    assert refused.returncode == 1 and "hand-made" in refused.stderr, refused.stdout + refused.stderr
    assert "breaks the production API key" in refused.stderr
    assert not [k for k in api.list("/api_keys/") if k["name"] == "hand-made" and k["disabled"]]


def test_the_comment_of_a_huge_plan_still_names_every_chosen_destination(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from provisioner.model import ApiKey, Policy, State, User, Workspace
    from provisioner.plan.diff import diff
    from provisioner.render.plan_markdown import render_markdown
    from provisioner.secrets.names import api_key_slug, default_name

    instances = [f"app-env{i:02d}" for i in range(20)]
    users = [User("owner@example.com", "developer", id="u1")]
    keys = [
        ApiKey(
            ws, f"key-{k:02d}", "owner@example.com", sink_name=default_name(ws, api_key_slug(f"key-{k:02d}"))
        )
        for ws in instances
        for k in range(99)
    ]
    keys[1234] = ApiKey(
        keys[1234].workspace, keys[1234].name, "owner@example.com", sink_name="RECALL_DEVELOPER_KEY"
    )
    current = State.build(users, [Workspace(w, id=w) for w in instances])
    desired = State.build(users, [Workspace(w, environment="production") for w in instances], api_keys=keys)
    plan = diff(current, desired, Policy(), now=datetime.now(UTC))
    text = render_markdown(plan)
    assert len(text) < 65000
    assert "`RECALL_DEVELOPER_KEY`" in text.split("#### ")[0]
    assert "1,979 under their default names" in text
