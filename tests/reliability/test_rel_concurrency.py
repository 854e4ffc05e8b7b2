"""Point 4: concurrency.

(a) a change on the server between plan and apply makes a saved plan stale: refused, nothing changed;
(b) a change on the server while an apply runs meets If-Match: 412, a re-read, never a blind overwrite;
(c) two applies at once end in the desired state and neither claims a change it did not make.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from tests.local_server import LocalServer, Seen
from tests.reliability.rel_support import (
    cli_argv,
    cli_env,
    run_cli,
    snapshot,
    upstream_of,
    write_config,
)
from tests.reliability.test_rel_crash import (
    DESIRED_BODY,
    DESIRED_MEMBERSHIPS,
    DESIRED_USERS,
    DESIRED_WORKSPACES,
    seeded_db,
)
from tests.support import Api

# --- (a) stale saved plans ------------------------------------------------------------


def _out_of_band_role_change(api: Api) -> None:
    bob = api.users()["bob@acme.com"]
    assert api.request("PATCH", f"/users/{bob['id']}/", {"role": "admin"})[0] == 200


def _out_of_band_membership_deletion(api: Api) -> None:
    users = {u["id"]: u["email"] for u in api.list("/users/")}
    spaces = {w["id"]: w["name"] for w in api.list("/workspaces/")}
    [m] = [
        m
        for m in api.list("/workspace_memberships/")
        if (spaces[m["workspace_id"]], users[m["user_id"]]) == ("app", "alice@acme.com")
    ]
    assert api.request("DELETE", f"/workspace_memberships/{m['id']}/")[0] == 204


@pytest.mark.parametrize(
    "out_of_band",
    [_out_of_band_role_change, _out_of_band_membership_deletion],
    ids=["role-change", "membership-deletion"],
)
def test_saved_plan_made_stale_by_the_server_is_refused(hooked_sandbox, tmp_path: Path, out_of_band) -> None:  # noqa: ANN001
    sandbox, _ = hooked_sandbox(db_path=seeded_db(tmp_path, "stale"))
    api = Api(sandbox.base_url, sandbox.token)
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, DESIRED_BODY)
    planfile = str(tmp_path / "plan.json")
    assert run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--out", planfile).returncode == 0
    out_of_band(api)
    after_oob = snapshot(api)
    sandbox.reset_stats()
    result = run_cli(tmp_path, sandbox.token, "apply", "-c", config, "--plan", planfile)
    assert result.returncode == 1
    assert "stale" in result.stderr
    assert snapshot(api) == after_oob
    writes = [r for r in sandbox.stats()["by_route"] if r.split()[0] in ("POST", "PATCH", "DELETE")]
    assert writes == []


# --- (b) a change during the apply ------------------------------------------------------

DURING_BODY = """
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: developer}
  - {email: bob@acme.com, role: developer}
  - {email: dan@acme.com, role: developer}
workspaces:
  - {name: app, members: [alice@acme.com, bob@acme.com]}
  - {name: legacy, members: [bob@acme.com]}
policy: {max_removals: 10}
"""


def test_change_on_the_server_during_apply_is_never_overwritten(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    # The plan: invite dan; demote alice (admin -> developer); remove carol.
    sandbox, hooks = hooked_sandbox(db_path=seeded_db(tmp_path, "during"))
    api = Api(sandbox.base_url, sandbox.token)
    ids = {e: u["id"] for e, u in api.users().items()}
    seen: list[tuple[str, str, int]] = []
    fired = threading.Event()

    def hook(method: str, path: str, status: int, headers: dict, body: bytes) -> None:
        seen.append((method, path, status))
        if method == "POST" and path.endswith("/users/") and status == 201 and not fired.is_set():
            fired.set()
            # Out of band, after the plan was read: alice is demoted and promoted back
            # (same role, new ETag), carol is promoted.
            assert api.request("PATCH", f"/users/{ids['alice@acme.com']}/", {"role": "developer"})[0] == 200
            assert api.request("PATCH", f"/users/{ids['alice@acme.com']}/", {"role": "admin"})[0] == 200
            assert api.request("PATCH", f"/users/{ids['carol@acme.com']}/", {"role": "admin"})[0] == 200

    hooks.add(hook)
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, DURING_BODY)
    result = run_cli(tmp_path, sandbox.token, "apply", "-c", config, "--auto-approve", "--parallelism", "1")
    assert fired.is_set()
    assert result.returncode == 1
    assert "failed: update user alice@acme.com: changed on the server" in result.stdout, result.stdout
    assert "failed: delete user carol@acme.com: changed on the server" in result.stdout, result.stdout
    users = api.users()
    assert users["alice@acme.com"]["role"] == "admin"  # the out-of-band value survived
    assert users["carol@acme.com"]["role"] == "admin"  # not removed blindly
    assert "dan@acme.com" in users
    for email, method in (("alice@acme.com", "PATCH"), ("carol@acme.com", "DELETE")):
        path = f"/api/v1/users/{ids[email]}/"
        mine = [(m, s) for m, p, s in seen if p == path]
        assert (method, 412) in mine, mine
        tail = mine[mine.index((method, 412)) :]  # the apply's own request and what followed
        assert ("GET", 200) in tail  # re-read after the 412
        assert (method, 200) not in tail and (method, 204) not in tail  # and not retried blindly


# --- (c) two applies at once ------------------------------------------------------------


def _claims(record: dict, action: str, note: str) -> set[tuple[str, str]]:
    """What a run says it made: applied changes of ``action`` without ``note``
    (``already existed`` / ``already gone`` mean someone else made them)."""
    return {
        (r["type"], r["key"])
        for r in record["applied"]
        if r["action"] == action and not r.get("message", "").startswith(note)
    }


def _objects(state) -> set[tuple[str, str]]:  # noqa: ANN001
    return (
        {("user", e) for e in state.users}
        | {("workspace", w) for w in state.workspaces}
        | {("membership", f"{w}/{e}") for w, e in state.memberships}
    )


def _reads_of_one_plan(sandbox, tmp_path: Path, body: str) -> int:  # noqa: ANN001
    """How many GETs one ``plan`` of ``body`` makes against ``sandbox`` (what an apply reads
    before its first write), measured rather than assumed: it changes as resource types are added."""
    config = write_config(tmp_path / "measure.yaml", sandbox.base_url, body)
    sandbox.reset_stats()
    result = run_cli(tmp_path, sandbox.token, "plan", "-c", config)
    assert result.returncode == 0, result.stdout + result.stderr
    reads = sum(n for route, n in sandbox.stats()["by_route"].items() if route.startswith("GET "))
    assert sandbox.stats()["total"] == reads, "a plan only reads"
    return reads


def test_two_applies_at_once_converge_and_never_double_count(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    sandbox, _ = hooked_sandbox(db_path=seeded_db(tmp_path, "twice"))
    api = Api(sandbox.base_url, sandbox.token)
    before = snapshot(api)
    reads_per_run = _reads_of_one_plan(sandbox, tmp_path, DESIRED_BODY)
    assert reads_per_run >= 4  # at least /me/, users, workspaces, memberships
    # Hold every write until both runs have read everything: both make the same plan.
    all_read = threading.Event()
    lock = threading.Lock()
    counted = {"reads": 0}

    def decide(seen: Seen):  # noqa: ANN202
        if seen.method != "GET":
            assert all_read.wait(30), "the two runs never both finished reading"
        return None

    def rewrite(seen: Seen, status: int, headers: dict, body: bytes) -> bytes:
        if seen.method == "GET":
            with lock:
                counted["reads"] += 1
                if counted["reads"] == 2 * reads_per_run:  # both runs have read all a plan reads
                    all_read.set()
        return body

    with LocalServer(decide, upstream=upstream_of(sandbox), rewrite=rewrite) as proxy:
        config = write_config(tmp_path / "org.yaml", proxy.base_url, DESIRED_BODY)
        logs = [tmp_path / "audit-a.jsonl", tmp_path / "audit-b.jsonl"]
        procs = [
            subprocess.Popen(
                cli_argv("apply", "-c", config, "--auto-approve", "--audit-log", str(log)),
                cwd=tmp_path,
                env=cli_env(sandbox.token),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for log in logs
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
    assert all_read.is_set()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err

    after = snapshot(api)
    assert after.clean(), after
    assert (after.users, after.workspaces, after.memberships) == (
        DESIRED_USERS,
        DESIRED_WORKSPACES,
        DESIRED_MEMBERSHIPS,
    )

    records = [json.loads(log.read_text()) for log in logs]
    plans = [{(r["action"], r["type"], r["key"]) for r in rec["applied"]} for rec in records]
    assert plans[0] == plans[1]  # both runs really had the same plan (the race happened)
    created = _objects(after) - _objects(before)
    deleted = _objects(before) - _objects(after)
    made = [_claims(rec, "create", "already existed") for rec in records]
    removed = [_claims(rec, "delete", "already gone") for rec in records]
    assert made[0] | made[1] == created
    assert made[0] & made[1] == set(), "both runs claim to have created these"
    assert removed[0] | removed[1] == deleted
    assert removed[0] & removed[1] == set(), "both runs claim to have removed these"
