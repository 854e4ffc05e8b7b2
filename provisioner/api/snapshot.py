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
* **After a feed, only what the feed brought is written.** Rewriting the
  whole snapshot cost ~0.3 s at 10,000 users, however few the changes. The
  feed's entries since the snapshot's revision go to a journal beside it
  (``<name>.journal.json``: the snapshot's digest and revision, the new
  revision, the entries in feed order), verified like the snapshot and
  replayed over it on load, as the feed itself is. The snapshot is written
  whole again when the journal would outgrow a tenth of its objects
  (``SnapshotCache.journal_share``), and then the journal is removed. A journal that
  fails a check (another snapshot's, damaged, torn) is ignored: the snapshot
  alone is still true at its own revision, and the feed from there brings
  the rest.
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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from provisioner import collector
from provisioner.api.client import ApiClient
from provisioner.api.reader import parse_identity, read_me, read_state
from provisioner.errors import ApiError
from provisioner.frozen import frozen
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


@frozen
class SnapshotCache:
    """A folder of snapshots, one per (endpoint, organization, user); ``refresh`` reads in full and saves."""

    directory: Path
    refresh: bool = False
    tool_version: str = ""
    # What the snapshot is of, when the client's base URL does not say it for
    # good: an embedded sandbox serves one db on a new port every run.
    endpoint: str | None = None
    # The journal holds at most this many entries per object of the snapshot;
    # past it, the snapshot is written whole again (0: always; inf: never).
    journal_share: float = 0.1

    def path(self, endpoint: str, identity: Identity) -> Path:
        """The snapshot file of one organization at one endpoint, as one user reads it.

        Per user: two keys of one organization (a developer's for plans, say, and an
        admin's) see different lists, and would otherwise replace each other's snapshot.
        """
        return self.directory / f"{self._name(endpoint, identity)}.json"

    def journal_path(self, endpoint: str, identity: Identity) -> Path:
        """The journal beside that snapshot: the feed's entries since it was written."""
        return self.directory / f"{self._name(endpoint, identity)}.journal.json"

    @staticmethod
    def _name(endpoint: str, identity: Identity) -> str:
        key = f"{endpoint}\n{identity.organization.id}\n{identity.user_id}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@frozen
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


Objects = dict[str, dict[str, dict[str, Any]]]  # list path -> id -> object
Entry = dict[str, Any]  # one entry of the change feed


@frozen
class _Snapshot:
    """Objects at a revision; ``base``: the snapshot file they came from, and the journal over it."""

    revision: int
    objects: Objects
    base: str = ""  # the snapshot file's digest ("" until it is written)
    base_revision: int = 0
    journal: tuple[Entry, ...] = ()  # the entries since base_revision, applied in ``objects``


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


def _verified_body(path: Path, kind: str) -> tuple[dict[str, Any] | None, str, str]:
    """The JSON body of a snapshot or journal file that passes its integrity check, its digest,
    else None and why not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, "", f"no {kind}"
    except OSError as error:
        return None, "", f"unreadable {kind} ({error.strerror or error})"
    # The file is the body, a newline, then the body's SHA-256: checked before it is parsed.
    text, _, stated = raw.rpartition(b"\n")
    del raw
    digest = _digest(text)
    if stated.decode("ascii", "replace") != digest:
        return None, "", f"the {kind} fails its integrity check"
    try:
        body = json.loads(text)
    except ValueError:
        return None, "", f"not a {kind}"
    del text  # the objects are built: the bytes are ~30 MB at 10,000 users
    if not isinstance(body, dict):
        return None, "", f"not a {kind}"
    return body, digest, ""


def _made_by(body: dict[str, Any], expected: dict[str, Any], kind: str) -> str:
    """Why ``body`` was made by another tool, endpoint, organization, user or role ("" if not)."""
    for name, value in expected.items():
        if body.get(name) != value:
            return f"the {kind}'s {name} differs"
    return ""


def _load(cache: SnapshotCache, endpoint: str, identity: Identity) -> tuple[_Snapshot | None, str]:
    """The snapshot for this endpoint and organization if it passes every check, else why not;
    with its journal replayed over it when that passes its own."""
    expected = _identity_of(cache, endpoint, identity)
    body, digest, reason = _verified_body(cache.path(endpoint, identity), "snapshot")
    if body is None:
        return None, reason
    reason = _made_by(body, expected, "snapshot")
    if reason:
        return None, reason
    revision, objects = body.get("revision"), body.get("objects")
    if not isinstance(revision, int) or not isinstance(objects, dict):
        return None, "not a snapshot"
    base = _Snapshot(revision, objects, base=digest, base_revision=revision)
    entries, journal_revision, reason = _load_journal(cache.journal_path(endpoint, identity), expected, base)
    if entries is None:
        if reason != "no journal":
            log.info("snapshot journal not used: %s", reason)
        return base, ""
    _apply_entries(objects, entries)
    return _Snapshot(journal_revision, objects, digest, revision, tuple(entries)), ""


def _load_journal(
    path: Path, expected: dict[str, Any], base: _Snapshot
) -> tuple[list[Entry] | None, int, str]:
    """The journal's entries and revision when it passes every check and continues ``base``."""
    body, _, reason = _verified_body(path, "journal")
    if body is None:
        return None, 0, reason
    reason = _made_by(body, expected, "journal")
    if reason:
        return None, 0, reason
    if body.get("base") != base.base or body.get("since") != base.revision:
        return None, 0, "the journal continues another snapshot"
    revision, entries = body.get("revision"), body.get("entries")
    if not isinstance(revision, int) or revision < base.revision or not isinstance(entries, list):
        return None, 0, "not a journal"
    if not all(map(_well_formed, entries)):
        return None, 0, "not a journal"
    return entries, revision, ""


def _well_formed(entry: Any) -> bool:
    """Whether a change-feed entry has the shape ``_apply_entries`` reads."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("type"), str)
        and isinstance(entry.get("id"), str | int)
        and isinstance(entry.get("object"), dict | None)
    )


_BATCH = 2000  # objects encoded at once: C-speed encoding in pieces of ~0.5 MB


def _encoded(head: dict[str, Any], objects: Objects) -> Iterator[str]:
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


def _write(path: Path, chunks: Iterable[str]) -> str:
    """Write the chunks, a newline and their SHA-256 atomically, readable by the owner only;
    the digest. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
            # Streamed, hashed on the way: a 10,000-user snapshot is ~30 MB, never held twice.
            digest = hashlib.sha256()
            for chunk in chunks:
                data = chunk.encode()
                digest.update(data)
                handle.write(data)
            handle.write(b"\n" + digest.hexdigest().encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _save(cache: SnapshotCache, endpoint: str, identity: Identity, snapshot: _Snapshot) -> None:
    """Write the whole snapshot (and drop its journal); a failure is logged, not raised."""
    head = {**_identity_of(cache, endpoint, identity), "revision": snapshot.revision}
    path = cache.path(endpoint, identity)
    try:
        _write(path, _encoded(head, snapshot.objects))
        # Written first, removed second: a journal left by a crash between the
        # two names the old snapshot's digest, and is ignored.
        cache.journal_path(endpoint, identity).unlink(missing_ok=True)
    except OSError as error:
        # A cache that cannot be written costs the next plan a full read, nothing more.
        log.warning("could not save the snapshot in %s: %s", path.parent, error.strerror or error)


def _save_after_feed(
    cache: SnapshotCache, endpoint: str, identity: Identity, snapshot: _Snapshot, fed: _Snapshot
) -> None:
    """Keep ``fed`` (``snapshot`` and the feed since): as a journal while it is short, else whole."""
    entries = snapshot.journal + fed.journal
    held = sum(len(objects) for objects in fed.objects.values())
    if not snapshot.base or len(entries) > cache.journal_share * held:
        _save(cache, endpoint, identity, fed)
        return
    body = {
        **_identity_of(cache, endpoint, identity),
        "base": snapshot.base,
        "since": snapshot.base_revision,
        "revision": fed.revision,
        "entries": list(entries),
    }
    path = cache.journal_path(endpoint, identity)
    try:
        _write(path, [json.dumps(body, separators=(",", ":"), ensure_ascii=False)])
    except OSError as error:
        # The snapshot alone is still true at its revision: the next feed is longer, nothing more.
        log.warning("could not save the snapshot journal in %s: %s", path.parent, error.strerror or error)


class _Recorder:
    """A ``Lister`` over the real client that keeps every object it lists, by list path and id."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.objects: Objects = {}

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


def _index(
    objects: Iterable[dict[str, Any]], names: tuple[str, ...]
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """``objects`` by the values of the filters ``names``, as the API compares them (as text)."""
    index: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    if len(names) == 1:  # the usual listing (memberships by workspace): no loop per object
        (name,) = names
        for obj in objects:
            index.setdefault((str(obj.get(name)),), []).append(obj)
        return index
    for obj in objects:
        index.setdefault(tuple([str(obj.get(name)) for name in names]), []).append(obj)
    return index


class _Held:
    """A ``Lister`` that answers listings from held objects, filtered as the API filters them."""

    def __init__(self, client: ApiClient, objects: Objects) -> None:
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
                index = _index(self._objects.get(path, {}).values(), names)
                self._indexes[(path, names)] = index
        return list(index.get(tuple(wanted[name] for name in names), ()))

    def iter_pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        yield self.list_all(path, params)

    def authenticates_with(self, prefix: str) -> bool:
        return self._client.authenticates_with(prefix)


def _apply_entries(objects: Objects, entries: Iterable[Entry]) -> None:
    """Apply change-feed entries, in order, over ``objects`` (in place)."""
    for entry in entries:
        path = f"/{entry['type']}/"
        held = objects.setdefault(path, {})
        if entry.get("removed") or entry.get("object") is None:
            held.pop(str(entry["id"]), None)
        else:
            held[str(entry["id"])] = entry["object"]


def _apply_feed(client: ApiClient, snapshot: _Snapshot, revision: int) -> _Snapshot:
    """The snapshot's objects with every change since its revision applied, at ``revision``;
    its ``journal``: the feed's entries."""
    entries = [entry for page in client.iter_pages(CHANGES, {"since": snapshot.revision}) for entry in page]
    if not all(map(_well_formed, entries)):
        # Never a partial state: a feed we cannot read fails the plan, as a broken list would.
        raise ApiError("the change feed answered an entry without a type, an id or an object", method="GET")
    objects = {path: dict(held) for path, held in snapshot.objects.items()}
    _apply_entries(objects, entries)
    return _Snapshot(revision, objects, journal=tuple(entries))


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
            report, now = _from_snapshot(client, snapshot, revision)
            if now is not None:
                with collector.paused():
                    state = read_state(_Held(client, now.objects), parallelism=1)
                    if now is not snapshot:  # an unchanged snapshot is not written again
                        _save_after_feed(cache, endpoint, identity, snapshot, now)
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
) -> tuple[ReadReport, _Snapshot | None]:
    """The objects now, from the snapshot and the feed; None (and why in the report) to read in full."""
    if snapshot.revision == revision:
        return ReadReport("snapshot", revision=revision, since=revision), snapshot
    if snapshot.revision > revision:
        return ReadReport("full", reason="the snapshot is newer than the organization"), None
    try:
        fed = _apply_feed(client, snapshot, revision)
    except ApiError as error:
        if error.status not in _FALL_BACK:
            raise
        return ReadReport("full", reason=f"the change feed answered {error.status}"), None
    report = ReadReport("feed", revision=revision, since=snapshot.revision, changes=len(fed.journal))
    return report, fed
