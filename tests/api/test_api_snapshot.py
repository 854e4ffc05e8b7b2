"""snapshot: the HTTP edge cases of a plan from a snapshot (``responses``; the sandbox cases are e2e).

Which feed answers mean "read everything again" (410, 400, 404), which are
failures like any other (5xx), an API without a revision, a snapshot folder
that cannot be written, and a snapshot that another user made.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import responses

from provisioner.api.snapshot import _BATCH, SnapshotCache, _encoded, read_with_snapshot
from provisioner.errors import ApiError
from tests.api.test_api_reader import BASE, ME, client, register

CHANGES = f"{BASE}/changes/"


def me_at(revision: int | None, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ME)
    if revision is not None:
        body["organization"]["revision"] = revision
    body.update(changes)
    return body


def first_read(cache: SnapshotCache, revision: int = 5) -> None:
    """A full read at ``revision`` that saves the snapshot."""
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(revision))
        register(rsps)
        _, _, report = read_with_snapshot(client(), cache)
    assert report.source == "full" and list(cache.directory.glob("*.json"))


@pytest.fixture
def cache(tmp_path: Path) -> SnapshotCache:
    return SnapshotCache(tmp_path / "cache", tool_version="1.0")


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_feed_that_cannot_serve_the_revision_means_a_full_read(cache: SnapshotCache, status: int) -> None:
    first_read(cache)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(9))
        rsps.get(CHANGES, status=status, json={"detail": "no", "code": "revision_gone"})
        register(rsps)
        state, _, report = read_with_snapshot(client(), cache)
    assert (report.source, report.reason) == ("full", f"the change feed answered {status}")
    assert set(state.users) == {"admin@example.com", "dev@example.com"}


def test_a_failing_feed_fails_the_plan_as_a_failing_list_would(cache: SnapshotCache) -> None:
    first_read(cache)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(9))
        rsps.get(CHANGES, status=500, json={"detail": "boom", "code": "server_error"})
        with pytest.raises(ApiError) as raised:
            read_with_snapshot(client(), cache)
    assert raised.value.status == 500


def test_the_feed_is_applied_over_the_snapshot(cache: SnapshotCache) -> None:
    first_read(cache)
    renamed = {"id": "w2", "name": "app-stage", "etag": '"w2b"'}
    entries = [
        {"revision": 6, "type": "workspaces", "id": "w2", "removed": False, "object": renamed},
        {"revision": 7, "type": "users", "id": "u2", "removed": True, "object": None},
    ]
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(7))
        rsps.get(CHANGES, json={"next": None, "revision": 7, "results": entries})
        state, _, report = read_with_snapshot(client(), cache)
    assert (report.source, report.since, report.changes) == ("feed", 5, 2)
    assert set(state.workspaces) == {"app-production", "app-stage", "ml-production"}
    assert set(state.users) == {"admin@example.com"}
    # Saved at the revision /me/ answered: the next plan asks nothing but /me/.
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(7))
        again, _, report = read_with_snapshot(client(), cache)
    assert report.source == "snapshot" and again == state


def test_an_api_without_a_revision_is_read_in_full_and_nothing_is_saved(cache: SnapshotCache) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(None))
        register(rsps)
        _, _, report = read_with_snapshot(client(), cache)
    assert (report.source, report.reason) == ("full", "no revision")
    assert not cache.directory.exists()


def test_each_user_has_a_snapshot_of_their_own(cache: SnapshotCache) -> None:
    first_read(cache)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(5, id="u2", email="dev@example.com", role="developer"))
        register(rsps)
        _, _, report = read_with_snapshot(client(), cache)
    assert (report.source, report.reason) == ("full", "no snapshot")
    assert len(list(cache.directory.glob("*.json"))) == 2


def test_a_snapshot_made_under_another_role_is_not_used(cache: SnapshotCache) -> None:
    first_read(cache)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(5, role="developer"))
        register(rsps)
        _, _, report = read_with_snapshot(client(), cache)
    assert (report.source, report.reason) == ("full", "the snapshot's role differs")


def test_another_tool_version_s_snapshot_is_not_used(cache: SnapshotCache) -> None:
    first_read(cache)
    newer = SnapshotCache(cache.directory, tool_version="2.0")
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(5))
        register(rsps)
        _, _, report = read_with_snapshot(client(), newer)
    assert (report.source, report.reason) == ("full", "the snapshot's tool_version differs")


def test_a_folder_that_cannot_be_written_costs_the_next_plan_a_full_read_nothing_more(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = SnapshotCache(blocker / "cache", tool_version="1.0")
    with responses.RequestsMock() as rsps, caplog.at_level(logging.WARNING, "provisioner.api"):
        rsps.get(f"{BASE}/me/", json=me_at(5))
        register(rsps)
        state, _, report = read_with_snapshot(client(), cache)
    assert report.source == "full" and state.users
    assert "could not save the snapshot" in caplog.text
    assert "t0ken" not in caplog.text


def test_a_snapshot_newer_than_the_organization_is_not_used(cache: SnapshotCache) -> None:
    first_read(cache, revision=50)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(3))  # a restored backup, say
        register(rsps)
        _, _, report = read_with_snapshot(client(), cache)
    assert (report.source, report.reason) == ("full", "the snapshot is newer than the organization")


def test_the_feed_pages_are_followed(cache: SnapshotCache) -> None:
    first_read(cache)
    user = {"id": "u3", "email": "new@example.com", "role": "developer", "status": "invited", "etag": '"c"'}
    second = {"revision": 9, "type": "users", "id": "u3", "removed": False, "object": user}
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(9))
        rsps.get(
            CHANGES,
            match=[responses.matchers.query_param_matcher({"since": "5", "page_size": "100"})],
            json={"next": f"{CHANGES}?since=8&page_size=100", "revision": 9, "results": []},
        )
        rsps.get(
            CHANGES,
            match=[responses.matchers.query_param_matcher({"since": "8", "page_size": "100"})],
            json={"next": None, "revision": 9, "results": [second]},
        )
        state, _, _ = read_with_snapshot(client(), cache)
    assert "new@example.com" in state.users


def test_the_snapshot_text_is_the_json_of_its_head_and_objects_in_any_number_of_batches() -> None:
    # Encoded a batch of objects at a time (the C encoder; iterencode is pure Python and
    # was most of a plan from a snapshot): empty collections, a batch's edge and beyond.
    head = {"format": 1, "revision": 7, "endpoint": "https://ex.invalid/api/v1", "name": 'é\u2028"'}
    for sizes in ((), (0,), (1, 0), (_BATCH - 1, _BATCH, _BATCH + 1), (2 * _BATCH + 5,)):
        objects = {
            f"/c{n}/": {str(i): {"id": i, "email": f"u{i}@ex.invalid", "tag": "ü"} for i in range(size)}
            for n, size in enumerate(sizes)
        }
        assert json.loads("".join(_encoded(head, objects))) == {**head, "objects": objects}


# --- the journal: after a feed only what it brought is written -----------------------------

RENAMED = {"id": "w2", "name": "app-stage", "etag": '"w2b"'}
RENAME = {"revision": 6, "type": "workspaces", "id": "w2", "removed": False, "object": RENAMED}
REMOVE = {"revision": 7, "type": "users", "id": "u2", "removed": True, "object": None}


def fed(cache: SnapshotCache, since: int, revision: int, entries: list[dict[str, Any]]) -> Any:
    """A plan whose feed, asked from ``since``, brings ``entries``: its state and report."""
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(revision))
        rsps.get(
            CHANGES,
            match=[responses.matchers.query_param_matcher({"since": str(since), "page_size": "100"})],
            json={"next": None, "revision": revision, "results": entries},
        )
        state, _, report = read_with_snapshot(client(), cache)
    return state, report


def files(cache: SnapshotCache) -> tuple[Path, Path]:
    """The one snapshot in the folder, and its journal's path."""
    (snapshot,) = [p for p in cache.directory.glob("*.json") if not p.name.endswith(".journal.json")]
    return snapshot, snapshot.with_name(snapshot.name.replace(".json", ".journal.json"))


def test_a_feed_is_kept_in_a_journal_and_the_snapshot_is_not_written_again(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache", tool_version="1.0", journal_share=math.inf)
    first_read(cache)
    snapshot, journal = files(cache)
    before = snapshot.read_bytes()
    state, report = fed(cache, 5, 7, [RENAME, REMOVE])
    assert (report.source, report.changes) == ("feed", 2)
    assert snapshot.read_bytes() == before and journal.exists()
    assert oct(journal.stat().st_mode & 0o777) == "0o600"
    # Unchanged since: the snapshot and its journal alone, no feed.
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(7))
        again, _, report = read_with_snapshot(client(), cache)
    assert report.source == "snapshot" and again == state
    # A further change: the feed is asked from the journal's revision, the journal grows.
    user = {"id": "u3", "email": "new@example.com", "role": "developer", "status": "invited", "etag": '"c"'}
    added = {"revision": 8, "type": "users", "id": "u3", "removed": False, "object": user}
    later, report = fed(cache, 7, 8, [added])
    assert (report.since, report.changes) == (7, 1)
    assert set(later.users) == {"admin@example.com", "new@example.com"}
    assert set(later.workspaces) == {"app-production", "app-stage", "ml-production"}
    assert snapshot.read_bytes() == before
    assert [e["revision"] for e in json.loads(journal.read_bytes().rpartition(b"\n")[0])["entries"]] == [
        6,
        7,
        8,
    ]


def test_a_damaged_journal_is_ignored_and_the_feed_starts_at_the_snapshot(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache", tool_version="1.0", journal_share=math.inf)
    first_read(cache)
    fed(cache, 5, 7, [RENAME, REMOVE])
    _, journal = files(cache)
    raw = bytearray(journal.read_bytes())
    raw[10] ^= 1
    journal.write_bytes(bytes(raw))
    state, report = fed(cache, 5, 7, [RENAME, REMOVE])  # the matcher: asked from 5, the snapshot's
    assert (report.source, report.since) == ("feed", 5)
    assert set(state.workspaces) == {"app-production", "app-stage", "ml-production"}


def test_a_journal_past_its_share_writes_the_snapshot_whole_and_is_removed(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache", tool_version="1.0", journal_share=math.inf)
    first_read(cache)
    fed(cache, 5, 6, [RENAME])
    snapshot, journal = files(cache)
    stale = journal.read_bytes()
    strict = SnapshotCache(cache.directory, tool_version="1.0", journal_share=0)
    state, _ = fed(strict, 6, 7, [REMOVE])
    assert not journal.exists()
    body = json.loads(snapshot.read_bytes().rpartition(b"\n")[0])
    assert body["revision"] == 7 and "u2" not in body["objects"]["/users/"]
    # A journal of the snapshot before (a crash between the two writes, say) is not used.
    journal.write_bytes(stale)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(7))
        again, _, report = read_with_snapshot(client(), cache)
    assert report.source == "snapshot" and again == state


def test_a_malformed_feed_entry_fails_the_plan_and_a_malformed_journal_is_ignored(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path / "cache", tool_version="1.0", journal_share=math.inf)
    first_read(cache)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=me_at(6))
        rsps.get(CHANGES, json={"next": None, "revision": 6, "results": [{"revision": 6, "id": "w2"}]})
        with pytest.raises(ApiError, match="change feed answered an entry without a type"):
            read_with_snapshot(client(), cache)
    fed(cache, 5, 6, [RENAME])
    _, journal = files(cache)
    # A journal whose digest holds but whose entry has no type (written by hand, say).
    body = json.loads(journal.read_bytes().rpartition(b"\n")[0])
    body["entries"] = [{"id": "w2", "object": None}]
    text = json.dumps(body).encode()
    journal.write_bytes(text + b"\n" + hashlib.sha256(text).hexdigest().encode())
    state, report = fed(cache, 5, 6, [RENAME])  # the feed from the snapshot's own revision
    assert report.since == 5 and "app-stage" in state.workspaces
