"""A verified snapshot of what a plan read, so that the next plan reads only what changed.

``read_with_snapshot`` asks ``GET /me/`` (the identity, and the organization
revision in ``organization.revision``). Then:

* the snapshot's revision is the current one: nothing changed, the state is
  the snapshot's (one request in all);
* it is older: ``GET /changes/?since=REV`` brings every object created,
  changed or removed since, applied over the snapshot's objects;
* anything unknown falls back to a full read: no snapshot, a 410 (or 400,
  404) from the feed, a snapshot of another organization, endpoint, user,
  role, tool version or format, one that fails its integrity check, or an
  API whose ``/me/`` has no revision.

Either way the objects go through the very same parsing as a full read (each
type's ``read``, through ``read_state``, over a ``Lister`` that answers from
the objects held), so a plan from a snapshot is the plan of a full read.

Decisions worth knowing:

* **The snapshot holds the API's list objects as they came**, not parsed
  ones: the feed speaks in list objects too, and parsing stays in one place.
  Lists show no secret (keys by prefix, credentials by salted digests, to
  admins only); the file is written ``0600`` anyway. It is the body's JSON,
  a newline, then the body's SHA-256, written streamed and checked before
  it is parsed: that catches a torn or damaged file, not an attacker (whoever
  can write the file can write the digest), which is why ``apply`` never
  reads a snapshot.
* **The revision saved is the one ``/me/`` answered before anything else was
  read.** Whatever changed after it, during the listings or the feed, is in
  the next feed again: applying an object's latest state twice is harmless,
  missing a change is not.
* **Only collections the feed covers** (``FEED_COLLECTIONS``) are kept; a read
  that lists anything else (a type added later) saves no snapshot, so a new
  type can never be served stale.
* **A failure is never a fallback.** A 5xx, a dropped connection or a 429
  from the feed fails the plan as it would fail a full read; only the
  answers that say "I cannot serve this revision" (410) or "no feed here"
  (400, 404) mean a full read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner import collector
from provisioner.api.client import ApiClient
from provisioner.api.reader import parse_identity, read_me, read_state
from provisioner.errors import ApiError
from provisioner.model import Identity, State

__all__ = [
    "CHANGES",
    "FEED_COLLECTIONS",
    "FORMAT",
    "ReadReport",
    "SnapshotCache",
    "default_cache_dir",
    "read_with_snapshot",
]

log = logging.getLogger("provisioner.api")

CHANGES = "/changes/"
# The list paths the change feed covers (its entries' ``type`` is the path without slashes).
FEED_COLLECTIONS = frozenset(
    (
        "/users/",
        "/workspaces/",
        "/workspace_memberships/",
        "/api_keys/",
        "/webhook_endpoints/",
        "/credentials/",
    )
)
# The snapshot file's format; a file of another format is read again in full.
FORMAT = 1
# Feed answers that mean "no feed for this revision here": read everything again.
_FALL_BACK = frozenset((400, 404, 410))


def default_cache_dir() -> Path:
    """Where snapshots live unless ``--cache-dir`` says otherwise: ``$XDG_CACHE_HOME/provisioner``.

    ``~/.cache/provisioner`` when ``XDG_CACHE_HOME`` is unset or not absolute
    (the XDG base directory rule).
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "provisioner"


@dataclass(frozen=True)
class SnapshotCache:
    """A folder of snapshots, one per (endpoint, organization, user); ``refresh`` reads in full and saves."""

    directory: Path
    refresh: bool = False
    tool_version: str = ""
    # What the snapshot is of, when the client's base URL does not say it for
    # good: an embedded sandbox serves one db on a new port every run.
    endpoint: str | None = None

    def path(self, endpoint: str, identity: Identity) -> Path:
        """The snapshot file of one organization at one endpoint, as one user reads it.

        Per user: two keys of one organization (a developer's for plans, say, and an
        admin's) see different lists, and would otherwise replace each other's snapshot.
        """
        key = f"{endpoint}\n{identity.organization.id}\n{identity.user_id}"
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


@dataclass(frozen=True)
class ReadReport:
    """How a plan's state was read: ``full``, ``snapshot`` (unchanged) or ``feed``."""

    source: str
    revision: int | None = None
    since: int | None = None
    changes: int = 0
    reason: str = ""  # why a full read, when there was a snapshot to consider

    def describe(self) -> str:
        """One line for the log: where the state came from."""
        if self.source == "snapshot":
            return f"from the snapshot at revision {self.revision} (unchanged)"
        if self.source == "feed":
            return (
                f"from the snapshot at revision {self.since} and {self.changes} change(s) "
                f"up to revision {self.revision}"
            )
        return f"read in full ({self.reason})" if self.reason else "read in full"


@dataclass(frozen=True)
class _Snapshot:
    revision: int
    objects: dict[str, dict[str, dict[str, Any]]]  # list path -> id -> object


def _digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def _identity_of(cache: SnapshotCache, endpoint: str, identity: Identity) -> dict[str, Any]:
    """What a snapshot must have been made by to be used: the same tool, endpoint,
    organization, user and role (what a list shows depends on the role: a
    developer reads credentials without their digests, and a promotion changes no credential)."""
    return {
        "format": FORMAT,
        "tool_version": cache.tool_version,
        "endpoint": endpoint,
        "organization_id": identity.organization.id,
        "user_id": identity.user_id,
        "role": identity.role,
    }


def _load(cache: SnapshotCache, endpoint: str, identity: Identity) -> tuple[_Snapshot | None, str]:
    """The snapshot for this endpoint and organization if it passes every check, else why not."""
    path = cache.path(endpoint, identity)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, "no snapshot"
    except OSError as error:
        return None, f"unreadable snapshot ({error.strerror or error})"
    # The file is the body, a newline, then the body's SHA-256: checked before it is parsed.
    text, _, stated = raw.rpartition(b"\n")
    del raw
    if stated.decode("ascii", "replace") != _digest(text):
        return None, "the snapshot fails its integrity check"
    try:
        body = json.loads(text)
    except ValueError:
        return None, "not a snapshot"
    del text  # the objects are built: the bytes are ~30 MB at 10,000 users
    if not isinstance(body, dict):
        return None, "not a snapshot"
    expected = _identity_of(cache, endpoint, identity)
    for name, value in expected.items():
        if body.get(name) != value:
            return None, f"the snapshot's {name} differs"
    revision, objects = body.get("revision"), body.get("objects")
    if not isinstance(revision, int) or not isinstance(objects, dict):
        return None, "not a snapshot"
    return _Snapshot(revision, objects), ""


_BATCH = 2000  # objects encoded at once: C-speed encoding in pieces of ~0.5 MB


def _encoded(head: dict[str, Any], objects: dict[str, dict[str, dict[str, Any]]]) -> Iterator[str]:
    """The snapshot's JSON (``head``'s fields, then ``objects``) in pieces.

    ``json.JSONEncoder.iterencode`` would stream it too, but through the pure
    Python encoder: 1.5-2 s for 10,000 users, most of a plan from a snapshot.
    ``encode`` of a batch of objects at a time runs the C encoder and holds
    one batch's text at a time.
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    yield encoder.encode(head)[:-1] + ',"objects":{'
    for number, (path, held) in enumerate(objects.items()):
        yield ("," if number else "") + encoder.encode(path) + ":{"
        items = list(held.items())
        for start in range(0, len(items), _BATCH):
            yield ("," if start else "") + encoder.encode(dict(items[start : start + _BATCH]))[1:-1]
        yield "}"
    yield "}}"


def _save(cache: SnapshotCache, endpoint: str, identity: Identity, snapshot: _Snapshot) -> None:
    """Write the snapshot atomically, readable by its owner only; a failure is logged, not raised."""
    head = {**_identity_of(cache, endpoint, identity), "revision": snapshot.revision}
    path = cache.path(endpoint, identity)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
                # Streamed, hashed on the way: a 10,000-user snapshot is ~30 MB, never held twice.
                digest = hashlib.sha256()
                for chunk in _encoded(head, snapshot.objects):
                    data = chunk.encode()
                    digest.update(data)
                    handle.write(data)
                handle.write(b"\n" + digest.hexdigest().encode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as error:
        # A cache that cannot be written costs the next plan a full read, nothing more.
        log.warning("could not save the snapshot in %s: %s", path.parent, error.strerror or error)


class _Recorder:
    """A ``Lister`` over the real client that keeps every object it lists, by list path and id."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}

    def iter_pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        for page in self._client.iter_pages(path, params):
            with self._lock:
                held = self.objects.setdefault(path, {})
                for obj in page:
                    held[str(obj.get("id"))] = obj
            yield page

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [obj for page in self.iter_pages(path, params) for obj in page]

    def authenticates_with(self, prefix: str) -> bool:
        return self._client.authenticates_with(prefix)


class _Held:
    """A ``Lister`` that answers listings from held objects, filtered as the API filters them."""

    def __init__(self, client: ApiClient, objects: dict[str, dict[str, dict[str, Any]]]) -> None:
        self._client = client
        self._objects = objects
        self._lock = threading.Lock()
        # (path, filter names) -> filter values -> objects: one pass per listing, not per workspace.
        self._indexes: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], list[dict[str, Any]]]] = {}

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = {name: str(value) for name, value in (params or {}).items() if name != "page_size"}
        names = tuple(sorted(wanted))
        with self._lock:
            index = self._indexes.get((path, names))
            if index is None:
                index = {}
                for obj in self._objects.get(path, {}).values():
                    index.setdefault(tuple(str(obj.get(name)) for name in names), []).append(obj)
                self._indexes[(path, names)] = index
        return list(index.get(tuple(wanted[name] for name in names), ()))

    def iter_pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        yield self.list_all(path, params)

    def authenticates_with(self, prefix: str) -> bool:
        return self._client.authenticates_with(prefix)


def _apply_feed(client: ApiClient, snapshot: _Snapshot) -> tuple[dict[str, dict[str, dict[str, Any]]], int]:
    """The snapshot's objects with every change since its revision applied; and how many changes."""
    objects = {path: dict(held) for path, held in snapshot.objects.items()}
    count = 0
    for page in client.iter_pages(CHANGES, {"since": snapshot.revision}):
        for entry in page:
            count += 1
            path = f"/{entry['type']}/"
            if path not in objects:
                objects[path] = {}
            held = objects[path]
            if entry.get("removed") or entry.get("object") is None:
                held.pop(str(entry["id"]), None)
            else:
                held[str(entry["id"])] = entry["object"]
    return objects, count


def _me(client: ApiClient) -> tuple[Identity, int | None]:
    """``GET /me/``: the identity and the organization revision (None from an API without one)."""
    body = read_me(client)
    revision = (body.get("organization") or {}).get("revision")
    identity = parse_identity(body)
    return identity, revision if isinstance(revision, int) and not isinstance(revision, bool) else None


def read_with_snapshot(
    client: ApiClient, cache: SnapshotCache, *, parallelism: int = 8
) -> tuple[State, Identity, ReadReport]:
    """The current state and identity, read from the snapshot in ``cache`` where it can be trusted.

    The state is the one a full read would give; afterwards the cache holds a
    snapshot of it. Raises as a full read does; never returns a partial state.
    """
    state, identity, report = _read(client, cache, parallelism)
    log.info("state: %s", report.describe())
    return state, identity, report


def _read(client: ApiClient, cache: SnapshotCache, parallelism: int) -> tuple[State, Identity, ReadReport]:
    identity, revision = _me(client)
    endpoint = cache.endpoint or client.endpoint
    if revision is None:
        return read_state(client, parallelism=parallelism), identity, ReadReport("full", reason="no revision")
    reason = "refresh"
    if not cache.refresh:
        with collector.paused():  # ~30 MB of JSON to objects, then to the state: no cycles
            snapshot, reason = _load(cache, endpoint, identity)
        if snapshot is not None:
            report, objects = _from_snapshot(client, snapshot, revision)
            if objects is not None:
                with collector.paused():
                    state = read_state(_Held(client, objects), parallelism=1)
                    if report.source != "snapshot":  # an unchanged snapshot is not written again
                        _save(cache, endpoint, identity, _Snapshot(revision, objects))
                return state, identity, report
            reason = report.reason
    recorder = _Recorder(client)
    state = read_state(recorder, parallelism=parallelism)
    if set(recorder.objects) <= FEED_COLLECTIONS:
        # Every collection a type might list is kept, listed empty or not.
        held = {path: recorder.objects.get(path, {}) for path in sorted(FEED_COLLECTIONS)}
        _save(cache, endpoint, identity, _Snapshot(revision, held))
    return state, identity, ReadReport("full", revision=revision, reason=reason)


def _from_snapshot(
    client: ApiClient, snapshot: _Snapshot, revision: int
) -> tuple[ReadReport, dict[str, dict[str, dict[str, Any]]] | None]:
    """The objects now, from the snapshot and the feed; None (and why in the report) to read in full."""
    if snapshot.revision == revision:
        return ReadReport("snapshot", revision=revision, since=revision), snapshot.objects
    if snapshot.revision > revision:
        return ReadReport("full", reason="the snapshot is newer than the organization"), None
    try:
        objects, count = _apply_feed(client, snapshot)
    except ApiError as error:
        if error.status not in _FALL_BACK:
            raise
        return ReadReport("full", reason=f"the change feed answered {error.status}"), None
    return ReadReport("feed", revision=revision, since=snapshot.revision, changes=count), objects
