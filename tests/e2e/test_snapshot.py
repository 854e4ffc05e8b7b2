"""Plans from a verified snapshot: the real CLI, a sandbox on loopback, requests counted by the sandbox.

A plan with a snapshot must cost one request when nothing changed, one plus
the feed's pages when something did, a full read when anything is unknown,
and must always be the plan a full read gives (changes, digest, fingerprint).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from provisioner.sandbox import RunningSandbox, create_token
from tests.sandbox.test_sandbox_credentials import full_body
from tests.support import Api, Cli, org_config

BODY = """
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
workspaces:
  - name: notetaker
    members: [alice@acme.com, bob@acme.com]
  - name: playground
    members: [bob@acme.com]
"""
CACHED = {"PROVISIONER_NO_CACHE": ""}
PAGE_SIZE = 100  # the client's page size, for the feed too


def write(tmp_path: Path, sandbox: RunningSandbox, body: str = BODY) -> str:
    path = tmp_path / "org.yaml"
    path.write_text(org_config(sandbox.base_url, body))
    return str(path)


def plan_json(cli: Cli, config: str, *options: str) -> dict[str, Any]:
    done = cli("plan", "-c", config, "--format", "json", "--force", *options, extra_env=CACHED)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def snapshots(cache: Path) -> list[Path]:
    """The state snapshots in a cache folder (beside them: the loaded configs, ``config-*.json``,
    and the snapshots' journals, ``*.journal.json``)."""
    return [
        path
        for path in cache.glob("*.json")
        if not path.name.startswith("config-") and not path.name.endswith(".journal.json")
    ]


def journals(cache: Path) -> list[Path]:
    """The journals in a cache folder: the feed's entries since each snapshot was written."""
    return list(cache.glob("*.journal.json"))


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """What must not differ between a plan from a snapshot and one from a full read."""
    return {k: document[k] for k in ("changes", "digest", "state_fingerprint", "summary", "warnings")}


def requests_made(sandbox: RunningSandbox) -> dict[str, int]:
    """The sandbox's own count of the requests since its last reset (``GET /_sandbox/stats``,
    which counts nothing itself), by route."""
    status, stats, _ = Api(sandbox.base_url, sandbox.token).request("GET", "/_sandbox/stats")
    assert status == 200, stats
    return {route: n for route, n in stats["by_route"].items() if n}


def test_unchanged_costs_one_request_and_changes_cost_the_feed(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = str(tmp_path / "cache")
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    first = plan_json(cli, config, "--cache-dir", cache)
    assert first["changes"] == []

    sandbox.reset_stats()
    again = plan_json(cli, config, "--cache-dir", cache)
    assert requests_made(sandbox) == {"GET /api/v1/me/": 1}
    assert comparable(again) == comparable(first)

    # Out-of-band: 130 new users (more than a feed page) and one changed role.
    for i in range(130):
        status, _, _ = api.request("POST", "/users/", {"email": f"oob{i}@acme.com", "role": "developer"})
        assert status == 201
    bob = api.users()["bob@acme.com"]
    assert api.request("PATCH", f"/users/{bob['id']}/", {"role": "admin"})[0] == 200
    sandbox.reset_stats()
    from_feed = plan_json(cli, config, "--cache-dir", cache)
    assert requests_made(sandbox) == {
        "GET /api/v1/me/": 1,
        "GET /api/v1/changes/": math.ceil(131 / PAGE_SIZE),
    }
    full = plan_json(cli, config, "--no-cache")
    assert comparable(from_feed) == comparable(full)
    assert len(full["changes"]) == 131  # 130 removals and bob's role back


def test_a_few_changes_go_to_the_journal_and_the_snapshot_is_not_written_again(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = tmp_path / "cache"
    for i in range(60):  # enough objects that a few changes are under a tenth of them
        assert api.request("POST", "/users/", {"email": f"many{i}@acme.com", "role": "developer"})[0] == 201
    plan_json(cli, config, "--cache-dir", str(cache))
    (snapshot,) = snapshots(cache)
    written = snapshot.read_bytes()

    first = api.users()["many0@acme.com"]
    assert api.request("PATCH", f"/users/{first['id']}/", {"role": "admin"})[0] == 200
    assert api.request("POST", "/users/", {"email": "late@acme.com", "role": "developer"})[0] == 201
    sandbox.reset_stats()
    fed = plan_json(cli, config, "--cache-dir", str(cache))
    assert requests_made(sandbox) == {"GET /api/v1/me/": 1, "GET /api/v1/changes/": 1}
    assert snapshot.read_bytes() == written and len(journals(cache)) == 1
    assert comparable(fed) == comparable(plan_json(cli, config, "--no-cache"))

    # Unchanged since: the snapshot and its journal alone.
    sandbox.reset_stats()
    assert comparable(plan_json(cli, config, "--cache-dir", str(cache))) == comparable(fed)
    assert requests_made(sandbox) == {"GET /api/v1/me/": 1}

    # One more change: the feed from the journal's revision, the snapshot still as written.
    carol = api.request("POST", "/users/", {"email": "carol@acme.com", "role": "developer"})[1]
    sandbox.reset_stats()
    later = plan_json(cli, config, "--cache-dir", str(cache))
    assert requests_made(sandbox) == {"GET /api/v1/me/": 1, "GET /api/v1/changes/": 1}
    assert any(c["key"] == carol["email"] for c in later["changes"])
    assert snapshot.read_bytes() == written
    assert comparable(later) == comparable(plan_json(cli, config, "--no-cache"))


def test_unknown_snapshots_fall_back_to_a_full_read_with_the_same_plan(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = tmp_path / "cache"
    plan_json(cli, config, "--cache-dir", str(cache))
    (snapshot,) = snapshots(cache)

    # A removal, then the history compacted: the feed answers 410, the plan reads everything.
    carol = api.request("POST", "/users/", {"email": "carol@acme.com", "role": "developer"})[1]
    plan_json(cli, config, "--cache-dir", str(cache))
    assert api.request("DELETE", f"/users/{carol['id']}/")[0] == 204
    assert api.request("POST", "/_sandbox/changes/compact")[0] == 200
    sandbox.reset_stats()
    after_gone = plan_json(cli, config, "--cache-dir", str(cache))
    made = requests_made(sandbox)
    assert made["GET /api/v1/changes/"] == 1 and made["GET /api/v1/users/"] >= 1
    assert comparable(after_gone) == comparable(plan_json(cli, config, "--no-cache"))

    # A snapshot that fails its integrity check: a full read, never its contents.
    text = snapshot.read_bytes()
    snapshot.write_bytes(text.replace(b"admin@example.com", b"mallory@example.com"))
    assert text != snapshot.read_bytes()
    sandbox.reset_stats()
    tampered = plan_json(cli, config, "--cache-dir", str(cache))
    assert "GET /api/v1/users/" in requests_made(sandbox)
    assert comparable(tampered) == comparable(after_gone)
    assert b"mallory" not in snapshot.read_bytes()  # rewritten from the full read

    # --refresh reads in full although the snapshot is current.
    sandbox.reset_stats()
    plan_json(cli, config, "--cache-dir", str(cache), "--refresh")
    assert "GET /api/v1/users/" in requests_made(sandbox)

    # Another organization at another endpoint never uses this one's snapshot.
    assert len(snapshots(cache)) == 1


def test_another_organization_gets_its_own_snapshot(make_sandbox: Any, cli: Cli, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    for n in range(2):
        other = make_sandbox()
        config = tmp_path / f"org{n}.yaml"
        config.write_text(org_config(other.base_url, BODY))
        own = Cli(tmp_path, other.token)
        plan_json(own, str(config), "--cache-dir", cache)
        other.reset_stats()
        plan_json(own, str(config), "--cache-dir", cache)
        assert requests_made(other) == {"GET /api/v1/me/": 1}
    assert len(snapshots(Path(cache))) == 2


def test_the_snapshot_holds_no_key_and_no_secret(sandbox: RunningSandbox, cli: Cli, tmp_path: Path) -> None:
    sentinel = "sk-SENTINEL-deepgram-7f3a9c"
    body = """
users:
  - {email: admin@example.com, role: admin}
workspaces:
  - name: notetaker
    webhooks:
      - {url: "https://hooks.example.invalid/recall", events: [bot.status_change]}
    transcription:
      deepgram:
        api_key: {env: DEEPGRAM_SENTINEL_KEY}
"""
    config = write(tmp_path, sandbox, body)
    cache = tmp_path / "cache"
    env = {**CACHED, "DEEPGRAM_SENTINEL_KEY": sentinel}
    secrets = tmp_path / "secrets"
    applied = cli("apply", "-c", config, "--auto-approve", "--secrets-dir", str(secrets), extra_env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    done = cli("plan", "-c", config, "--cache-dir", str(cache), extra_env=env)
    assert done.returncode == 0, done.stderr
    (snapshot,) = snapshots(cache)
    text = snapshot.read_text()
    assert "/credentials/" in text  # the credential is there, by digest
    assert "/webhook_endpoints/" in text
    assert sentinel not in text and sandbox.token not in text
    # The webhook's signing secret, which the server showed once and apply delivered.
    delivered = [p.read_text().strip() for p in secrets.rglob("*") if p.is_file()]
    assert delivered and all(len(value) > 8 and value not in text for value in delivered)
    assert snapshot.stat().st_mode & 0o077 == 0


def test_a_plan_saved_from_a_snapshot_is_still_refused_when_stale(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = str(tmp_path / "cache")
    plan_json(cli, config, "--cache-dir", cache)
    out = str(tmp_path / "plan.json")
    saved = cli("plan", "-c", config, "--cache-dir", cache, "--out", out, extra_env=CACHED)
    assert saved.returncode == 0, saved.stderr
    # Out of band, after the plan: the organization is not what the plan was made from.
    assert api.request("POST", "/users/", {"email": "late@acme.com", "role": "developer"})[0] == 201
    refused = cli("apply", "-c", config, "--plan", out, "--auto-approve", extra_env=CACHED)
    assert refused.returncode != 0
    assert "stale" in refused.stderr
    assert "alice@acme.com" not in api.users()


def test_the_embedded_sandbox_plans_from_its_snapshot_although_its_port_changes(tmp_path: Path) -> None:
    """``--sandbox DB`` serves on a new port every run: the snapshot is of the db, not the port."""
    config = tmp_path / "org.yaml"
    config.write_text("version: 1\norganization: {region: us-east-1}\n" + BODY)
    db, cache = str(tmp_path / "org.db"), str(tmp_path / "cache")
    cli = Cli(tmp_path, "unused")
    applied = cli("apply", "-c", str(config), "--sandbox", db, "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    lines = []
    for _ in range(3):
        done = cli("plan", "-c", str(config), "--sandbox", db, "--cache-dir", cache, "-v", extra_env=CACHED)
        assert done.returncode == 0, done.stderr
        lines += [line for line in done.stderr.splitlines() if "provisioner.api: state:" in line]
    states = [line.split("state: ", 1)[1] for line in lines]
    assert states[0] == "read in full (no snapshot)"
    assert states[1] == states[2]
    assert states[1].startswith("from the snapshot at revision") and states[1].endswith("(unchanged)")
    assert len(snapshots(Path(cache))) == 1


def test_a_snapshot_is_of_one_user_and_role_because_what_a_list_shows_depends_on_them(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    """A developer reads credentials without their digests: once promoted, the credentials have
    not changed, so the feed would not bring the digests; the role is part of the snapshot."""
    config = write(tmp_path, sandbox)
    assert cli("apply", "-c", config, "--auto-approve").returncode == 0
    users, spaces = api.users(), api.workspaces()
    made = api.request("POST", "/credentials/", full_body(spaces["notetaker"]["id"], "assembly_ai"))
    assert made[0] == 201 and made[1]["secrets"]["api_key"]["digest"]
    bob = Cli(tmp_path, create_token(sandbox.db_path, "bob@acme.com"))
    # The config promotes bob (a key never plans its own demotion).
    config = write(
        tmp_path, sandbox, BODY.replace("bob@acme.com, role: developer", "bob@acme.com, role: admin")
    )
    cache = tmp_path / "cache"
    plan_json(bob, config, "--cache-dir", str(cache))
    (snapshot,) = snapshots(cache)
    assert made[1]["secrets"]["api_key"]["digest"] not in snapshot.read_text()  # a developer's read
    assert api.request("PATCH", f"/users/{users['bob@acme.com']['id']}/", {"role": "admin"})[0] == 200
    sandbox.reset_stats()
    as_admin = plan_json(bob, config, "--cache-dir", str(cache))
    assert "GET /api/v1/credentials/" in requests_made(sandbox)  # read in full, not from the feed
    assert comparable(as_admin) == comparable(plan_json(bob, config, "--no-cache"))
    assert made[1]["secrets"]["api_key"]["digest"] in snapshot.read_text()  # an admin's read now


def test_a_plan_saved_from_a_snapshot_applies_and_its_digest_pins_the_apply(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = str(tmp_path / "cache")
    plan_json(cli, config, "--cache-dir", cache)  # saves the snapshot
    assert api.request("POST", "/users/", {"email": "oob@acme.com", "role": "developer"})[0] == 201
    out = str(tmp_path / "plan.json")
    saved = cli("plan", "-c", config, "--cache-dir", cache, "--out", out, "-v", extra_env=CACHED)
    assert saved.returncode == 0, saved.stderr
    assert "state: from the snapshot at revision" in saved.stderr  # made from the snapshot and the feed
    digest = json.loads(Path(out).read_text())["digest"]
    pinned = cli("apply", "-c", config, "--expect", digest, "--auto-approve", extra_env=CACHED)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert {"alice@acme.com", "bob@acme.com"} <= set(api.users()) and "oob@acme.com" not in api.users()
