"""Recall.ai's real v2 API end to end: the CLI against the sandbox server, a key per workspace instance.

The config is integrations-only (workspace instances and their Zoom apps, no
users): it needs no organization key, and the sandbox's request statistics
show it never touches the management contract.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from provisioner.sandbox import RunningSandbox
from tests.contract import ContractChecker
from tests.support import Cli

ENVIRONMENTS = ("staging", "production")
# Secret values that must never appear in any output, file, record or log.
SENTINELS = {
    "ZOOM_CLIENT_SECRET_STAGING": "sentinel-cs-staging-7f3a",
    "ZOOM_CLIENT_SECRET_PRODUCTION": "sentinel-cs-production-9b1c",
    "ZOOM_WEBHOOK_SECRET_STAGING": "sentinel-ws-staging-2d4e",
    "ZOOM_WEBHOOK_SECRET_PRODUCTION": "sentinel-ws-production-5e6f",
}
ZOOM = "/api/v2/zoom-oauth-apps/"


def integrations_config(api_url: str, client_id: str = "zoom-{environment}") -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        organization:
          api_url: {api_url}
          name: acme
          workspace_token_env: "RECALL_API_KEY_{{ENVIRONMENT}}"
        environments:
          staging: {{}}
          production: {{}}
        workspaces:
          - name: notetaker
            environments: [staging, production]
            platforms:
              zoom:
                client_id: "{client_id}"
                client_secret: {{env: "ZOOM_CLIENT_SECRET_{{ENVIRONMENT}}"}}
                webhook_secret: {{env: "ZOOM_WEBHOOK_SECRET_{{ENVIRONMENT}}"}}
        """
    )


class V2:
    """The sandbox's v2 API with one workspace's key (the test's own view, as curl would have it)."""

    def __init__(self, sandbox: RunningSandbox, key: str) -> None:
        self.url = sandbox.url
        self.headers = {"Authorization": f"Token {key}"}

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, timeout=10, **kwargs)

    def apps(self) -> list[dict[str, Any]]:
        return list(self("GET", ZOOM).json()["results"])


@pytest.fixture
def world(make_sandbox: Callable[..., RunningSandbox], tmp_path: Path) -> dict[str, Any]:
    sandbox = make_sandbox(recall_limits=True)
    keys = {env: sandbox.workspace_key(f"notetaker-{env}") for env in ENVIRONMENTS}
    env = {f"RECALL_API_KEY_{e.upper()}": key for e, key in keys.items()} | SENTINELS
    # No organization key at all: an integrations-only config must not need one.
    cli = Cli(tmp_path, token="", env=env)
    config = tmp_path / "integrations.yaml"
    config.write_text(integrations_config(sandbox.base_url))
    sandbox.reset_stats()
    return {
        "sandbox": sandbox,
        "cli": cli,
        "config": config,
        "v2": {e: V2(sandbox, k) for e, k in keys.items()},
        "outputs": [],
    }


def run(world: dict[str, Any], *args: str, expect: int = 0) -> str:
    result = world["cli"](*args)
    world["outputs"].append(result.stdout + result.stderr)
    assert result.returncode == expect, result.stdout + result.stderr
    return str(result.stdout + result.stderr)


def assert_only_v2(world: dict[str, Any]) -> None:
    routes = world["sandbox"].stats()["by_route"]
    assert routes, "no request at all"
    assert [r for r in routes if " /api/v2/" not in r] == []
    assert world["sandbox"].stats()["throttled"] == 0


def assert_no_sentinel(world: dict[str, Any], tmp_path: Path) -> None:
    texts = list(world["outputs"])
    # Every file the runs wrote (plan files, audit log); not the sandbox's db, which holds
    # the secrets as the real API does.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("sandbox-")]
    texts += [p.read_text(errors="replace") for p in written]
    for text in texts:
        for value in SENTINELS.values():
            assert value not in text


def test_zoom_apps_per_environment_created_rotated_replaced_and_drift(
    world: dict[str, Any], tmp_path: Path
) -> None:
    config = str(world["config"])
    plan = run(world, "plan", "--detailed-exitcode", "-c", config, "--out", "plan.json", expect=2)
    assert "Zoom OAuth app zoom-staging (notetaker-staging)" in plan
    assert "Zoom OAuth app zoom-production (notetaker-production)" in plan
    run(world, "apply", "-c", config, "--plan", "plan.json", "--audit-log", "audit.jsonl", "-vv")
    for env in ENVIRONMENTS:
        (app,) = world["v2"][env].apps()
        assert (app["client_id"], app["kind"]) == (f"zoom-{env}", "account_level")
        assert app["client_secret"] == SENTINELS[f"ZOOM_CLIENT_SECRET_{env.upper()}"]
    for form in ("json", "markdown"):
        assert "zoom-production" in run(world, "plan", "-c", config, "--format", form)
    # -v logs each request (the live smoke test relies on this line).
    assert "GET /api/v2/zoom-oauth-apps/ 200" in run(world, "plan", "-c", config, "-v")
    # Applied: nothing left to do (the secrets compare equal by value, in memory).
    assert "No changes" in run(world, "plan", "--detailed-exitcode", "-c", config, expect=0)
    # The webhooks never validated: plan says so, with the URL to set in Zoom.
    staging_app = world["v2"]["staging"].apps()[0]
    assert f"{ZOOM}{staging_app['id']}/webhook" in run(
        world, "plan", "--detailed-exitcode", "-c", config, expect=0
    )

    # webhook_secret rotated: an in-place PATCH of that secret alone.
    world["cli"].env["ZOOM_WEBHOOK_SECRET_STAGING"] = SENTINELS["ZOOM_WEBHOOK_SECRET_STAGING"] = (
        "sentinel-ws-2-8a8a"
    )
    rotated = run(world, "plan", "--detailed-exitcode", "-c", config, expect=2)
    assert "Zoom OAuth app zoom-staging (notetaker-staging): webhook_secret changed" in rotated
    assert "Plan: 0 to add, 1 to change, 0 to remove" in rotated
    run(world, "apply", "-c", config, "--auto-approve", "--audit-log", "audit.jsonl")
    (after,) = world["v2"]["staging"].apps()
    assert after["id"] == staging_app["id"] and after["webhook_secret"] == "sentinel-ws-2-8a8a"
    # client_secret changed: a shown replacement (a new app, then the old one deleted),
    # with its consequence, the webhook URL to set on Zoom's side.
    (old,) = world["v2"]["production"].apps()
    world["cli"].env["ZOOM_CLIENT_SECRET_PRODUCTION"] = SENTINELS["ZOOM_CLIENT_SECRET_PRODUCTION"] = (
        "sentinel-cs-2-4b4b"
    )
    replacing = run(world, "plan", "--detailed-exitcode", "-c", config, expect=2)
    assert (
        "Zoom OAuth app zoom-production (notetaker-production): REPLACE (client_secret changed "
        "(new value from env ZOOM_CLIENT_SECRET_PRODUCTION)" in replacing
    )
    assert f"{ZOOM}{old['id']}/webhook" in replacing  # the URL that stops working
    assert "sentinel-cs-2-4b4b" not in replacing
    applied = run(world, "apply", "-c", config, "--auto-approve", "--audit-log", "audit.jsonl")
    (production,) = world["v2"]["production"].apps()
    assert production["id"] != old["id"]
    assert (production["client_secret"], production["client_id"]) == ("sentinel-cs-2-4b4b", "zoom-production")
    assert f"{world['sandbox'].url}{ZOOM}{production['id']}/webhook" in applied
    assert "No changes" in run(world, "plan", "--detailed-exitcode", "-c", config, expect=0)
    assert_only_v2(world)
    assert (tmp_path / "audit.jsonl").is_file() and (tmp_path / "plan.json").is_file()
    assert_no_sentinel(world, tmp_path)
    json.loads(Path(tmp_path / "plan.json").read_text())  # still a plan document


def test_a_client_id_change_is_a_shown_replacement_and_apply_names_the_new_webhook_url(
    world: dict[str, Any], tmp_path: Path
) -> None:
    config = str(world["config"])
    run(world, "apply", "-c", config, "--auto-approve")
    (old,) = world["v2"]["production"].apps()
    world["config"].write_text(
        integrations_config(world["sandbox"].base_url, client_id="zoom2-{environment}")
    )
    plan = run(world, "plan", "--detailed-exitcode", "-c", config, expect=2)
    assert (
        "Zoom OAuth app zoom2-production (notetaker-production): REPLACE (client_id zoom-production → zoom2-production"
        in plan
    )
    assert f"{ZOOM}{old['id']}/webhook" in plan  # the URL that stops working
    applied = run(world, "apply", "-c", config, "--auto-approve")
    (new,) = world["v2"]["production"].apps()
    assert new["id"] != old["id"] and new["client_id"] == "zoom2-production"
    assert f"{world['sandbox'].url}{ZOOM}{new['id']}/webhook" in applied
    assert_only_v2(world)
    assert_no_sentinel(world, tmp_path)


def test_out_of_band_changes_are_drift(world: dict[str, Any], tmp_path: Path) -> None:
    config = str(world["config"])
    run(world, "apply", "-c", config, "--auto-approve", "--audit-log", "audit.jsonl")
    staging = world["v2"]["staging"]
    (app,) = staging.apps()
    # Someone rotates the client secret with curl, and adds a second app.
    assert (
        staging("PATCH", f"{ZOOM}{app['id']}/", json={"client_secret": "sentinel-oob-1"}).status_code == 200
    )
    extra = {"kind": "user_level", "client_id": "stray", "client_secret": "x-1", "webhook_secret": "x-2"}
    assert staging("POST", ZOOM, json=extra).status_code == 201
    SENTINELS["OOB"] = "sentinel-oob-1"
    try:
        drift = run(world, "drift", "-c", config, "--audit-log", "audit.jsonl", expect=2)
        assert "notetaker-staging" in drift and "client_secret" in drift
        assert "stray" in drift
        assert_no_sentinel(world, tmp_path)
    finally:
        del SENTINELS["OOB"]
    assert_only_v2(world)


def test_export_then_plan_shows_no_changes(world: dict[str, Any], tmp_path: Path) -> None:
    run(world, "apply", "-c", str(world["config"]), "--auto-approve")
    cli = world["cli"]
    for env in ENVIRONMENTS:  # the export names each instance's key by the instance
        cli.env[f"RECALL_API_KEY_NOTETAKER_{env.upper()}"] = cli.env[f"RECALL_API_KEY_{env.upper()}"]
    exported = run(
        world,
        "export",
        "--api-url",
        world["sandbox"].base_url,
        "--workspace-token-env",
        "RECALL_API_KEY_{WORKSPACE}",
        "--workspace",
        "notetaker-staging",
        "--workspace",
        "notetaker-production",
        "-o",
        "exported.yaml",
    )
    text = (tmp_path / "exported.yaml").read_text()
    assert "client_id: zoom-production" in text and "kind: account_level" in text
    assert 'workspace_token_env: "RECALL_API_KEY_{WORKSPACE}"' in text
    variables = [line.strip() for line in exported.splitlines() if line.startswith("  SECRET_")]
    assert len(variables) == 4  # client_secret and webhook_secret of two instances
    for name in variables:
        env = "PRODUCTION" if "_PRODUCTION_" in name else "STAGING"
        secret = "CLIENT_SECRET" if name.endswith("_CLIENT_SECRET") else "WEBHOOK_SECRET"
        cli.env[name] = SENTINELS[f"ZOOM_{secret}_{env}"]
    plan = run(world, "plan", "--detailed-exitcode", "-c", "exported.yaml", expect=0)
    assert "No changes" in plan
    assert_only_v2(world)
    assert_no_sentinel(world, tmp_path)


GROUPS_CONFIG = """\
      google_login_groups:
        - name: meet-bots
          login_mode: only_if_required
          logins:
            - email: bot1@acme.example
              sso_v2_workspace_domain: acme.example
              sso_v2_private_key: {file: "keys/bot1-{environment}.pem"}
              sso_v2_cert: {file: "keys/bot1.crt"}
            - email: bot2@acme.example
              sso_v2_workspace_domain: acme.example
              sso_v2_private_key: {file: "keys/bot2-{environment}.pem"}
              sso_v2_cert: {file: "keys/bot2.crt"}
              is_active: false
"""


def test_a_google_login_group_with_two_logins_one_deactivated(world: dict[str, Any], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    pems = {}
    for bot in ("bot1", "bot2"):
        for env in ENVIRONMENTS:
            pems[f"{bot}-{env}"] = (
                f"-----BEGIN PRIVATE KEY-----\nsentinel-pem-{bot}-{env}\n-----END PRIVATE KEY-----"
            )
            (keys / f"{bot}-{env}.pem").write_text(pems[f"{bot}-{env}"] + "\n")
        (keys / f"{bot}.crt").write_text(
            f"-----BEGIN CERTIFICATE-----\ncert-{bot}\n-----END CERTIFICATE-----\n"
        )
    world["config"].write_text(integrations_config(world["sandbox"].base_url) + GROUPS_CONFIG)
    config = str(world["config"])
    plan = run(world, "plan", "--detailed-exitcode", "-c", config, expect=2)
    assert (
        "Google login group meet-bots (notetaker-production): only_if_required; "
        "logins bot1@acme.example (active), bot2@acme.example (inactive)"
    ) in plan
    run(world, "apply", "-c", config, "--auto-approve")
    for env in ENVIRONMENTS:
        (group,) = world["v2"][env]("GET", "/api/v2/google-login-groups/").json()["results"]
        assert (group["name"], group["login_mode"]) == ("meet-bots", "only_if_required")
        logins = {x["email"]: x for x in group["logins"]}
        assert {e: x["is_active"] for e, x in logins.items()} == {
            "bot1@acme.example": True,
            "bot2@acme.example": False,
        }
        assert logins["bot1@acme.example"]["sso_v2_private_key"] == pems[f"bot1-{env}"]
    assert "No changes" in run(world, "plan", "--detailed-exitcode", "-c", config, expect=0)
    # Reactivate bot2 in staging only, out of band: drift names it.
    (group,) = world["v2"]["staging"]("GET", "/api/v2/google-login-groups/").json()["results"]
    bot2 = next(x for x in group["logins"] if x["email"] == "bot2@acme.example")
    assert world["v2"]["staging"](
        "PATCH", f"/api/v2/google-logins/{bot2['id']}/", json={"is_active": True}
    ).ok
    plan = run(world, "plan", "--detailed-exitcode", "-c", config, expect=2)
    assert "login bot2@acme.example active → inactive" in plan
    run(world, "apply", "-c", config, "--auto-approve")
    # Export the production instance; with the listed variables set, a plan shows no changes.
    cli = world["cli"]
    cli.env["RECALL_API_KEY_NOTETAKER_PRODUCTION"] = cli.env["RECALL_API_KEY_PRODUCTION"]
    exported = run(
        world,
        "export",
        "--api-url",
        world["sandbox"].base_url,
        "--workspace-token-env",
        "RECALL_API_KEY_{WORKSPACE}",
        "--workspace",
        "notetaker-production",
        "-o",
        "exported.yaml",
    )
    assert "is_active: false" in (tmp_path / "exported.yaml").read_text()
    for name in [line.strip() for line in exported.splitlines() if line.startswith("  SECRET_")]:
        if "_GOOGLE_" not in name:
            secret = "CLIENT_SECRET" if name.endswith("_CLIENT_SECRET") else "WEBHOOK_SECRET"
            cli.env[name] = SENTINELS[f"ZOOM_{secret}_PRODUCTION"]
        elif name.endswith("_SSO_V2_PRIVATE_KEY"):
            cli.env[name] = pems["bot1-production" if "_BOT1_" in name else "bot2-production"]
        else:
            cli.env[name] = (keys / ("bot1.crt" if "_BOT1_" in name else "bot2.crt")).read_text().rstrip("\n")
    assert "No changes" in run(world, "plan", "--detailed-exitcode", "-c", "exported.yaml", expect=0)
    assert_only_v2(world)
    texts = world["outputs"] + [p.read_text() for p in tmp_path.glob("*.json*")]
    for pem in pems.values():
        assert all(pem not in text and pem.splitlines()[1] not in text for text in texts)


def test_review_shows_each_zoom_webhook_validated_or_never(
    world: dict[str, Any], tmp_path: Path, contract_checker: ContractChecker
) -> None:
    """``webhook_last_validation`` feeds the access review: an app Zoom never validated stands out."""
    from jsonschema import Draft202012Validator

    config = str(world["config"])
    run(world, "apply", "-c", config, "--auto-approve")
    (staging,) = world["v2"]["staging"].apps()
    # Zoom validates the staging app's webhook (its endpoint.url_validation event, no key).
    event = {"event": "endpoint.url_validation", "payload": {"plainToken": "tok-1"}}
    answer = requests.post(f"{world['sandbox'].url}{ZOOM}{staging['id']}/webhook", json=event, timeout=10)
    assert answer.status_code == 200
    # Zoom's receiver is left out of recall-v2.yaml on purpose (Zoom calls it, provisioner never does).
    contract_checker.violations[:] = [
        v for v in contract_checker.violations if not v.path.endswith("/webhook")
    ]

    document = json.loads(run(world, "review", "-c", config, "--format", "json"))
    schema = json.loads(Path("schemas/review.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(document)) == []
    by_workspace = {i["workspace"]: i for i in document["integrations"]}
    assert by_workspace["notetaker-production"]["status"] == "never validated"
    assert by_workspace["notetaker-production"]["attention"] is True
    assert by_workspace["notetaker-staging"]["status"] == "validated"
    assert by_workspace["notetaker-staging"]["checked_at"]
    assert all(i["declared"] and i["kind"] == "zoom_oauth_app" for i in document["integrations"])

    markdown = run(world, "review", "-c", config, "--format", "markdown")
    assert (
        "Zoom OAuth app `zoom-production` — `notetaker-production` — production — **webhook never validated"
        in (markdown)
    )
    html = run(world, "review", "-c", config, "--format", "html")
    assert 'href="#integrations"' in html and "webhook never validated" in html
    # drift says so too, for the production app only (staging's webhook now validates).
    drift = run(world, "drift", "-c", config)
    assert "zoom-production of notetaker-production has never validated its webhook" in drift
    assert "notetaker-staging has never validated" not in drift
    assert_only_v2(world)
    assert_no_sentinel(world, tmp_path)
