"""The organization revision and the change feed (``/revision/``, ``/changes/``), over real HTTP."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from provisioner.sandbox import RunningSandbox
from tests.sandbox.conftest import Api
from tests.sandbox.test_sandbox_credentials import create_credential, full_body

HEADER = "X-Organization-Revision"


def revision(api: Api) -> int:
    response = api.get("/revision/")
    assert response.status_code == 200, response.text
    body = response.json()
    assert int(response.headers[HEADER]) == body["revision"]
    return int(body["revision"])


def feed(api: Api, since: int, page_size: int = 100) -> tuple[list[dict[str, Any]], int]:
    """Every entry since ``since``, following ``next``; and how many pages it took."""
    entries: list[dict[str, Any]] = []
    url: str | None = f"/changes/?since={since}&page_size={page_size}"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.text
        pages += 1
        entries += response.json()["results"]
        url = response.json()["next"]
    return entries, pages


def test_every_write_bumps_the_revision_and_reads_do_not(api: Api) -> None:
    start = revision(api)
    assert revision(api) == start
    assert api.get("/users/").status_code == 200
    assert revision(api) == start
    made = api.post("/users/", {"email": "new@example.com", "role": "developer"})
    assert made.status_code == 201
    # The answer to a write carries the revision after it.
    after_create = int(made.headers[HEADER])
    assert after_create > start
    assert revision(api) == after_create
    user = made.json()
    patched = api.patch(f"/users/{user['id']}/", {"role": "admin"})
    assert int(patched.headers[HEADER]) > after_create
    me = api.get("/me/").json()
    assert me["organization"]["revision"] == int(patched.headers[HEADER])
    # A refused write changes nothing, so it bumps nothing.
    before = revision(api)
    assert api.post("/users/", {"email": "new@example.com", "role": "developer"}).status_code == 409
    assert revision(api) == before


def test_list_pages_are_stamped_with_the_revision(api: Api) -> None:
    now = revision(api)
    for path in ("/users/", "/workspaces/", "/workspace_memberships/", "/api_keys/", "/credentials/"):
        assert int(api.get(path).headers[HEADER]) == now, path


def test_the_feed_holds_the_latest_state_of_each_object_changed_and_the_removed_ones(api: Api) -> None:
    start = revision(api)
    space = api.post("/workspaces/", {"name": "alpha"}).json()
    user = api.post("/users/", {"email": "u@example.com", "role": "developer"}).json()
    member = api.post("/workspace_memberships/", {"workspace_id": space["id"], "user_id": user["id"]}).json()
    renamed = api.patch(f"/workspaces/{space['id']}/", {"name": "beta"}).json()
    assert api.delete(f"/workspace_memberships/{member['id']}/").status_code == 204
    entries, _ = feed(api, start)
    by_id = {entry["id"]: entry for entry in entries}
    # One entry per object, its latest state.
    assert len(by_id) == len(entries) == 3
    assert by_id[space["id"]]["object"] == renamed
    assert by_id[space["id"]]["type"] == "workspaces"
    assert by_id[user["id"]]["object"] == api.get(f"/users/{user['id']}/").json()
    assert by_id[member["id"]] == {
        "revision": by_id[member["id"]]["revision"],
        "type": "workspace_memberships",
        "id": member["id"],
        "removed": True,
        "object": None,
    }
    revisions = [entry["revision"] for entry in entries]
    assert revisions == sorted(revisions) and revisions[-1] == revision(api)
    # Nothing since now.
    assert feed(api, revision(api))[0] == []


def test_the_feed_pages_and_an_object_changed_while_paging_is_seen_again_further_on(api: Api) -> None:
    start = revision(api)
    made = [api.post("/users/", {"email": f"p{i}@example.com", "role": "developer"}).json() for i in range(5)]
    first = api.get(f"/changes/?since={start}&page_size=2").json()
    assert [entry["id"] for entry in first["results"]] == [made[0]["id"], made[1]["id"]]
    assert first["next"] is not None
    # Change the first user while the client pages: it moves past the client.
    changed = api.patch(f"/users/{made[0]['id']}/", {"role": "admin"}).json()
    rest: list[dict[str, Any]] = []
    url = first["next"]
    while url:
        page = api.get(url).json()
        rest += page["results"]
        url = page["next"]
    assert [entry["id"] for entry in rest] == [m["id"] for m in made[2:]] + [made[0]["id"]]
    assert rest[-1]["object"] == changed


def test_using_an_api_key_is_a_change_because_the_diff_reads_last_used_at(api: Api) -> None:
    space = api.post("/workspaces/", {"name": "keys"}).json()
    me = api.get("/me/").json()
    made = api.post("/api_keys/", {"name": "ci", "workspace_id": space["id"], "user_id": me["id"]}).json()
    keyed = Api(api.base_url, made["key"])
    start = revision(api)
    assert keyed.get("/users/").status_code == 200
    entries, _ = feed(api, start)
    assert [entry["id"] for entry in entries] == [made["id"]]
    assert entries[0]["object"]["last_used_at"] is not None


def test_a_revision_outside_the_history_is_410_and_compaction_moves_the_horizon(api: Api) -> None:
    user = api.post("/users/", {"email": "gone@example.com", "role": "developer"}).json()
    before_removal = revision(api)
    assert api.delete(f"/users/{user['id']}/").status_code == 204
    assert api.get(f"/changes/?since={revision(api) + 1}").status_code == 410
    compacted = api.post("/_sandbox/changes/compact")
    assert compacted.status_code == 200
    horizon = compacted.json()["horizon"]
    assert horizon == revision(api)
    gone = api.get(f"/changes/?since={before_removal}")
    assert gone.status_code == 410
    assert gone.json()["code"] == "revision_gone"
    assert api.get(f"/changes/?since={horizon}").status_code == 200


@pytest.mark.parametrize("since", ["", "-1", "+1", "1_0", "abc", "\u0661", "99999999999999999999"])
def test_since_is_ascii_digits_or_a_field_error(api: Api, since: str) -> None:
    response = api.get("/changes/", params={"since": since})
    assert response.status_code == 400
    assert "since" in response.json()


def test_the_feed_needs_since_and_a_key(sandbox: RunningSandbox) -> None:
    assert Api(sandbox.base_url, sandbox.token).get("/changes/").status_code == 400
    assert Api(sandbox.base_url, None).get("/changes/?since=0").status_code == 401
    assert Api(sandbox.base_url, None).get("/revision/").status_code == 401


def test_the_feed_keeps_the_latency_knob(make_sandbox: Callable[..., RunningSandbox]) -> None:
    slow = make_sandbox(latency_ms=50)
    api = Api(slow.base_url, slow.token)
    response = api.get("/changes/?since=0")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.05
    assert api.get("/_sandbox/stats").json()["by_route"]["GET /api/v1/changes/"] == 1


def test_the_feed_shows_each_object_as_the_caller_s_list_does(
    api: Api, developer_api: Api, workspace: dict[str, Any]
) -> None:
    """A developer reads a credential without its digests: in the feed too."""
    start = revision(api)
    created = create_credential(api, full_body(workspace["id"], "assembly_ai"))
    assert created["secrets"]["api_key"]["digest"]
    as_admin = {entry["id"]: entry["object"] for entry in feed(api, start)[0]}
    as_developer = {entry["id"]: entry["object"] for entry in feed(developer_api, start)[0]}
    assert as_admin[created["id"]] == api.walk("/credentials/")[0]
    assert as_developer[created["id"]] == developer_api.walk("/credentials/")[0]
    assert as_developer[created["id"]]["secrets"] == {"api_key": None}


def test_the_feed_and_the_revision_keep_the_rate_and_fault_knobs(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    limited = make_sandbox(rate_limit=1)
    api = Api(limited.base_url, limited.token)
    assert api.get("/changes/?since=0").status_code == 200
    throttled = api.get("/revision/")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    failing = make_sandbox(fail_rate=1.0, seed=1)
    broken = Api(failing.base_url, failing.token)
    assert broken.get("/changes/?since=0").status_code in (500, 503)
    assert broken.get("/revision/").status_code in (500, 503)


def test_a_write_whose_statement_ignores_conflicts_still_moves_the_object_in_the_feed(
    sandbox: RunningSandbox, api: Api
) -> None:
    """A trigger's own conflict clause gives way to the outer statement's (SQLite): the feed's
    triggers must not need one, or an ``UPDATE OR IGNORE`` would leave the object behind."""
    user = api.post("/users/", {"email": "quiet@example.com", "role": "developer"}).json()
    start = revision(api)
    db = sqlite3.connect(sandbox.db_path)
    with db:
        db.execute("UPDATE OR IGNORE users SET role = 'admin', rev = rev + 1 WHERE id = ?", (user["id"],))
    db.close()
    entries, _ = feed(api, start)
    assert [(entry["id"], entry["object"]["role"]) for entry in entries] == [(user["id"], "admin")]
