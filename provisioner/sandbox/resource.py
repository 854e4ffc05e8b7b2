"""What a resource handler module builds on: errors, responses, the call, fetching and pages.

Every resource module (``app``'s users and workspaces and memberships,
``api_keys``, ``webhooks``, ``credentials``) imports its request helpers from here, and only ``app``
imports the resource modules: routing, authentication, idempotency and the
knobs stay in ``app``, and no resource module depends on it.

Decisions worth knowing:

* **One error type.** A handler raises ``ApiProblem`` anywhere; ``app``
  turns it into a JSON response once. Handlers validate before they write,
  so the transaction an error ends commits nothing.
* **Pages are keysets on ``seq``** with opaque cursors that are checked as
  strictly as the contract words them (ASCII digits, SQLite's integer range).
* **Unknown fields are the module's choice.** The older resources ignore
  them; the workspace-settings resources refuse them (``refuse_unknown``),
  because a misspelt secret name must never be dropped without a word.
* **Control characters** in text the settings resources store are refused
  by one class of characters (``NO_CONTROL``), the same one the contract's
  patterns use, so the sandbox and the contract cannot disagree.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from provisioner.frozen import frozen
from provisioner.sandbox import store

API_PREFIX = "/api/v1"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# A cursor is base64 of "a:<seq>"; anything longer was not issued by us.
MAX_CURSOR_LENGTH = 64
# seq is an SQLite INTEGER: a larger number in a forged cursor cannot be bound.
MAX_SEQ = 2**63 - 1
_ASCII_DIGITS = re.compile(r"[0-9]+")
# C0 and C1 control characters (Unicode category Cc), as a regex class body.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
# Text without control characters: the contract's pattern for setting values.
NO_CONTROL = re.compile(f"[^{CONTROL_CHARACTERS}]*")


class ApiProblem(Exception):
    """An error answer: raised anywhere in a handler, turned into a JSON response once."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}

    @classmethod
    def coded(cls, status: int, code: str, detail: str, **headers: str) -> ApiProblem:
        return cls(status, {"detail": detail, "code": code}, headers)

    @classmethod
    def fields(cls, errors: dict[str, list[str]]) -> ApiProblem:
        return cls(400, errors)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return Response(
        data,
        status=status,
        headers=headers or {},
        mimetype="application/json" if body is not None else None,
    )


def problem_response(problem: ApiProblem) -> Response:
    return json_response(problem.status, problem.body, problem.headers)


@frozen
class Resource:
    """How one collection is stored and shown: its table, JSON and list filters."""

    table: str
    kind: str  # for messages: "user", "workspace", ...
    to_json: Callable[[sqlite3.Row], dict[str, Any]]
    filters: tuple[str, ...] = ()


@dataclass
class Call:
    """One authenticated request inside its transaction."""

    conn: sqlite3.Connection
    request: Request
    user: sqlite3.Row
    values: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON object body, or a 400 ``parse_error``."""
        try:
            data = parse_json(self.request.get_data(cache=True) or b"null")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ApiProblem.coded(400, "parse_error", "The request body must be a JSON object.")
        return data


def parse_json(raw: bytes) -> Any:
    """``json.loads``, with every way it can fail on bad input raised as ValueError.

    Nesting deeper than the interpreter's recursion limit (``[[[[...``
    100,000 deep) raises RecursionError inside the decoder: that is bad
    input too, not a server error.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def single(row: sqlite3.Row, resource: Resource, status: int = 200) -> Response:
    """A single-resource response: the representation and its ETag header."""
    body = resource.to_json(row)
    return json_response(status, body, {"ETag": body["etag"]})


def fetch(call: Call, resource: Resource) -> sqlite3.Row:
    row: sqlite3.Row | None = call.conn.execute(
        f"SELECT * FROM {resource.table} WHERE id = ?", (call.values["id"],)
    ).fetchone()
    if row is None:
        raise ApiProblem.coded(404, "not_found", f"No {resource.kind} with id {call.values['id']!r}.")
    return row


def check_if_match(call: Call, row: sqlite3.Row) -> None:
    """412 unless If-Match is absent, ``*``, or lists the current ETag."""
    if "If-Match" not in call.request.headers:
        return
    current = store.etag(row["id"], row["rev"]).strip('"')
    tags = call.request.if_match
    if not (tags.star_tag or tags.contains(current)):
        raise ApiProblem.coded(
            412,
            "precondition_failed",
            "The resource changed since it was read (If-Match does not match its ETag); read it again.",
        )


# --- pagination -------------------------------------------------------------------


def _encode_cursor(direction: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    """The (direction, seq) of a cursor this server issued, or a 400 on ``cursor``.

    A cursor is opaque to clients but not to forgers: the sequence number is
    checked to be plain ASCII digits within SQLite's integer range, so that
    ``int()``'s leniency (``+5``, ``1_0``, other scripts' digits) and huge
    numbers never reach the database.
    """
    invalid = ApiProblem.fields({"cursor": ["Invalid cursor; use a next or previous link as given."]})
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error):
        raise invalid from None
    direction, _, seq = raw.partition(":")
    if direction not in ("a", "b") or not _ASCII_DIGITS.fullmatch(seq) or int(seq) > MAX_SEQ:
        raise invalid
    return direction, int(seq)


def _page_size(raw: str | None) -> int:
    """``page_size`` as the contract allows it: ASCII digits for 1 to 100; absent means the default.

    Present but empty, signed, with underscores or in other scripts' digits
    is a 400, although Python's ``int()`` would take most of them.
    """
    if raw is None:
        return DEFAULT_PAGE_SIZE
    size = int(raw) if _ASCII_DIGITS.fullmatch(raw) and len(raw) <= 10 else 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        # Rejected, never clamped: a client asking for more than it gets
        # would otherwise silently page differently from what it planned.
        raise ApiProblem.fields(
            {"page_size": [f"Ensure this value is an integer between 1 and {MAX_PAGE_SIZE}."]}
        )
    return size


def list_page(call: Call, resource: Resource, filters: dict[str, str] | None = None) -> Response:
    """One keyset page of ``resource`` with absolute ``next``/``previous`` links.

    ``filters`` default to the resource's filters present in the query.
    """
    args = call.request.args
    size = _page_size(args.get("page_size"))
    after = before = None
    if "cursor" in args:
        direction, seq = _decode_cursor(args["cursor"])
        after, before = (seq, None) if direction == "a" else (None, seq)
    if filters is None:
        filters = {name: args[name] for name in resource.filters if name in args}
    rows, more = store.page(call.conn, resource.table, after=after, before=before, size=size, filters=filters)

    def beyond(seq: int, forward: bool) -> bool:
        return store.exists_beyond(call.conn, resource.table, seq=seq, forward=forward, filters=filters)

    next_seq = prev_seq = None
    if before is None:  # walking forward (or the first page)
        if more:
            next_seq = rows[-1]["seq"]
        if after is not None:
            first = rows[0]["seq"] if rows else after + 1
            prev_seq = first if beyond(first, forward=False) else None
    else:
        if more:
            prev_seq = rows[0]["seq"]
        last = rows[-1]["seq"] if rows else before - 1
        next_seq = last if beyond(last, forward=True) else None

    def link(direction: str, seq: int | None) -> str | None:
        if seq is None:
            return None
        query = {**filters, "page_size": str(size), "cursor": _encode_cursor(direction, seq)}
        return f"{call.request.host_url.rstrip('/')}{call.request.path}?{urlencode(query)}"

    return json_response(
        200,
        {
            "next": link("a", next_seq),
            "previous": link("b", prev_seq),
            "results": [resource.to_json(row) for row in rows],
        },
    )


# --- helpers the settings resources share ----------------------------------------------


def location(call: Call, path: str) -> str:
    """The absolute URL of ``path`` (relative to the API prefix) on this server, for ``Location``."""
    return f"{call.request.host_url.rstrip('/')}{API_PREFIX}{path}"


def refuse_unknown(data: dict[str, Any], known: Iterable[str], prefix: str = "") -> dict[str, list[str]]:
    """Field errors for every key of ``data`` not in ``known`` (named ``prefix`` + key)."""
    allowed = set(known)
    return {f"{prefix}{name}": ["Unknown field."] for name in data if name not in allowed}


def workspace_problem(call: Call, value: Any) -> str | None:
    """Why ``value`` is not the id of an existing workspace, or None if it is one."""
    if isinstance(value, str) and (
        call.conn.execute("SELECT 1 FROM workspaces WHERE id = ?", (value,)).fetchone() is not None
    ):
        return None
    return f"No workspace with id {json.dumps(value)}."


def optional_body(call: Call) -> dict[str, Any]:
    """The JSON object body of a request whose body may be left out (no body reads as ``{}``)."""
    return call.body() if call.request.get_data(cache=True) else {}


def recorded_without(name: str) -> Callable[[bytes], bytes]:
    """A ``RECORDED_BODY`` entry: an idempotent replay answers the first body without ``name``.

    Used for secrets shown once: storing them for a replay would keep them on disk in clear.
    """

    def recorded(body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return body
        if not isinstance(data, dict):
            return body
        data.pop(name, None)
        return json.dumps(data, separators=(",", ":")).encode()

    return recorded


# A name must hold a character outside this whitespace: the contract's pattern spells
# it out (WorkspaceName, ApiKeyName) because ``\s`` means different sets in Python
# (``str.isspace``: also U+001C..U+001F and U+0085, but not U+FEFF) and in the
# ECMA-262 dialect of JSON Schema validators.
VISIBLE_CHARACTER = re.compile(
    "[^\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\x1c-\x1f\x85]"
)


def is_visible_name(value: object, most: int) -> bool:
    """1 to ``most`` characters, at least one of them not whitespace (the contract's pattern)."""
    return isinstance(value, str) and 0 < len(value) <= most and VISIBLE_CHARACTER.search(value) is not None


# A destination name (``delivered_to``): what a secret store or an environment
# variable may be called. Non-secret metadata that a client records so that a
# change of destination is a change a plan can show.
DESTINATION = re.compile(r"[A-Z][A-Z0-9_]{0,199}")


def delivered_to_problem(call: Call, value: Any) -> str | None:
    """Why ``value`` cannot be recorded as ``delivered_to`` by this caller, or None.

    Only an admin's key records a destination: a recorded destination is how a
    tool tells its own keys from keys others made (a developer may make keys
    for themselves, but cannot pass one off as the tool's).
    """
    if value is None:
        return None
    if call.user["role"] != "admin":
        raise ApiProblem.coded(
            403, "permission_denied", "Only an admin's key may record where a secret was delivered."
        )
    if not isinstance(value, str) or not DESTINATION.fullmatch(value):
        return "Enter a name of capital letters, digits and _ (starting with a letter), at most 200."
    return None
