"""The sandbox's Recall.ai v2 endpoints: ``schemas/recall-v2.yaml`` over the same SQLite db.

Zoom OAuth apps (``/api/v2/zoom-oauth-apps/``), Google login groups and
Google logins, answered the way the public reference describes the real API,
not the way our v1 contract does things:

* **Workspace-scoped keys.** A key is an ``api_keys`` row: it belongs to a
  user and reaches one workspace. Every v2 request acts in that workspace;
  another workspace's objects are 404. The server's admin tokens reach no
  workspace and are refused (401), as an organization-level key would be.
* **Pages** are ``{next, previous, results}`` with absolute ``next`` and
  ``previous`` URLs carrying an opaque ``cursor``.
* **Idempotency-Key** on POST, PUT and PATCH, scoped to the user and the
  path: a duplicate still in flight is 409, one completed within the hour
  gets the recorded answer (whatever its body, as the reference warns).
* **Errors** are Django REST framework's shapes: ``{"detail": ...}`` or
  ``{field: [messages]}``; a payload naming ``localhost``, or a GET with a
  body, is the WAF's 403 with an HTML body.
* **Secrets come back.** ``client_secret``, ``webhook_secret`` and
  ``sso_v2_private_key`` are stored and returned in every answer, lists
  included, because the real API does so (see ``docs/threat-model.md``).
* **Rate limits** (``recall_limits``): per workspace, 60 list requests and
  300 other requests a minute, as token buckets; over them, 429 with
  ``Retry-After``. ``sandbox/limits.py`` owns them, for the management
  contract too.
* Zoom calls ``POST /api/v2/zoom-oauth-apps/{id}/webhook`` to validate the
  URL (its ``endpoint.url_validation`` event, without a key): answering it
  sets the app's ``webhook_last_validation``.

It imports nothing from the reconciler, like the rest of the sandbox.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from provisioner.frozen import frozen
from provisioner.sandbox import api_keys, limits, store
from provisioner.sandbox.knobs import Stats
from provisioner.sandbox.routing import match, route_map

PREFIX = "/api/v2"
PAGE_SIZE = 50  # not published; small enough that a test can page
IDEMPOTENCY_WINDOW_S = 3600
IDEMPOTENT_METHODS = frozenset({"POST", "PUT", "PATCH"})
ZOOM_KINDS = ("user_level", "account_level")
LOGIN_MODES = ("always", "only_if_required")
ZOOM_SECRET_FIELDS = ("client_id", "client_secret", "webhook_secret")
MAX_TEXT = 64 * 1024  # a PEM chain fits; a runaway body does not

SCHEMA = """
CREATE TABLE IF NOT EXISTS zoom_oauth_apps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    webhook_last_validation TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS google_login_groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    login_mode TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS google_logins (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    email TEXT NOT NULL,
    is_active INTEGER NOT NULL,
    sso_v2_workspace_domain TEXT NOT NULL,
    sso_v2_private_key TEXT NOT NULL,
    sso_v2_cert TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS v2_idempotency (
    user_id TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (user_id, path, key)
);
"""

_WAF_PAGE = (
    b"<HTML><BODY><H1>403 ERROR</H1><H2>The request could not be satisfied.</H2>"
    b"Request blocked. (sandbox: the payload names localhost, or a GET carries a body)</BODY></HTML>"
)

URL_MAP = route_map(
    [
        (f"{PREFIX}/zoom-oauth-apps/", {"GET": "zoom.list", "POST": "zoom.create"}),
        (
            f"{PREFIX}/zoom-oauth-apps/<id>/",
            {"GET": "zoom.get", "PATCH": "zoom.patch", "DELETE": "zoom.delete"},
        ),
        (f"{PREFIX}/zoom-oauth-apps/<id>/webhook", {"POST": "zoom.webhook"}),
        (f"{PREFIX}/google-login-groups/", {"GET": "groups.list", "POST": "groups.create"}),
        (
            f"{PREFIX}/google-login-groups/<id>/",
            {"GET": "groups.get", "PUT": "groups.put", "PATCH": "groups.patch", "DELETE": "groups.delete"},
        ),
        (f"{PREFIX}/google-logins/", {"GET": "logins.list", "POST": "logins.create"}),
        (
            f"{PREFIX}/google-logins/<id>/",
            {"GET": "logins.get", "PUT": "logins.put", "PATCH": "logins.patch", "DELETE": "logins.delete"},
        ),
    ]
)


class Problem(Exception):
    """An error answer in Django REST framework's shape."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}

    @classmethod
    def detail(cls, status: int, text: str, **headers: str) -> Problem:
        return cls(status, {"detail": text}, headers)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    mimetype = "application/json" if body is not None else None
    return Response(data, status=status, headers=headers or {}, mimetype=mimetype)


def _problem(problem: Problem) -> Response:
    return _json(problem.status, problem.body, problem.headers)


# --- representations ------------------------------------------------------------------


def zoom_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "client_id": row["client_id"],
        "client_secret": row["client_secret"],
        "webhook_secret": row["webhook_secret"],
        "webhook_last_validation": row["webhook_last_validation"],
        "created_at": row["created_at"],
    }


def login_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "group_id": row["group_id"],
        "email": row["email"],
        "is_active": bool(row["is_active"]),
        "sso_v2_workspace_domain": row["sso_v2_workspace_domain"],
        "sso_v2_private_key": row["sso_v2_private_key"],
        "sso_v2_cert": row["sso_v2_cert"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


@frozen
class Call:
    """One authenticated v2 request: the db, the request, the key's user and workspace."""

    conn: sqlite3.Connection
    request: Request
    user_id: str
    workspace_id: str
    values: dict[str, str]

    def body(self) -> dict[str, Any]:
        raw = self.request.get_data(cache=True)
        try:
            data = json.loads(raw or b"null")
        except (ValueError, RecursionError):
            raise Problem.detail(400, "JSON parse error - the body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise Problem(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        return data


def group_json(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    logins = conn.execute("SELECT * FROM google_logins WHERE group_id = ? ORDER BY seq", (row["id"],))
    return {
        "id": row["id"],
        "name": row["name"],
        "login_mode": row["login_mode"],
        "logins": [login_json(login) for login in logins],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# --- validation -----------------------------------------------------------------------------


def _text(data: dict[str, Any], name: str, errors: dict[str, list[str]], *, required: bool) -> str | None:
    if name not in data:
        if required:
            errors[name] = ["This field is required."]
        return None
    value = data[name]
    if not isinstance(value, str):
        errors[name] = ["Not a valid string."]
    elif not value.strip():
        errors[name] = ["This field may not be blank."]
    elif len(value) > MAX_TEXT:
        errors[name] = [f"Ensure this field has no more than {MAX_TEXT} characters."]
    else:
        return value
    return None


def _choice(
    data: dict[str, Any], name: str, choices: tuple[str, ...], errors: dict[str, list[str]], *, required: bool
) -> str | None:
    if name not in data:
        if required:
            errors[name] = ["This field is required."]
        return None
    value = data[name]
    if value not in choices:
        errors[name] = [f"{json.dumps(value)} is not a valid choice."]
        return None
    return str(value)


def _boolean(data: dict[str, Any], name: str, errors: dict[str, list[str]]) -> bool | None:
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, bool):
        errors[name] = ["Must be a valid boolean."]
        return None
    return value


def _email(data: dict[str, Any], errors: dict[str, list[str]], *, required: bool) -> str | None:
    value = _text(data, "email", errors, required=required)
    if value is not None:
        local, at, domain = value.partition("@")
        if not (at and local and "." in domain and " " not in value and len(value) <= 254):
            errors["email"] = ["Enter a valid email address."]
            return None
    return value


def _refuse(errors: dict[str, list[str]]) -> None:
    if errors:
        raise Problem(400, errors)


# --- pages ------------------------------------------------------------------------------


def _cursor(token: str) -> tuple[str, int]:
    """A cursor we issued: ``("a", seq)`` for the page after ``seq``, ``("b", seq)`` before it."""
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii") + b"==").decode("ascii")
        direction, _, number = text.partition(":")
        seq = int(number) if number.isascii() and number.isdigit() and len(number) < 19 else -1
    except (UnicodeError, ValueError, binascii.Error):
        direction, seq = "", -1
    if direction not in ("a", "b") or seq < 0:
        raise Problem.detail(404, "Invalid cursor")
    return direction, seq


def _link(request: Request, direction: str, seq: int) -> str:
    token = base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    query.append(("cursor", token))
    return f"{request.base_url}?{urlencode(query)}"


def _page(
    call: Call,
    table: str,
    filters: list[tuple[str, Any]],
    represent: Callable[[sqlite3.Row], dict[str, Any]],
) -> Response:
    where = ["workspace_id = ?"] + [clause for clause, _ in filters]
    params: list[Any] = [call.workspace_id] + [value for _, value in filters]
    raw = call.request.args.get("cursor")
    direction, seq = _cursor(raw) if raw is not None else ("a", 0)
    if direction == "a":
        sql = f"SELECT * FROM {table} WHERE {' AND '.join(where)} AND seq > ? ORDER BY seq LIMIT ?"
        rows = call.conn.execute(sql, [*params, seq, PAGE_SIZE + 1]).fetchall()
        more_after, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
        more_before = seq > 0 and bool(rows or raw)
    else:
        sql = f"SELECT * FROM {table} WHERE {' AND '.join(where)} AND seq < ? ORDER BY seq DESC LIMIT ?"
        rows = call.conn.execute(sql, [*params, seq, PAGE_SIZE + 1]).fetchall()
        more_before, rows = len(rows) > PAGE_SIZE, list(reversed(rows[:PAGE_SIZE]))
        more_after = True
    body = {
        "next": _link(call.request, "a", rows[-1]["seq"]) if rows and more_after else None,
        "previous": _link(call.request, "b", rows[0]["seq"]) if rows and more_before else None,
        "results": [represent(row) for row in rows],
    }
    return _json(200, body)


def _date_filter(call: Call, name: str, op: str) -> list[tuple[str, Any]]:
    value = call.request.args.get(name)
    if value is None:
        return []
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, {name: ["Enter a valid date/time."]}) from None
    if moment.tzinfo is None:
        raise Problem(400, {name: ["Enter a valid date/time with a time zone."]})
    # Stored as ``store.now_iso`` writes it, so the text compares as the time does.
    stamp = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [(f"created_at {op} ?", stamp)]


def _fetch(call: Call, table: str, what: str) -> sqlite3.Row:
    row: sqlite3.Row | None = call.conn.execute(
        f"SELECT * FROM {table} WHERE id = ? AND workspace_id = ?", (call.values["id"], call.workspace_id)
    ).fetchone()
    if row is None:
        raise Problem.detail(404, f"No {what} matches the given query.")
    return row


# --- Zoom OAuth apps ------------------------------------------------------------------------


def list_zoom(call: Call) -> Response:
    args = call.request.args
    filters: list[tuple[str, Any]] = []
    if "client_id" in args:
        filters.append(("client_id = ?", args["client_id"]))
    if "kind" in args:
        if args["kind"] not in ZOOM_KINDS:
            raise Problem(
                400, {"kind": [f"Select a valid choice. {args['kind']} is not one of the choices."]}
            )
        filters.append(("kind = ?", args["kind"]))
    filters += _date_filter(call, "created_at_after", ">=") + _date_filter(call, "created_at_before", "<=")
    return _page(call, "zoom_oauth_apps", filters, zoom_json)


def create_zoom(call: Call) -> Response:
    data = call.body()
    errors: dict[str, list[str]] = {}
    kind = _choice(data, "kind", ZOOM_KINDS, errors, required=True)
    values = {name: _text(data, name, errors, required=True) for name in ZOOM_SECRET_FIELDS}
    _refuse(errors)
    row_id, ts = store.new_id(), store.now_iso()
    call.conn.execute(
        "INSERT INTO zoom_oauth_apps (id, workspace_id, kind, client_id, client_secret, webhook_secret, "
        "webhook_last_validation, created_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        (
            row_id,
            call.workspace_id,
            kind,
            values["client_id"],
            values["client_secret"],
            values["webhook_secret"],
            ts,
        ),
    )
    return _json(201, zoom_json(_fetch(_with_id(call, row_id), "zoom_oauth_apps", "Zoom OAuth app")))


def _with_id(call: Call, row_id: str) -> Call:
    return Call(call.conn, call.request, call.user_id, call.workspace_id, {**call.values, "id": row_id})


def patch_zoom(call: Call) -> Response:
    row = _fetch(call, "zoom_oauth_apps", "Zoom OAuth app")
    data = call.body()
    errors: dict[str, list[str]] = {}
    # ``kind`` and ``client_id`` are read-only here: DRF ignores them, as does this.
    changes = {
        name: _text(data, name, errors, required=False) for name in ("webhook_secret", "client_secret")
    }
    _refuse(errors)
    for name, value in changes.items():
        if value is not None:
            call.conn.execute(f"UPDATE zoom_oauth_apps SET {name} = ? WHERE id = ?", (value, row["id"]))
    return _json(200, zoom_json(_fetch(call, "zoom_oauth_apps", "Zoom OAuth app")))


def delete_row(table: str, what: str) -> Callable[[Call], Response]:
    def delete(call: Call) -> Response:
        row = _fetch(call, table, what)
        if table == "google_login_groups":
            call.conn.execute("DELETE FROM google_logins WHERE group_id = ?", (row["id"],))
        call.conn.execute(f"DELETE FROM {table} WHERE id = ?", (row["id"],))
        return _json(204, None)

    return delete


def zoom_webhook(conn: sqlite3.Connection, app_id: str, request: Request) -> Response:
    """Zoom's ``endpoint.url_validation``: answer with the HMAC of its token, and note the moment.

    Called by Zoom, so without a key; any other event is acknowledged.
    """
    row = conn.execute("SELECT * FROM zoom_oauth_apps WHERE id = ?", (app_id,)).fetchone()
    if row is None:
        return _problem(Problem.detail(404, "No Zoom OAuth app matches the given query."))
    try:
        event = json.loads(request.get_data() or b"null")
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return _problem(Problem.detail(400, "JSON parse error."))
    if event.get("event") != "endpoint.url_validation":
        return _json(200, {})
    payload = event.get("payload")
    token = payload.get("plainToken") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        return _problem(Problem(400, {"payload": ["plainToken is required."]}))
    signed = hmac.new(row["webhook_secret"].encode(), token.encode(), hashlib.sha256).hexdigest()
    conn.execute(
        "UPDATE zoom_oauth_apps SET webhook_last_validation = ? WHERE id = ?", (store.now_iso(), app_id)
    )
    return _json(200, {"plainToken": token, "encryptedToken": signed})


# --- Google login groups and logins --------------------------------------------------------


def list_groups(call: Call) -> Response:
    filters: list[tuple[str, Any]] = []
    if "name" in call.request.args:
        filters.append(("name = ?", call.request.args["name"]))
    return _page(call, "google_login_groups", filters, lambda row: group_json(call.conn, row))


def _group_fields(call: Call, *, partial: bool) -> dict[str, str | None]:
    data = call.body()
    errors: dict[str, list[str]] = {}
    fields = {
        "name": _text(data, "name", errors, required=not partial),
        "login_mode": _choice(data, "login_mode", LOGIN_MODES, errors, required=not partial),
    }
    _refuse(errors)
    return fields


def create_group(call: Call) -> Response:
    fields = _group_fields(call, partial=False)
    row_id, ts = store.new_id(), store.now_iso()
    call.conn.execute(
        "INSERT INTO google_login_groups (id, workspace_id, name, login_mode, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (row_id, call.workspace_id, fields["name"], fields["login_mode"], ts, ts),
    )
    row = _fetch(_with_id(call, row_id), "google_login_groups", "Google login group")
    return _json(201, group_json(call.conn, row))


def update_group(*, partial: bool) -> Callable[[Call], Response]:
    def update(call: Call) -> Response:
        row = _fetch(call, "google_login_groups", "Google login group")
        fields = {k: v for k, v in _group_fields(call, partial=partial).items() if v is not None}
        for name, value in fields.items():
            call.conn.execute(f"UPDATE google_login_groups SET {name} = ? WHERE id = ?", (value, row["id"]))
        if fields:
            call.conn.execute(
                "UPDATE google_login_groups SET updated_at = ? WHERE id = ?", (store.now_iso(), row["id"])
            )
        return _json(200, group_json(call.conn, _fetch(call, "google_login_groups", "Google login group")))

    return update


LOGIN_TEXT = ("sso_v2_workspace_domain", "sso_v2_private_key", "sso_v2_cert")


def _login_fields(call: Call, *, partial: bool) -> dict[str, Any]:
    data = call.body()
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {"email": _email(data, errors, required=not partial)}
    for name in LOGIN_TEXT:
        fields[name] = _text(data, name, errors, required=not partial)
    active = _boolean(data, "is_active", errors)
    fields["is_active"] = None if active is None else int(active)
    group = data.get("group_id")
    if "group_id" not in data:
        if not partial:
            errors["group_id"] = ["This field is required."]
    elif (
        not isinstance(group, str)
        or call.conn.execute(
            "SELECT 1 FROM google_login_groups WHERE id = ? AND workspace_id = ?", (group, call.workspace_id)
        ).fetchone()
        is None
    ):
        errors["group_id"] = [f'Invalid pk "{group}" - object does not exist.']
    fields["group_id"] = group if isinstance(group, str) else None
    _refuse(errors)
    return fields


def list_logins(call: Call) -> Response:
    args = call.request.args
    filters: list[tuple[str, Any]] = []
    for name in ("email", "group_id", "sso_v2_workspace_domain"):
        if name in args:
            filters.append((f"{name} = ?", args[name]))
    if "group_id" in args:
        try:
            uuid.UUID(args["group_id"])
        except ValueError:
            raise Problem(400, {"group_id": ["Enter a valid UUID."]}) from None
    if "is_active" in args:
        if args["is_active"] not in ("true", "false"):
            raise Problem(400, {"is_active": ["Enter a valid boolean."]})
        filters.append(("is_active = ?", int(args["is_active"] == "true")))
    return _page(call, "google_logins", filters, login_json)


def create_login(call: Call) -> Response:
    fields = _login_fields(call, partial=False)
    row_id, ts = store.new_id(), store.now_iso()
    active = 1 if fields["is_active"] is None else fields["is_active"]
    call.conn.execute(
        "INSERT INTO google_logins (id, workspace_id, group_id, email, is_active, sso_v2_workspace_domain, "
        "sso_v2_private_key, sso_v2_cert, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row_id,
            call.workspace_id,
            fields["group_id"],
            fields["email"],
            active,
            *(fields[name] for name in LOGIN_TEXT),
            ts,
            ts,
        ),
    )
    return _json(201, login_json(_fetch(_with_id(call, row_id), "google_logins", "Google login")))


def update_login(*, partial: bool) -> Callable[[Call], Response]:
    def update(call: Call) -> Response:
        row = _fetch(call, "google_logins", "Google login")
        fields = {k: v for k, v in _login_fields(call, partial=partial).items() if v is not None}
        for name, value in fields.items():
            call.conn.execute(f"UPDATE google_logins SET {name} = ? WHERE id = ?", (value, row["id"]))
        if fields:
            call.conn.execute(
                "UPDATE google_logins SET updated_at = ? WHERE id = ?", (store.now_iso(), row["id"])
            )
        return _json(200, login_json(_fetch(call, "google_logins", "Google login")))

    return update


HANDLERS: dict[str, Callable[[Call], Response]] = {
    "zoom.list": list_zoom,
    "zoom.create": create_zoom,
    "zoom.get": lambda call: _json(200, zoom_json(_fetch(call, "zoom_oauth_apps", "Zoom OAuth app"))),
    "zoom.patch": patch_zoom,
    "zoom.delete": delete_row("zoom_oauth_apps", "Zoom OAuth app"),
    "groups.list": list_groups,
    "groups.create": create_group,
    "groups.get": lambda call: _json(
        200, group_json(call.conn, _fetch(call, "google_login_groups", "Google login group"))
    ),
    "groups.put": update_group(partial=False),
    "groups.patch": update_group(partial=True),
    "groups.delete": delete_row("google_login_groups", "Google login group"),
    "logins.list": list_logins,
    "logins.create": create_login,
    "logins.get": lambda call: _json(200, login_json(_fetch(call, "google_logins", "Google login"))),
    "logins.put": update_login(partial=False),
    "logins.patch": update_login(partial=True),
    "logins.delete": delete_row("google_logins", "Google login"),
}


# --- the front door -----------------------------------------------------------------------


def _presented_key(request: Request) -> str | None:
    scheme, _, rest = request.headers.get("Authorization", "").strip().partition(" ")
    return rest.strip() if scheme.lower() == "token" and rest.strip() else None


def _waf_blocks(request: Request) -> bool:
    data = request.get_data(cache=True)
    return (request.method == "GET" and bool(data)) or b"localhost" in data.lower()


class V2Api:
    """The v2 endpoints of one sandbox: routing, keys, limits, idempotency, then a handler."""

    def __init__(
        self, db: store.Store, stats: Stats, *, published_limits: limits.PublishedLimits | None = None
    ) -> None:
        self.store = db
        self.stats = stats
        self.limits = published_limits
        self._in_flight: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        with db.transaction(write=True) as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def __call__(self, request: Request) -> Response:
        try:
            rule, values = match(URL_MAP, request)
        except MethodNotAllowed as refused:
            self.stats.count(f"{request.method} <unmatched v2>")
            allow = ", ".join(sorted(refused.valid_methods or ()))
            return _problem(Problem.detail(405, f'Method "{request.method}" not allowed.', Allow=allow))
        except NotFound:
            self.stats.count(f"{request.method} <unmatched v2>")
            return _problem(Problem.detail(404, "Not found."))
        template = rule.rule.replace("<id>", "{id}")
        self.stats.count(f"{request.method} {template}")
        if _waf_blocks(request):
            return Response(_WAF_PAGE, status=403, mimetype="text/html")
        if rule.endpoint == "zoom.webhook":
            with self.store.transaction(write=True) as conn:
                return zoom_webhook(conn, values["id"], request)
        try:
            return self._authorized(request, rule.endpoint, values)
        except Problem as problem:
            return _problem(problem)

    def _authorized(self, request: Request, endpoint: str, values: dict[str, str]) -> Response:
        with self.store.transaction(write=False) as conn:
            user_id, workspace_id = self._authenticate(conn, request)
        if self.limits is not None:
            kind = limits.limit_class(request.method, endpoint)
            wait = self.limits.take(limits.workspace_bucket(workspace_id), kind)
            if wait:
                self.stats.count_throttled()
                raise Problem.detail(429, limits.throttled_text(wait), **{"Retry-After": str(wait)})
        key = request.headers.get("Idempotency-Key") if request.method in IDEMPOTENT_METHODS else None
        if key is None:
            return self._run(request, endpoint, values, user_id, workspace_id)
        return self._idempotent(request, endpoint, values, user_id, workspace_id, key)

    @staticmethod
    def _authenticate(conn: sqlite3.Connection, request: Request) -> tuple[str, str]:
        key = _presented_key(request)
        if key is None:
            raise Problem.detail(401, "Authentication credentials were not provided.")
        row = conn.execute(
            "SELECT user_id, workspace_id, disabled FROM api_keys WHERE hash = ?", (store.hash_key(key),)
        ).fetchone()
        if row is None or row["disabled"]:
            raise Problem.detail(401, "Invalid token.")
        return str(row["user_id"]), str(row["workspace_id"])

    def _run(
        self, request: Request, endpoint: str, values: dict[str, str], user_id: str, workspace_id: str
    ) -> Response:
        with self.store.transaction(write=request.method != "GET") as conn:
            try:
                return HANDLERS[endpoint](Call(conn, request, user_id, workspace_id, values))
            except Problem as problem:  # handlers validate before they write
                return _problem(problem)

    def _idempotent(
        self,
        request: Request,
        endpoint: str,
        values: dict[str, str],
        user_id: str,
        workspace_id: str,
        key: str,
    ) -> Response:
        """A recorded answer within the hour, 409 while the first is in flight, else run and record."""
        if not 1 <= len(key) <= 255:
            raise Problem(400, {"Idempotency-Key": ["Ensure this header has 1 to 255 characters."]})
        slot = (user_id, request.path, key)
        with self.store.transaction(write=False) as conn:
            row = conn.execute(
                "SELECT status, body FROM v2_idempotency "
                "WHERE user_id = ? AND path = ? AND key = ? AND created >= ?",
                (*slot, time.time() - IDEMPOTENCY_WINDOW_S),
            ).fetchone()
        if row is not None:
            # The header is the sandbox's own (the reference names none): tests and fuzzers
            # tell a replay from a fresh answer by it.
            return Response(
                row["body"],
                status=row["status"],
                mimetype="application/json" if row["body"] else None,
                headers={"Idempotent-Replayed": "true"},
            )
        with self._lock:
            if slot in self._in_flight:
                raise Problem.detail(
                    409, "A request with this Idempotency-Key is being processed; retry later."
                )
            self._in_flight.add(slot)
        try:
            response = self._run(request, endpoint, values, user_id, workspace_id)
            if response.status_code < 500:
                with self.store.transaction(write=True) as conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO v2_idempotency (user_id, path, key, status, body, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (*slot, response.status_code, response.get_data(), time.time()),
                    )
            return response
        finally:
            with self._lock:
                self._in_flight.discard(slot)


def workspace_key(conn: sqlite3.Connection, *, user_id: str, workspace: str, name: str) -> str:
    """Mint a key of ``user_id`` scoped to the workspace named ``workspace``, making the workspace if new.

    Workspaces are made in the dashboard on the real service, and so are keys:
    this stands in for both.
    """
    row = conn.execute("SELECT id FROM workspaces WHERE name = ?", (workspace,)).fetchone()
    if row is None:
        ts = store.now_iso()
        workspace_id = store.new_id()
        conn.execute(
            "INSERT INTO workspaces (id, name, created_at, updated_at, verification_secret_rotated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (workspace_id, workspace, ts, ts, ts),
        )
    else:
        workspace_id = row["id"]
    secret = api_keys.new_secret()
    conn.execute(
        "INSERT INTO api_keys (id, hash, prefix, name, user_id, workspace_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            store.new_id(),
            store.hash_key(secret),
            secret[: api_keys.PREFIX_LENGTH],
            name,
            user_id,
            workspace_id,
            store.now_iso(),
        ),
    )
    return secret


def too_large() -> Response:
    """The answer to a body above the sandbox's limit."""
    return _problem(Problem.detail(413, "Request body too large."))
