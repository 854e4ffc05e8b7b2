"""API keys as resources: ``/api/v1/api_keys/``, and keys made there authenticating requests.

A key belongs to a user and a workspace. ``POST`` makes one and returns its
secret (``key``) once; the sandbox keeps only its SHA-256 hash and a short
non-secret ``prefix``. A key is disabled with ``PATCH {"disabled": true}``
(never enabled again) and can be deleted only once disabled.

Decisions worth knowing:

* **Who sees what.** Every key of the organization reads every key's
  metadata (name, owner, workspace, prefix, times, disabled, where its
  secret was delivered), never a secret: a least-privilege plan must see the
  keys it compares, or it would propose to make them again. An admin manages
  every key; a developer may create, disable and delete only their own (403
  otherwise). These are the only writes a developer may make
  (``DEVELOPER_WRITES``).
* **``delivered_to`` tells a tool's keys from others'.** Only an admin's key
  may record where a new key's secret was delivered, at creation. A key with
  a destination was made by an admin through a tool that delivered it; a key
  without one (a developer's, or one made by hand) is never taken for it.
* **Idempotent replays never show the secret again.** The recorded answer
  to a ``POST`` is the representation without ``key`` (``recorded_body``):
  storing the secret for a replay would keep it on disk in clear. A client
  whose first answer was lost learns the new key's id from the replay and
  should disable and delete that key, then make another.
* **Recognising a key.** Secrets start with ``SECRET_MARK``, so only
  requests that present such a key take a write transaction to move
  ``last_used_at``; the server's own tokens cost nothing more.
* **Names are not unique:** a rotation makes a second key of the same name
  before the first is disabled.

This module builds on the request helpers of ``resource``; ``app`` routes
to the handlers in ``HANDLERS``. It knows SQL and HTTP shapes for this one
resource only.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from provisioner.sandbox import store
from provisioner.sandbox.resource import (
    API_PREFIX,
    ApiProblem,
    Call,
    Resource,
    check_if_match,
    delivered_to_problem,
    is_visible_name,
    json_response,
    list_page,
    single,
)

SECRET_MARK = "ak_"
# The prefix shown for recognition: the mark and 8 hex digits (32 bits of
# the 192 random bits; the rest stays secret).
PREFIX_LENGTH = len(SECRET_MARK) + 8
NAME_MAX = 100
DEVELOPER_WRITES = frozenset({"api_keys.create", "api_keys.update", "api_keys.delete"})


def new_secret() -> str:
    return SECRET_MARK + secrets.token_hex(24)


def api_key_json(row: sqlite3.Row) -> dict[str, Any]:
    """The representation every read returns: never the secret, which is not stored."""
    return {
        "id": row["id"],
        "name": row["name"],
        "user_id": row["user_id"],
        "workspace_id": row["workspace_id"],
        "prefix": row["prefix"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "disabled": bool(row["disabled"]),
        "delivered_to": row["delivered_to"],
        "etag": store.etag(row["id"], row["rev"]),
    }


API_KEYS = Resource("api_keys", "API key", api_key_json, ("workspace_id", "user_id"))


# --- authentication -------------------------------------------------------------


def looks_like_secret(key: str | None) -> bool:
    """Whether a presented key may be an API key (and its use must be recorded)."""
    return key is not None and key.startswith(SECRET_MARK)


def authenticate(conn: sqlite3.Connection, key: str, *, touch: bool) -> sqlite3.Row | None:
    """The user of API key ``key``, or None if no such key; a 401 if it is disabled.

    With ``touch`` (the request runs in a write transaction) the key's
    ``last_used_at`` becomes now.
    """
    row = conn.execute("SELECT * FROM api_keys WHERE hash = ?", (store.hash_key(key),)).fetchone()
    if row is None:
        return None
    if row["disabled"]:
        raise ApiProblem.coded(
            401, "authentication_failed", f"The API key {row['prefix']}... is disabled; use another key."
        )
    user: sqlite3.Row | None = conn.execute("SELECT * FROM users WHERE id = ?", (row["user_id"],)).fetchone()
    if user is not None and touch:
        # last_used_at is not a change to the key: its ETag stays, so that
        # using a key never makes an If-Match taken from a list fail.
        conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (store.now_iso(), row["id"]))
    return user


# --- handlers ------------------------------------------------------------------------


def _is_admin(call: Call) -> bool:
    return bool(call.user["role"] == "admin")


def _fetch(call: Call) -> sqlite3.Row:
    """The key named in the path (every key reads every key's metadata); else a 404."""
    row: sqlite3.Row | None = call.conn.execute(
        "SELECT * FROM api_keys WHERE id = ?", (call.values["id"],)
    ).fetchone()
    if row is None:
        raise ApiProblem.coded(404, "not_found", f"No API key with id {call.values['id']!r}.")
    return row


def _fetch_writable(call: Call) -> sqlite3.Row:
    """The key named in the path, if the caller may change it: an admin any, a developer their own."""
    row = _fetch(call)
    if not (_is_admin(call) or row["user_id"] == call.user["id"]):
        raise ApiProblem.coded(
            403, "permission_denied", "Developers may change only their own API keys; use an admin's key."
        )
    return row


def list_api_keys(call: Call) -> Response:
    """The organization's keys (metadata only), filterable by workspace and user."""
    filters = {name: call.request.args[name] for name in API_KEYS.filters if name in call.request.args}
    return list_page(call, API_KEYS, filters)


def create_api_key(call: Call) -> Response:
    data = call.body()
    user_id = data.get("user_id")
    if not _is_admin(call) and isinstance(user_id, str) and user_id != call.user["id"]:
        raise ApiProblem.coded(
            403,
            "permission_denied",
            "Developers may create API keys only for themselves; use an admin's key.",
        )
    errors: dict[str, list[str]] = {}
    name = data.get("name")
    if "name" not in data:
        errors["name"] = ["This field is required."]
    elif not is_visible_name(name, NAME_MAX):
        errors["name"] = [f"Enter a name of 1 to {NAME_MAX} characters."]
    for field, table, kind in (("workspace_id", "workspaces", "workspace"), ("user_id", "users", "user")):
        value = data.get(field)
        if field not in data:
            errors[field] = ["This field is required."]
        elif (
            not isinstance(value, str)
            or call.conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (value,)).fetchone() is None
        ):
            errors[field] = [f"No {kind} with id {json.dumps(value)}."]
    if problem := delivered_to_problem(call, data.get("delivered_to")):
        errors["delivered_to"] = [problem]
    if errors:
        raise ApiProblem.fields(errors)
    secret = new_secret()
    call.conn.execute(
        "INSERT INTO api_keys (id, hash, prefix, name, user_id, workspace_id, created_at, delivered_to) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            store.new_id(),
            store.hash_key(secret),
            secret[:PREFIX_LENGTH],
            name,
            user_id,
            data["workspace_id"],
            store.now_iso(),
            data.get("delivered_to"),
        ),
    )
    row = call.conn.execute("SELECT * FROM api_keys WHERE seq = last_insert_rowid()").fetchone()
    body = {**api_key_json(row), "key": secret}
    return json_response(
        201,
        body,
        {
            "ETag": body["etag"],
            "Location": f"{call.request.host_url.rstrip('/')}{API_PREFIX}/api_keys/{row['id']}/",
        },
    )


def get_api_key(call: Call) -> Response:
    return single(_fetch(call), API_KEYS)


def update_api_key(call: Call) -> Response:
    """``{"disabled": true}`` disables the key; a disabled key is never enabled again."""
    row = _fetch_writable(call)
    check_if_match(call, row)
    data = call.body()
    if "disabled" not in data:
        raise ApiProblem.fields({"disabled": ["This field is required."]})
    if data["disabled"] is not True:
        raise ApiProblem.fields(
            {"disabled": ["Only true is allowed: a key cannot be enabled again; create a new key instead."]}
        )
    if not row["disabled"]:  # an unchanged resource keeps its ETag
        call.conn.execute("UPDATE api_keys SET disabled = 1, rev = rev + 1 WHERE id = ?", (row["id"],))
        row = _fetch(call)
    return single(row, API_KEYS)


def delete_api_key(call: Call) -> Response:
    row = _fetch_writable(call)
    check_if_match(call, row)
    if not row["disabled"]:
        raise ApiProblem.coded(
            409,
            "key_not_disabled",
            f"The API key {row['prefix']}... is not disabled; disable it first "
            '(PATCH {"disabled": true}), then delete it.',
        )
    call.conn.execute("DELETE FROM api_keys WHERE id = ?", (row["id"],))
    return json_response(204, None)


def recorded_body(body: bytes) -> bytes:
    """What an Idempotency-Key replay of a create returns: the first answer without the secret."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict):
        data.pop("key", None)
        return json.dumps(data, separators=(",", ":")).encode()
    return body


HANDLERS: dict[str, Callable[[Call], Response]] = {
    "api_keys.list": list_api_keys,
    "api_keys.create": create_api_key,
    "api_keys.get": get_api_key,
    "api_keys.update": update_api_key,
    "api_keys.delete": delete_api_key,
}
