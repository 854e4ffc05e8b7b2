"""The sandbox's WSGI application: the v1 contract in ``schemas/openapi.yaml``, over SQLite.

A request goes through these steps, each in one place:

1. the body is read, at most 1 MiB (``read_body``; more is a 413);
2. routing (``URL_MAP``; a 405 names the allowed methods in ``Allow``);
   ``_sandbox`` routes are answered at once, for any valid key, and a wrong
   method on one is a 405 at once: neither is counted, faulted nor limited;
3. counting, latency, rate limiting (the ``--rate-limit`` knob, then the
   published limits of ``sandbox/limits.py`` when ``recall_limits`` is on)
   and fault injection (``SandboxApp._api``);
4. one transaction: authentication, permission, idempotency, the handler
   (``SandboxApp._dispatch``);
5. the response hook, then the response.

Everything a client sends is checked as the contract words it, and no
stricter or looser: ``page_size`` and cursors in ASCII digits only, JSON of
any depth refused cleanly, ``Idempotency-Key`` of 1 to 255 characters,
emails without invisible or mixed-script characters (``emails``), and an
organization that always keeps an active admin (409 ``last_admin``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import ClientDisconnected, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request, Response

from provisioner.sandbox import api_keys, credentials, limits, revision, store, v2, webhooks
from provisioner.sandbox.emails import email_problem
from provisioner.sandbox.knobs import (
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    Fault,
    FaultInjector,
    RateDecision,
    RateLimiter,
    Stats,
)
from provisioner.sandbox.resource import (
    API_PREFIX,
    ApiProblem,
    Call,
    Resource,
    check_if_match,
    fetch,
    is_visible_name,
    json_response,
    list_page,
    optional_body,
    parse_json,
    problem_response,
    recorded_without,
    refuse_unknown,
    single,
)
from provisioner.sandbox.routing import Route, match, route_map

if TYPE_CHECKING:  # typing-only names of the WSGI protocol
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# The CLI (``provisioner sandbox serve``) and the server import the prefix from here.
__all__ = ["API_PREFIX", "MAX_BODY_BYTES", "ResponseHook", "SandboxApp", "URL_MAP"]

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW_S = 24 * 3600
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})
ROLES = ("admin", "developer")
# A workspace's verification secret: this mark, then 32 random bytes in base64url.
VERIFICATION_SECRET_MARK = "wsec_"
# Request bodies above this are refused with 413 before they are read whole.
MAX_BODY_BYTES = 1024 * 1024
# Idempotency-Key length, as the contract's IdempotencyKey parameter says.
IDEMPOTENCY_KEY_MAX = 255
# Headers a replayed idempotent response carries over from the first one.
_REPLAYED_HEADERS = ("ETag", "Location", "Content-Type")

ResponseHook = Callable[[str, str, int, dict[str, str], bytes], None]

# How far the sandbox's clock may be set from real time: ten years either way.
MAX_CLOCK_OFFSET_S = 10 * 365 * 24 * 3600

URL_MAP = route_map(
    [
        (f"{API_PREFIX}/me/", {"GET": "me"}),
        (f"{API_PREFIX}/users/", {"GET": "users.list", "POST": "users.create"}),
        (
            f"{API_PREFIX}/users/<id>/",
            {"GET": "users.get", "PATCH": "users.update", "DELETE": "users.delete"},
        ),
        (f"{API_PREFIX}/workspaces/", {"GET": "workspaces.list", "POST": "workspaces.create"}),
        (
            f"{API_PREFIX}/workspaces/<id>/",
            {"GET": "workspaces.get", "PATCH": "workspaces.update", "DELETE": "workspaces.delete"},
        ),
        (
            f"{API_PREFIX}/workspaces/<id>/rotate_verification_secret/",
            {"POST": "workspaces.rotate_verification_secret"},
        ),
        (f"{API_PREFIX}/workspace_memberships/", {"GET": "memberships.list", "POST": "memberships.create"}),
        (
            f"{API_PREFIX}/workspace_memberships/<id>/",
            {"GET": "memberships.get", "DELETE": "memberships.delete"},
        ),
        (f"{API_PREFIX}/api_keys/", {"GET": "api_keys.list", "POST": "api_keys.create"}),
        (
            f"{API_PREFIX}/api_keys/<id>/",
            {"GET": "api_keys.get", "PATCH": "api_keys.update", "DELETE": "api_keys.delete"},
        ),
        (f"{API_PREFIX}/webhook_endpoints/", {"GET": "webhooks.list", "POST": "webhooks.create"}),
        (
            f"{API_PREFIX}/webhook_endpoints/<id>/",
            {"GET": "webhooks.get", "PATCH": "webhooks.update", "DELETE": "webhooks.delete"},
        ),
        (f"{API_PREFIX}/webhook_endpoints/<id>/rotate_secret/", {"POST": "webhooks.rotate_secret"}),
        (f"{API_PREFIX}/credentials/", {"GET": "credentials.list", "POST": "credentials.create"}),
        (
            f"{API_PREFIX}/credentials/<id>/",
            {"GET": "credentials.get", "PATCH": "credentials.update", "DELETE": "credentials.delete"},
        ),
        (f"{API_PREFIX}/revision/", {"GET": "revision.get"}),
        (f"{API_PREFIX}/changes/", {"GET": "changes.list"}),
        (f"{API_PREFIX}/_sandbox/changes/compact", {"POST": "sandbox.compact"}),
        (f"{API_PREFIX}/_sandbox/stats", {"GET": "sandbox.stats"}),
        (f"{API_PREFIX}/_sandbox/stats/reset", {"POST": "sandbox.reset"}),
        (f"{API_PREFIX}/_sandbox/clock", {"GET": "sandbox.clock", "POST": "sandbox.clock"}),
    ]
)


SANDBOX_PREFIX = f"{API_PREFIX}/_sandbox/"


def is_sandbox_path(path: str) -> bool:
    """Whether ``path`` is one of the ``_sandbox`` routes (the test harness's, not the API's)."""
    return path.startswith(SANDBOX_PREFIX)


def route_template(rule: str) -> str:
    """``/api/v1/users/<id>/`` → ``/api/v1/users/{id}/`` (the form used in stats and the contract)."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


# --- representations ------------------------------------------------------------


def user_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "role": row["role"],
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "etag": store.etag(row["id"], row["rev"]),
    }


def workspace_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "verification_secret_rotated_at": row["verification_secret_rotated_at"],
        "etag": store.etag(row["id"], row["rev"]),
    }


def membership_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "workspace_id": row["workspace_id"],
        "user_id": row["user_id"],
        "created_at": row["created_at"],
        "etag": store.etag(row["id"], row["rev"]),
    }


USERS = Resource("users", "user", user_json)
WORKSPACES = Resource("workspaces", "workspace", workspace_json)
MEMBERSHIPS = Resource("memberships", "workspace membership", membership_json, ("workspace_id", "user_id"))


# --- handlers ------------------------------------------------------------------------


def me(call: Call) -> Response:
    org = store.the_org(call.conn)
    user = call.user
    body = {
        "id": user["id"],
        "email": user["email"],
        "role": user["role"],
        "organization": {
            "id": org["id"],
            "name": org["name"],
            "region": org["region"],
            "limits": {"workspaces": org["workspace_limit"]},
            "revision": revision.current(call.conn),
        },
    }
    return json_response(200, body, {"ETag": store.etag(user["id"], user["rev"])})


def _role(data: dict[str, Any], errors: dict[str, list[str]]) -> str | None:
    role = data.get("role")
    if "role" not in data:
        errors["role"] = ["This field is required."]
    elif role not in ROLES:
        errors["role"] = [f"{json.dumps(role)} is not a valid choice; use one of: {', '.join(ROLES)}."]
    return role if isinstance(role, str) else None


def create_user(call: Call) -> Response:
    data = call.body()
    errors: dict[str, list[str]] = {}
    email = data.get("email")
    if "email" not in data:
        errors["email"] = ["This field is required."]
    elif (problem := email_problem(email)) is not None:
        errors["email"] = [problem]
    role = _role(data, errors)
    if errors:
        raise ApiProblem.fields(errors)
    assert isinstance(email, str) and role is not None
    if store.user_by_email(call.conn, email) is not None:
        raise ApiProblem.coded(409, "already_exists", f"A user with email {email.lower()!r} already exists.")
    row = store.insert_user(call.conn, email, role, "invited")
    response = single(row, USERS, 201)
    response.headers["Location"] = f"{call.request.host_url.rstrip('/')}{API_PREFIX}/users/{row['id']}/"
    return response


def get_user(call: Call) -> Response:
    return single(fetch(call, USERS), USERS)


def refuse_removing_the_last_admin(call: Call, row: sqlite3.Row, action: str) -> None:
    """409 ``last_admin`` when ``row`` is the organization's only active admin.

    Without one, nobody could administer the organization again. Invited
    admins do not count: they cannot act until they accept. The request's
    write transaction holds the lock, so two concurrent demotions cannot
    both see another admin.
    """
    if (row["role"], row["status"]) != ("admin", "active"):
        return
    (others,) = call.conn.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND status = 'active' AND id != ?", (row["id"],)
    ).fetchone()
    if others == 0:
        raise ApiProblem.coded(
            409,
            "last_admin",
            f"Cannot {action} the organization's last active admin; make another user an admin "
            "and let them accept their invitation first.",
        )


def update_user(call: Call) -> Response:
    row = fetch(call, USERS)
    check_if_match(call, row)
    errors: dict[str, list[str]] = {}
    role = _role(call.body(), errors)
    if errors:
        raise ApiProblem.fields(errors)
    if role != "admin":
        refuse_removing_the_last_admin(call, row, "demote")
    if role != row["role"]:  # an unchanged resource keeps its ETag
        call.conn.execute(
            "UPDATE users SET role = ?, updated_at = ?, rev = rev + 1 WHERE id = ?",
            (role, store.now_iso(), row["id"]),
        )
        row = fetch(call, USERS)
    return single(row, USERS)


def delete_user(call: Call) -> Response:
    row = fetch(call, USERS)
    check_if_match(call, row)
    refuse_removing_the_last_admin(call, row, "remove")
    # Removing a user removes their memberships and keys in the same transaction.
    call.conn.execute("DELETE FROM memberships WHERE user_id = ?", (row["id"],))
    call.conn.execute("DELETE FROM tokens WHERE user_id = ?", (row["id"],))
    call.conn.execute("DELETE FROM api_keys WHERE user_id = ?", (row["id"],))
    call.conn.execute("DELETE FROM users WHERE id = ?", (row["id"],))
    return json_response(204, None)


def _workspace_name(data: dict[str, Any]) -> str:
    name = data.get("name")
    if "name" not in data:
        raise ApiProblem.fields({"name": ["This field is required."]})
    if not isinstance(name, str) or not is_visible_name(name, 100):
        raise ApiProblem.fields({"name": ["Enter a name of 1 to 100 characters."]})
    return name


def _refuse_duplicate_workspace(call: Call, name: str, except_id: str | None = None) -> None:
    other = call.conn.execute("SELECT id FROM workspaces WHERE name = ?", (name,)).fetchone()
    if other is not None and other["id"] != except_id:
        raise ApiProblem.coded(409, "already_exists", f"A workspace named {name!r} already exists.")


def create_workspace(call: Call) -> Response:
    name = _workspace_name(call.body())
    _refuse_duplicate_workspace(call, name)
    limit = store.the_org(call.conn)["workspace_limit"]
    (count,) = call.conn.execute("SELECT count(*) FROM workspaces").fetchone()
    if count >= limit:
        raise ApiProblem.coded(
            400,
            "workspace_limit_reached",
            f"The organization already has {count} workspaces, its limit is {limit}; "
            "contact support to raise it.",
        )
    ts = store.now_iso()
    call.conn.execute(
        "INSERT INTO workspaces (id, name, created_at, updated_at, verification_secret_rotated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (store.new_id(), name, ts, ts, ts),
    )
    row = call.conn.execute("SELECT * FROM workspaces WHERE seq = last_insert_rowid()").fetchone()
    response = single(row, WORKSPACES, 201)
    response.headers["Location"] = f"{call.request.host_url.rstrip('/')}{API_PREFIX}/workspaces/{row['id']}/"
    return response


def get_workspace(call: Call) -> Response:
    return single(fetch(call, WORKSPACES), WORKSPACES)


def update_workspace(call: Call) -> Response:
    row = fetch(call, WORKSPACES)
    check_if_match(call, row)
    name = _workspace_name(call.body())
    if name != row["name"]:
        _refuse_duplicate_workspace(call, name, except_id=row["id"])
        call.conn.execute(
            "UPDATE workspaces SET name = ?, updated_at = ?, rev = rev + 1 WHERE id = ?",
            (name, store.now_iso(), row["id"]),
        )
        row = fetch(call, WORKSPACES)
    return single(row, WORKSPACES)


def rotate_verification_secret(call: Call) -> Response:
    """A new verification secret, shown in this answer only; the sandbox keeps none.

    The workspace changes (its ``verification_secret_rotated_at``), so its
    ETag does; the answer's ``ETag`` header is the workspace's new one.
    """
    row = fetch(call, WORKSPACES)
    check_if_match(call, row)
    if errors := refuse_unknown(optional_body(call), ()):
        raise ApiProblem.fields(errors)
    secret = VERIFICATION_SECRET_MARK + secrets.token_urlsafe(32)
    ts = store.now_iso()
    call.conn.execute(
        "UPDATE workspaces SET verification_secret_rotated_at = ?, updated_at = ?, rev = rev + 1 "
        "WHERE id = ?",
        (ts, ts, row["id"]),
    )
    row = fetch(call, WORKSPACES)
    body = {"workspace_id": row["id"], "verification_secret": secret, "rotated_at": ts}
    return json_response(200, body, {"ETag": store.etag(row["id"], row["rev"])})


def delete_workspace(call: Call) -> Response:
    raise ApiProblem.coded(
        405,
        "not_supported",
        "Workspaces cannot be deleted through the API; ask support to delete it.",
        Allow=allowed_methods(call.request.path),
    )


def create_membership(call: Call) -> Response:
    data = call.body()
    errors: dict[str, list[str]] = {}
    for name, table, kind in (("workspace_id", "workspaces", "workspace"), ("user_id", "users", "user")):
        value = data.get(name)
        if name not in data:
            errors[name] = ["This field is required."]
        elif (
            not isinstance(value, str)
            or call.conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (value,)).fetchone() is None
        ):
            errors[name] = [f"No {kind} with id {json.dumps(value)}."]
    if errors:
        raise ApiProblem.fields(errors)
    workspace_id, user_id = data["workspace_id"], data["user_id"]
    exists = call.conn.execute(
        "SELECT 1 FROM memberships WHERE workspace_id = ? AND user_id = ?", (workspace_id, user_id)
    ).fetchone()
    if exists is not None:
        raise ApiProblem.coded(409, "already_exists", "The user is already a member of this workspace.")
    call.conn.execute(
        "INSERT INTO memberships (id, workspace_id, user_id, created_at) VALUES (?, ?, ?, ?)",
        (store.new_id(), workspace_id, user_id, store.now_iso()),
    )
    row = call.conn.execute("SELECT * FROM memberships WHERE seq = last_insert_rowid()").fetchone()
    response = single(row, MEMBERSHIPS, 201)
    response.headers["Location"] = (
        f"{call.request.host_url.rstrip('/')}{API_PREFIX}/workspace_memberships/{row['id']}/"
    )
    return response


def get_membership(call: Call) -> Response:
    return single(fetch(call, MEMBERSHIPS), MEMBERSHIPS)


def delete_membership(call: Call) -> Response:
    row = fetch(call, MEMBERSHIPS)
    check_if_match(call, row)
    call.conn.execute("DELETE FROM memberships WHERE id = ?", (row["id"],))
    # The contract: revoking a user's access to a workspace disables their keys there.
    api_keys.disable_keys_of_member(call.conn, row["user_id"], row["workspace_id"])
    return json_response(204, None)


# How the change feed shows each object table's objects (as their lists do).
FEED_RESOURCES: dict[str, Resource] = {
    resource.table: resource
    for resource in (
        USERS,
        WORKSPACES,
        MEMBERSHIPS,
        api_keys.API_KEYS,
        webhooks.WEBHOOKS,
        credentials.CREDENTIALS,
    )
}

# An explicit mapping from endpoint to handler: the routing table above and
# this one are the whole API surface.
HANDLERS: dict[str, Callable[[Call], Response]] = {
    **api_keys.HANDLERS,
    **webhooks.HANDLERS,
    **credentials.HANDLERS,
    "me": me,
    "users.list": lambda call: list_page(call, USERS),
    "users.create": create_user,
    "users.get": get_user,
    "users.update": update_user,
    "users.delete": delete_user,
    "workspaces.list": lambda call: list_page(call, WORKSPACES),
    "workspaces.create": create_workspace,
    "workspaces.get": get_workspace,
    "workspaces.update": update_workspace,
    "workspaces.delete": delete_workspace,
    "workspaces.rotate_verification_secret": rotate_verification_secret,
    "memberships.list": lambda call: list_page(call, MEMBERSHIPS),
    "memberships.create": create_membership,
    "memberships.get": get_membership,
    "memberships.delete": delete_membership,
    "revision.get": revision.revision,
    "changes.list": lambda call: revision.feed(
        call, FEED_RESOURCES, {"credentials": credentials.as_caller_reads}
    ),
}
# How an idempotent answer is recorded for replay, where it is not verbatim.
# Secrets shown once are never recorded: a replay answers without them.
RECORDED_BODY: dict[str, Callable[[bytes], bytes]] = {
    "api_keys.create": api_keys.recorded_body,
    "webhooks.create": webhooks.recorded_body,
    "webhooks.rotate_secret": webhooks.recorded_body,
    "workspaces.rotate_verification_secret": recorded_without("verification_secret"),
}


def allowed_methods(path: str) -> str:
    """The ``Allow`` header for ``path``: the methods its rules serve (HEAD comes with GET).

    ``DELETE /workspaces/{id}/`` is a rule (it answers 405 ``not_supported``)
    but is not listed: a 405 must not advertise the method it refuses.
    """
    methods = set(URL_MAP.bind("sandbox").allowed_methods(path))
    if path.startswith(f"{API_PREFIX}/workspaces/") and path != f"{API_PREFIX}/workspaces/":
        methods.discard("DELETE")
    return ", ".join(sorted(methods))


def read_body(environ: dict[str, Any]) -> bool:
    """Read the request body within ``MAX_BODY_BYTES``; False (nothing kept) if it is larger.

    A declared ``Content-Length`` above the limit is refused before any byte
    is read; a chunked body is read one byte past the limit and no further.
    The body read is handed on as a plain stream with its length, so nothing
    later reads the socket. (Werkzeug's ``max_content_length`` would cut a
    chunked body at the limit without saying so.)
    """
    chunked = bool(environ.get("wsgi.input_terminated"))
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if not chunked and declared > MAX_BODY_BYTES:
        return False
    wanted = MAX_BODY_BYTES + 1 if chunked else max(declared, 0)
    stream = environ["wsgi.input"]
    data = bytearray()
    try:
        while len(data) < wanted:
            chunk = stream.read(min(64 * 1024, wanted - len(data)))
            if not chunk:
                break
            data += chunk
    except (OSError, ValueError, ClientDisconnected):
        pass  # the client is gone: nobody reads the answer to what arrived
    if len(data) > MAX_BODY_BYTES:
        return False
    environ["wsgi.input"] = io.BytesIO(bytes(data))
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # werkzeug ignores the length of a chunked request
    return True


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Token <key>`` (the ``Token `` prefix is optional)."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "token" and rest.strip():
        return rest.strip()
    return header


def check_idempotency_key(key: str) -> None:
    """A 400 on ``Idempotency-Key`` unless it has 1 to 255 characters, as the contract says.

    An empty key is an error rather than "no key": a client that meant to
    send one would otherwise lose its retry safety without noticing.
    """
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise ApiProblem.fields(
            {"Idempotency-Key": [f"Ensure this header has 1 to {IDEMPOTENCY_KEY_MAX} characters."]}
        )


def _fingerprint(request: Request) -> str:
    raw = request.get_data(cache=True)
    try:
        canonical = json.dumps(parse_json(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + canonical
    ).hexdigest()


class _Dropped(Exception):
    """Marker: the connection is to be closed without an answer."""


class SandboxApp:
    """The WSGI application. Knobs are optional; without them it is a plain server."""

    def __init__(
        self,
        db: store.Store,
        *,
        latency_ms: int = 0,
        rate_limiter: RateLimiter | None = None,
        faults: FaultInjector | None = None,
        response_hook: ResponseHook | None = None,
        published_limits: limits.PublishedLimits | None = None,
    ) -> None:
        self.store = db
        self.latency_s = latency_ms / 1000.0
        self.rate_limiter = rate_limiter
        self.faults = faults
        self.response_hook = response_hook
        self.stats = Stats()
        self.clock_offset = 0.0  # seconds added to real time (POST /_sandbox/clock)
        # Recall.ai's published limits, on the contract (per key) and on v2 (per workspace).
        self.limits = published_limits
        # Recall.ai's own v2 endpoints: their keys, pages, limits and errors (sandbox/v2.py).
        self.v2 = v2.V2Api(db, self.stats, published_limits=published_limits)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body_fits = read_body(environ)
        request = Request(environ)
        clock = store.CLOCK_OFFSET.set(self.clock_offset)
        try:
            response = self._route(request, body_fits)
        except _Dropped:
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                # Close without answering: the client sees the connection
                # end with no response, as when a proxy drops it.
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return []
            response = problem_response(
                ApiProblem.coded(500, "server_error", "Injected fault (connection drop).")
            )
        finally:
            store.CLOCK_OFFSET.reset(clock)
        if self.response_hook is not None:
            self.response_hook(
                request.method,
                request.path,
                response.status_code,
                dict(response.headers),
                response.get_data(),
            )
        return response(environ, start_response)

    def _route(self, request: Request, body_fits: bool) -> Response:
        if request.path.startswith(v2.PREFIX + "/"):
            return self.v2(request) if body_fits else v2.too_large()
        try:
            rule, values = match(URL_MAP, request)
        except RequestRedirect as redirect:
            return redirect.get_response(request.environ)
        except MethodNotAllowed as refused:
            not_allowed = ApiProblem.coded(
                405,
                "method_not_allowed",
                f"Method {request.method} is not allowed here.",
                Allow=", ".join(sorted(refused.valid_methods or ())),
            )
            if is_sandbox_path(request.path):
                # The contract: _sandbox routes are never counted, faulted nor
                # rate-limited, whatever the method.
                return problem_response(not_allowed)
            return self._api(request, None, {}, problem=not_allowed)
        except NotFound:
            return self._api(
                request,
                None,
                {},
                problem=ApiProblem.coded(404, "not_found", f"No such path: {request.path}."),
            )
        too_large = (
            None
            if body_fits
            else ApiProblem.coded(
                413, "payload_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes."
            )
        )
        if rule.endpoint in ("sandbox.stats", "sandbox.reset", "sandbox.clock", "sandbox.compact"):
            return problem_response(too_large) if too_large else self._sandbox_route(request, rule.endpoint)
        return self._api(request, rule, values, problem=too_large)

    def _sandbox_route(self, request: Request, endpoint: str) -> Response:
        """The stats routes: any key of the organization, never counted, faulted nor limited."""
        with self.store.transaction(write=False) as conn:
            try:
                self._authenticate(conn, request)
            except ApiProblem as problem:
                return problem_response(problem)
        if endpoint == "sandbox.clock":
            return self._clock(request)
        if endpoint == "sandbox.compact":
            with self.store.transaction(write=True) as conn:
                return json_response(200, {"horizon": revision.compact(conn)})
        if endpoint == "sandbox.reset":
            self.stats.reset()
        return json_response(200, self.stats.snapshot())

    def _clock(self, request: Request) -> Response:
        """``GET``/``POST /_sandbox/clock``: the sandbox's time, and setting its offset from real time."""
        if request.method == "POST":
            try:
                try:
                    data = parse_json(request.get_data() or b"null")
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise ApiProblem.coded(400, "parse_error", "The request body must be a JSON object.")
                offset = data.get("offset_seconds")
                if (
                    isinstance(offset, bool)
                    or not isinstance(offset, (int, float))
                    or not (-MAX_CLOCK_OFFSET_S <= offset <= MAX_CLOCK_OFFSET_S)
                ):
                    raise ApiProblem.fields(
                        {
                            "offset_seconds": [
                                f"A number of seconds between -{MAX_CLOCK_OFFSET_S} and {MAX_CLOCK_OFFSET_S}."
                            ]
                        }
                    )
            except ApiProblem as problem:
                return problem_response(problem)
            self.clock_offset = float(offset)
            store.CLOCK_OFFSET.set(self.clock_offset)
        return json_response(200, {"now": store.now_iso(), "offset_seconds": self.clock_offset})

    def _api(
        self,
        request: Request,
        rule: Route | None,
        values: dict[str, str],
        problem: ApiProblem | None = None,
    ) -> Response:
        template = route_template(rule.rule) if rule is not None else "<unmatched>"
        self.stats.count(f"{request.method} {template}")
        if not self.latency_s:
            return self._answer(request, rule, values, problem)
        # Simulated network latency: no answer leaves before ``latency`` has
        # passed since the request arrived. The sandbox's own work runs inside
        # that window, so with many requests in flight its CPU time (shared
        # with the client on one machine) does not add to the round trip. The
        # wait comes after the transaction: it holds no db connection and no lock.
        arrived = time.monotonic()
        try:
            return self._answer(request, rule, values, problem)
        finally:
            remaining = self.latency_s - (time.monotonic() - arrived)
            if remaining > 0:
                time.sleep(remaining)

    def _answer(
        self, request: Request, rule: Route | None, values: dict[str, str], problem: ApiProblem | None
    ) -> Response:
        """Rate limiting, fault injection and the request itself."""
        decision: RateDecision | None = None
        if self.rate_limiter is not None:
            decision = self.rate_limiter.take(presented_key(request) or "")
            if not decision.allowed:
                self.stats.count_throttled()
                response = problem_response(
                    ApiProblem.coded(
                        429,
                        "throttled",
                        f"Rate limit exceeded; retry in {decision.retry_after} s.",
                        **{"Retry-After": str(decision.retry_after)},
                    )
                )
                return self._rate_headers(response, decision)
        published = self._published_limit(request, rule)
        if published is not None:
            return self._rate_headers(published, decision)
        is_write = request.method in WRITE_METHODS
        fault = self.faults.decide(is_write) if self.faults is not None else None
        if fault is not None and not fault.commit_first:
            return self._rate_headers(self._fault(fault), decision)
        if problem is not None or rule is None:
            response = problem_response(problem or ApiProblem.coded(404, "not_found", "Not found."))
        else:
            try:
                response = self._dispatch(request, rule.endpoint, values, is_write)
            except Exception:  # a bug or a broken db: answer in the contract's shape
                log.exception("sandbox: %s %s failed", request.method, request.path)
                response = problem_response(
                    ApiProblem.coded(500, "server_error", "Internal error; see the sandbox log.")
                )
        if fault is not None:  # committed above; now fail anyway
            return self._rate_headers(self._fault(fault), decision)
        return self._rate_headers(response, decision)

    def _published_limit(self, request: Request, rule: Route | None) -> Response | None:
        """The 429 of Recall.ai's published limits for this request's key and class, or None."""
        if self.limits is None:
            return None
        kind = limits.limit_class(request.method, rule.endpoint if rule is not None else "")
        wait = self.limits.take(limits.key_bucket(store.hash_key(presented_key(request) or "")), kind)
        if not wait:
            return None
        self.stats.count_throttled()
        return problem_response(
            ApiProblem.coded(429, "throttled", limits.throttled_text(wait), **{"Retry-After": str(wait)})
        )

    @staticmethod
    def _rate_headers(response: Response, decision: RateDecision | None) -> Response:
        if decision is not None:
            response.headers["X-RateLimit-Limit"] = f"{decision.limit:g}"
            response.headers["X-RateLimit-Remaining"] = str(decision.remaining)
        return response

    @staticmethod
    def _fault(fault: Fault) -> Response:
        if fault.kind == FAULT_DROP:
            raise _Dropped()
        if fault.kind == FAULT_503:
            return problem_response(
                ApiProblem.coded(
                    503, "service_unavailable", "Injected fault: service unavailable.", **{"Retry-After": "1"}
                )
            )
        assert fault.kind == FAULT_500
        return problem_response(ApiProblem.coded(500, "server_error", "Injected fault: internal error."))

    def _dispatch(self, request: Request, endpoint: str, values: dict[str, str], is_write: bool) -> Response:
        """Authenticate, authorize and run the handler in one transaction."""
        # A request made with an API key records its use: a write transaction.
        uses_api_key = api_keys.looks_like_secret(presented_key(request))
        with self.store.transaction(write=is_write or uses_api_key) as conn:
            try:
                user = self._authenticate(conn, request, touch=uses_api_key)
                if is_write and user["role"] != "admin" and endpoint not in api_keys.DEVELOPER_WRITES:
                    raise ApiProblem.coded(
                        403, "permission_denied", "Developers may not make changes; use an admin's key."
                    )
            except ApiProblem as problem:
                return problem_response(problem)
            call = Call(conn, request, user, values)
            idempotency_key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            try:
                if idempotency_key is not None:
                    check_idempotency_key(idempotency_key)
                    response = self._idempotent(call, endpoint, idempotency_key)
                else:
                    response = HANDLERS[endpoint](call)
            except ApiProblem as problem:
                # Handlers validate before they write, so committing after an
                # error commits nothing.
                response = problem_response(problem)
            # The revision this transaction saw (after its own write), on every answer.
            response.headers[revision.HEADER] = str(revision.current(conn))
            return response

    @staticmethod
    def _authenticate(conn: sqlite3.Connection, request: Request, touch: bool = False) -> sqlite3.Row:
        """The user of the presented key (a server token or an API key), or a 401.

        ``touch`` records an API key's use (the caller holds a write transaction).
        """
        key = presented_key(request)
        if key is None:
            raise ApiProblem.coded(
                401,
                "not_authenticated",
                "Authentication credentials were not provided; send 'Authorization: Token <key>'.",
            )
        user = store.user_for_key(conn, key)
        if user is None:
            user = api_keys.authenticate(conn, key, touch=touch)
        if user is None:
            raise ApiProblem.coded(401, "authentication_failed", "Invalid API key.")
        return user

    @staticmethod
    def _idempotent(call: Call, endpoint: str, key: str) -> Response:
        """Replay the recorded answer to ``key``, or run the request and record it.

        The record is written in the request's own transaction, so a write
        that committed before an injected failure is replayed on retry.
        """
        conn, user_id = call.conn, call.user["id"]
        fingerprint = _fingerprint(call.request)
        now = time.time()
        row = conn.execute(
            "SELECT * FROM idempotency WHERE user_id = ? AND key = ?", (user_id, key)
        ).fetchone()
        if row is not None and row["created"] >= now - IDEMPOTENCY_WINDOW_S:
            if row["fingerprint"] != fingerprint:
                return problem_response(
                    ApiProblem.coded(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used for a different request; use a new key.",
                    )
                )
            headers = json.loads(row["headers"])
            headers["Idempotent-Replayed"] = "true"
            return Response(row["body"], status=row["status"], headers=headers)
        try:
            response = HANDLERS[endpoint](call)
        except ApiProblem as problem:
            response = problem_response(problem)
        if response.status_code < 500:
            kept = {name: response.headers[name] for name in _REPLAYED_HEADERS if name in response.headers}
            recorded = response.get_data()
            if endpoint in RECORDED_BODY:
                recorded = RECORDED_BODY[endpoint](recorded)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency "
                "(user_id, key, fingerprint, status, body, headers, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, key, fingerprint, response.status_code, recorded, json.dumps(kept), now),
            )
        return response
