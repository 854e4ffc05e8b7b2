"""The organization revision and the change feed (``GET /revision/``, ``GET /changes/``).

Every write to an object of the organization bumps one monotonic number, the
organization revision; ``GET /changes/?since=REV`` answers the objects
created, changed or removed after ``REV``. This is Kubernetes'
``resourceVersion`` with list-and-watch, or Stripe's events list, for a
client that keeps a snapshot of what it read (``provisioner.api.snapshot``).

Decisions worth knowing:

* **Triggers, not handler code.** SQLite triggers on every object table
  write a row to ``changes`` in the writer's own transaction, so no handler
  (nor a test's direct SQL, nor ``bulk_seed``) can forget to bump the
  revision, and a rolled-back request bumps nothing.
* **One row per object.** A change replaces the object's earlier row
  (``UNIQUE (tbl, object_id)``) with a new, higher ``rev``. The feed is then
  at most one entry per object, always its latest state, and it can be
  paged on ``rev`` like any keyset: an object that changes while a client
  pages moves ahead of the client and is seen again, never skipped.
* **The revision is AUTOINCREMENT's counter** (``sqlite_sequence``): it never
  goes back, even when the highest row is replaced or compacted away.
* **410 Gone** when ``since`` lies before the horizon (removals older than it
  were compacted away, ``POST /_sandbox/changes/compact``), or after the
  current revision (not a revision of this organization). The client then
  reads everything again.
* **A touch is a change.** An API key's ``last_used_at`` moves on every
  request made with it; the diff reads it, so it is in the feed too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from provisioner.sandbox.resource import MAX_SEQ, ApiProblem, Call, Resource, json_response
from provisioner.sandbox.resource import _page_size as page_size

__all__ = ["HEADER", "SCHEMA", "compact", "current", "feed", "revision"]

# The header every API answer carries: the organization revision its transaction saw.
HEADER = "X-Organization-Revision"

# Object tables and the collection (list path without slashes) each is served under.
COLLECTIONS: Mapping[str, str] = {
    "users": "users",
    "workspaces": "workspaces",
    "memberships": "workspace_memberships",
    "api_keys": "api_keys",
    "webhook_endpoints": "webhook_endpoints",
    "credentials": "credentials",
}


def _triggers(table: str) -> str:
    # DELETE then INSERT rather than INSERT OR REPLACE: a trigger's conflict clause
    # gives way to the outer statement's (an ``UPDATE OR IGNORE users ...`` would make
    # the replace an ignore, and leave the object at its old revision).
    def record(ref: str, removed: int) -> str:
        return (
            f"DELETE FROM changes WHERE tbl = '{table}' AND object_id = {ref}.id; "
            f"INSERT INTO changes (tbl, object_id, removed) VALUES ('{table}', {ref}.id, {removed});"
        )

    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_feed_insert AFTER INSERT ON {table}
BEGIN {record("NEW", 0)} END;
CREATE TRIGGER IF NOT EXISTS {table}_feed_update AFTER UPDATE ON {table}
BEGIN {record("NEW", 0)} END;
CREATE TRIGGER IF NOT EXISTS {table}_feed_delete AFTER DELETE ON {table}
BEGIN {record("OLD", 1)} END;
"""


SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    object_id TEXT NOT NULL,
    removed INTEGER NOT NULL,
    UNIQUE (tbl, object_id)
);
-- Revisions at or below the horizon may have lost their removals to compaction.
CREATE TABLE IF NOT EXISTS changes_horizon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rev INTEGER NOT NULL
);
""" + "".join(_triggers(table) for table in COLLECTIONS)


def current(conn: sqlite3.Connection) -> int:
    """The organization revision: 0 before the first write."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return int(row[0]) if row is not None else 0


def horizon(conn: sqlite3.Connection) -> int:
    """The oldest revision the feed still answers from."""
    row = conn.execute("SELECT rev FROM changes_horizon WHERE id = 1").fetchone()
    return int(row[0]) if row is not None else 0


def compact(conn: sqlite3.Connection) -> int:
    """Forget every removal up to now (as etcd compacts its history); the new horizon."""
    now = current(conn)
    conn.execute("DELETE FROM changes WHERE removed = 1 AND rev <= ?", (now,))
    conn.execute("INSERT OR REPLACE INTO changes_horizon (id, rev) VALUES (1, ?)", (now,))
    return now


def revision(call: Call) -> Response:
    """``GET /revision/``: the organization's id and revision, and nothing else to compute."""
    org = call.conn.execute("SELECT id FROM org LIMIT 1").fetchone()
    return json_response(200, {"organization_id": org["id"], "revision": current(call.conn)})


def _since(call: Call) -> int:
    """``since`` as the contract allows it: ASCII digits, required."""
    raw = call.request.args.get("since")
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_SEQ:
        raise ApiProblem.fields({"since": ["Ensure this value is a revision: an integer of 0 or more."]})
    return int(raw)


def _within_history(call: Call, since: int, now: int) -> None:
    """410 unless the feed still answers from ``since``."""
    oldest = horizon(call.conn)
    if since < oldest or since > now:
        raise ApiProblem.coded(
            410,
            "revision_gone",
            f"Revision {since} is outside this organization's change history ({oldest} to {now}); "
            "read every list again and continue from the revision you read them at.",
        )


# How one caller reads one object of a table whose reads depend on the caller (a
# developer reads a credential without its digests): the object as that caller's list
# shows it, or None when the list leaves it out.
View = Callable[[Call, dict[str, Any]], dict[str, Any] | None]


def feed(call: Call, resources: Mapping[str, Resource], views: Mapping[str, View]) -> Response:
    """``GET /changes/?since=REV``: one page of the latest change of each object changed after REV.

    ``resources`` maps each object table to how its objects are shown;
    ``views`` the tables whose reads depend on the caller to that rule, so
    the feed shows each object exactly as the caller's list would. The
    ``next`` link is the same request with ``since`` at the page's last
    revision: the feed is its own keyset.
    """
    # Every malformed parameter is a 400 before the history is consulted.
    since = _since(call)
    size = page_size(call.request.args.get("page_size"))
    now = current(call.conn)
    _within_history(call, since, now)
    rows = call.conn.execute(
        "SELECT rev, tbl, object_id, removed FROM changes WHERE rev > ? ORDER BY rev LIMIT ?",
        (since, size + 1),
    ).fetchall()
    more = len(rows) > size
    entries = (_entry(call, row, resources, views) for row in rows[:size])
    results = [entry for entry in entries if entry is not None]
    next_link = None
    if more:
        query = {"since": str(rows[size - 1]["rev"]), "page_size": str(size)}
        next_link = f"{call.request.host_url.rstrip('/')}{call.request.path}?{urlencode(query)}"
    return json_response(200, {"next": next_link, "revision": now, "results": results})


def _entry(
    call: Call, row: sqlite3.Row, resources: Mapping[str, Resource], views: Mapping[str, View]
) -> dict[str, Any] | None:
    """One feed entry, or None when the caller's list would not show the object."""
    resource = resources[row["tbl"]]
    obj = None
    if not row["removed"]:
        found = call.conn.execute(
            f"SELECT * FROM {resource.table} WHERE id = ?", (row["object_id"],)
        ).fetchone()
        if found is not None:
            obj = resource.to_json(found)
            view = views.get(row["tbl"])
            if view is not None:
                obj = view(call, obj)
                if obj is None:
                    return None
    return {
        "revision": row["rev"],
        "type": COLLECTIONS[row["tbl"]],
        "id": row["object_id"],
        "removed": obj is None,
        "object": obj,
    }
