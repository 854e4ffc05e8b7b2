"""The sandbox's state: one SQLite file in WAL mode.

Every table has ``seq INTEGER PRIMARY KEY AUTOINCREMENT``. Writes are
serialized by SQLite (``BEGIN IMMEDIATE``), so ``seq`` grows in commit order
and is never reused; lists are keyset-paginated on it, which is what keeps a
paging client from skipping or repeating rows while others write.

Nothing here knows HTTP; ``app`` turns rows into JSON.
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from provisioner.sandbox import revision

WORKSPACE_LIMIT = 50
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS org (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    workspace_limit INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,  -- stored lowercased: uniqueness is case-insensitive
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS workspaces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1,
    -- The verification secret itself is not kept: only when it last changed.
    -- (Added in schema version 2; ``_migrate`` adds it to older dbs.)
    verification_secret_rotated_at TEXT
);
CREATE TABLE IF NOT EXISTS memberships (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1,
    UNIQUE (workspace_id, user_id)
);
-- Filtered lists page on seq within one workspace or one user: these keep
-- them index range scans, never full-table scans.
CREATE INDEX IF NOT EXISTS memberships_by_workspace ON memberships (workspace_id, seq);
CREATE INDEX IF NOT EXISTS memberships_by_user ON memberships (user_id, seq);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,  -- sha256 hex of the key; the key itself is never stored
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user_id);
-- API keys made through the API (provisioner.sandbox.api_keys). Unlike the
-- server's tokens they are resources: listed, disabled, deleted. Only the
-- hash of the secret is kept, as for tokens.
CREATE TABLE IF NOT EXISTS api_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL UNIQUE,  -- sha256 hex of the secret
    prefix TEXT NOT NULL,  -- the secret's first characters, for recognition
    name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    rev INTEGER NOT NULL DEFAULT 1,
    -- Non-secret metadata (schema version 3): the name the secret was delivered
    -- under, recorded by an admin's key only (a tool's own key), else NULL.
    delivered_to TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_by_workspace ON api_keys (workspace_id, seq);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys (user_id, seq);
-- Workspace settings (provisioner.sandbox.webhooks, .credentials). No secret
-- is stored: a webhook's signing secret not at all (only when it was last
-- rotated), a credential's secrets as salted PBKDF2 digests (JSON).
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,  -- JSON array, sorted
    enabled INTEGER NOT NULL,
    secret_rotated_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1,
    delivered_to TEXT,  -- schema version 3: where the signing secret was delivered
    UNIQUE (workspace_id, url)
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_by_workspace ON webhook_endpoints (workspace_id, seq);
CREATE TABLE IF NOT EXISTS credentials (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    fields TEXT NOT NULL,  -- JSON object: readable values
    secrets TEXT NOT NULL,  -- JSON object: name -> {algorithm, iterations, salt, digest}
    -- schema version 3: JSON object name -> the writer's non-secret label of
    -- where the value came from (e.g. "env DEEPGRAM_KEY_PRODUCTION v1"), or null
    secret_sources TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 1,
    UNIQUE (workspace_id, provider)
);
CREATE INDEX IF NOT EXISTS credentials_by_workspace ON credentials (workspace_id, seq);
CREATE INDEX IF NOT EXISTS credentials_by_provider ON credentials (provider, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    created REAL NOT NULL,  -- unix time, for the 24 h window
    PRIMARY KEY (user_id, key)
);
"""


class SandboxError(Exception):
    """A sandbox operation could not be done (unknown user, bad host, ...)."""


# The sandbox's clock: real time plus the offset its app sets for each request
# (``POST /_sandbox/clock``), so that a test can make keys that are 97 days old,
# or let a grace period pass, without sleeping. Per request (a context
# variable), so two sandboxes in one process keep their own clocks.
CLOCK_OFFSET: ContextVar[float] = ContextVar("sandbox_clock_offset", default=0.0)


def now_iso() -> str:
    """The sandbox's current UTC time, ISO-8601 with milliseconds and a ``Z``."""
    moment = datetime.now(UTC) + timedelta(seconds=CLOCK_OFFSET.get())
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def new_key() -> str:
    return secrets.token_hex(20)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def etag(resource_id: str, rev: int) -> str:
    """The ETag of one version of one resource (quoted, as sent in the header).

    Derived from id and revision so it changes on every change and never
    collides across resources.
    """
    digest = hashlib.sha256(f"{resource_id}:{rev}".encode()).hexdigest()[:20]
    return f'"{digest}"'


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN ourselves, so that a request is
    # exactly one transaction and writers take the lock up front (IMMEDIATE)
    # instead of failing on lock upgrade. check_same_thread=False because
    # the pool hands a connection to one thread at a time, not always the same.
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as error:
        raise SandboxError(
            f"{path} is not a sandbox database ({error}); give --db/--sandbox a new file name "
            "or one the sandbox created"
        ) from None
    conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a db made by an older sandbox up to ``SCHEMA_VERSION`` (new tables come from ``_SCHEMA``).

    Version 2 gave workspaces ``verification_secret_rotated_at``; a workspace
    made before has had its secret since it was created. Version 3 gave API
    keys and webhook endpoints ``delivered_to`` and credentials
    ``secret_sources``: unknown (NULL, ``{}``) for what was made before.
    Version 4 has no ``zoom`` credential: Recall.ai's real v2 API holds the
    Zoom app (``v2``), so one an older sandbox made is removed.
    """
    for table, column, kind in (
        ("api_keys", "delivered_to", "TEXT"),
        ("webhook_endpoints", "delivered_to", "TEXT"),
        ("credentials", "secret_sources", "TEXT NOT NULL DEFAULT '{}'"),
    ):
        if column not in {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(workspaces)")}
    if "verification_secret_rotated_at" not in columns:
        conn.execute("ALTER TABLE workspaces ADD COLUMN verification_secret_rotated_at TEXT")
    conn.execute(
        "UPDATE workspaces SET verification_secret_rotated_at = created_at "
        "WHERE verification_secret_rotated_at IS NULL"
    )
    conn.execute("DELETE FROM credentials WHERE provider = 'zoom'")


class Store:
    """A pool of connections to one sandbox db; each request thread holds one
    connection for exactly one transaction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._checkout()
        try:
            conn.executescript(_SCHEMA)
            conn.executescript(revision.SCHEMA)  # the change feed's table and triggers
            _migrate(conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        finally:
            self._pool.put(conn)

    def _checkout(self) -> sqlite3.Connection:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            conn = _connect(self.path)
            with self._lock:
                self._all.append(conn)
            return conn

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: committed if the block returns, rolled back if it raises.

        Reads also run in a transaction so that a request sees one snapshot.
        """
        conn = self._checkout()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            self._pool.put(conn)

    def close(self) -> None:
        """Close every connection the pool ever opened."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


# --- organization, users, tokens -------------------------------------------


def get_org(conn: sqlite3.Connection) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM org LIMIT 1").fetchone()
    return row


def the_org(conn: sqlite3.Connection) -> sqlite3.Row:
    """The organization row, which every initialised sandbox database has."""
    row = get_org(conn)
    if row is None:  # start_sandbox creates it before serving
        raise RuntimeError("the sandbox database holds no organization")
    return row


def ensure_org(conn: sqlite3.Connection, *, org_name: str, region: str, admin_email: str) -> bool:
    """Create the organization and its ACTIVE admin if the db is new. True if created."""
    if get_org(conn) is not None:
        return False
    conn.execute(
        "INSERT INTO org (id, name, region, workspace_limit) VALUES (?, ?, ?, ?)",
        (new_id(), org_name, region, WORKSPACE_LIMIT),
    )
    insert_user(conn, admin_email, "admin", "active")
    return True


def insert_user(conn: sqlite3.Connection, email: str, role: str, status: str) -> sqlite3.Row:
    ts = now_iso()
    conn.execute(
        "INSERT INTO users (id, email, role, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (new_id(), email.lower(), role, status, ts, ts),
    )
    row: sqlite3.Row = conn.execute("SELECT * FROM users WHERE seq = last_insert_rowid()").fetchone()
    return row


def user_by_email(conn: sqlite3.Connection, email: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM users WHERE email = ?", (email.lower(),)).fetchone()
    return row


def admin_for_keys(conn: sqlite3.Connection, admin_email: str) -> sqlite3.Row:
    """The admin who gets the server's key: ``admin_email`` if present, else the oldest admin."""
    row = user_by_email(conn, admin_email)
    if row is None:
        row = conn.execute("SELECT * FROM users WHERE role = 'admin' ORDER BY seq LIMIT 1").fetchone()
    if row is None:
        raise SandboxError("no admin user in the sandbox db; add one with a new --db")
    return row


def add_token(conn: sqlite3.Connection, user_id: str, key: str) -> None:
    # OR IGNORE: re-serving an existing db with the same --token is not an error.
    conn.execute(
        "INSERT OR IGNORE INTO tokens (hash, user_id, created_at) VALUES (?, ?, ?)",
        (hash_key(key), user_id, now_iso()),
    )


def user_for_key(conn: sqlite3.Connection, key: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ?",
        (hash_key(key),),
    ).fetchone()
    return row


# --- keyset pages -------------------------------------------------------------


def page(
    conn: sqlite3.Connection,
    table: str,
    *,
    after: int | None,
    before: int | None,
    size: int,
    filters: dict[str, str],
) -> tuple[list[sqlite3.Row], bool]:
    """Rows of ``table`` in ``seq`` order after (or before) a seq, and whether more lie beyond.

    ``table`` and the filter columns come from the app's fixed mapping, never
    from the request.
    """
    where = [f"{column} = ?" for column in filters]
    args: list[object] = list(filters.values())
    if after is not None:
        where.append("seq > ?")
        args.append(after)
    if before is not None:
        where.append("seq < ?")
        args.append(before)
    order = "DESC" if before is not None else "ASC"
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = conn.execute(
        f"SELECT * FROM {table} {clause} ORDER BY seq {order} LIMIT ?", (*args, size + 1)
    ).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    if before is not None:
        rows.reverse()
    return rows, more


def exists_beyond(
    conn: sqlite3.Connection, table: str, *, seq: int, forward: bool, filters: dict[str, str]
) -> bool:
    """Whether any row lies after (``forward``) or before ``seq`` under the filters."""
    where = [f"{column} = ?" for column in filters]
    where.append("seq > ?" if forward else "seq < ?")
    row = conn.execute(
        f"SELECT 1 FROM {table} WHERE {' AND '.join(where)} LIMIT 1", (*filters.values(), seq)
    ).fetchone()
    return row is not None


# --- bulk loading -------------------------------------------------------------


def bulk_seed(
    conn: sqlite3.Connection,
    *,
    users: Iterable[tuple[str, str, str]],
    workspaces: Iterable[str],
    memberships: Iterable[tuple[str, str]],
) -> None:
    """Insert many rows with executemany; memberships resolve names and emails in SQL."""
    ts = now_iso()
    conn.executemany(
        "INSERT INTO users (id, email, role, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        ((new_id(), email.lower(), role, status, ts, ts) for email, role, status in users),
    )
    conn.executemany(
        "INSERT INTO workspaces (id, name, created_at, updated_at, verification_secret_rotated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        ((new_id(), name, ts, ts, ts) for name in workspaces),
    )
    conn.executemany(
        "INSERT INTO memberships (id, workspace_id, user_id, created_at) "
        "SELECT ?, w.id, u.id, ? FROM workspaces w, users u WHERE w.name = ? AND u.email = ?",
        ((new_id(), ts, name, email.lower()) for name, email in memberships),
    )
