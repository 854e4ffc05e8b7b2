"""Webhook endpoints as resources: ``/api/v1/webhook_endpoints/``, one URL and its events per row.

An endpoint belongs to a workspace and has a URL, a set of event types and
an enabled flag. The server makes its signing secret (``whsec_…``) and
shows it only in the answer to the create and to ``rotate_secret``.

Decisions worth knowing:

* **No secret is kept.** The sandbox signs nothing, so it stores only when
  the secret last changed (``secret_rotated_at``), not even a digest.
  Idempotent replays of a create or a rotation answer without ``secret``
  (``recorded_body``), as for API keys.
* **One URL per workspace.** The same URL twice in one workspace is 409
  ``already_exists``, compared with the scheme and host in lower case (they
  are case-insensitive; ``comparable_url``) and the rest as sent. The URL is
  stored and returned as sent. The same URL in two workspaces is allowed
  here and left to the client's guard.
* **The URL is checked by one regex** (``URL_PATTERN``, compiled on first use), written once here and once,
  identical, as the contract's pattern; a test holds them equal. The scheme
  may be in any case; the host must be a valid IP literal (not unspecified,
  not 0.0.0.0/8) or a name that is not only digits and dots; a port is 1 to
  65535. The server does not require https: refusing http off loopback is
  the client's guard.
* **Events are a set**, stored and returned sorted; a duplicate is a 400,
  not folded away, as the contract's ``uniqueItems`` says.
* **Unknown body fields are refused** (400 on the field), so that a
  misspelt ``enabled`` never leaves an endpoint in a state nobody asked for.

The module builds on ``resource``; ``app`` routes to ``HANDLERS``.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from provisioner.sandbox import store
from provisioner.sandbox.resource import (
    ApiProblem,
    Call,
    Resource,
    check_if_match,
    delivered_to_problem,
    fetch,
    json_response,
    list_page,
    location,
    optional_body,
    recorded_without,
    refuse_unknown,
    single,
    workspace_problem,
)

SECRET_MARK = "whsec_"
URL_MAX = 2048
EVENT_TYPES = (
    "bot.done",
    "bot.fatal",
    "bot.status_change",
    "calendar.sync_events",
    "calendar.update",
    "participant_events.join",
    "participant_events.leave",
    "recording.done",
    "recording.failed",
    "transcript.done",
    "transcript.failed",
)
# Characters a URL may not hold anywhere: controls (C0, C1), space, and the
# other Unicode white space.
_NOT_IN_URL = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Characters of a host name: none of the URL's delimiters, no brackets.
_NAME = rf"/?#@:\[\]{_NOT_IN_URL}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"  # 0-255, no leading zero
_FIRST_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]?)"  # 1-255: never 0.0.0.0/8
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_OCTET}(?:\.{_OCTET}){{3}})"


def _ipv6_forms() -> str:
    """RFC 3986's IPv6address: eight groups, or fewer around one ``::``; no zone."""
    forms = [rf"(?:{_H16}:){{6}}{_LS32}", rf"::(?:{_H16}:){{5}}{_LS32}"]
    for before in range(0, 7):  # at most ``before`` + 1 groups before the ``::``
        head = rf"(?:{_H16})" if before == 0 else rf"(?:(?:{_H16}:){{0,{before}}}{_H16})"
        after = 4 - before  # full groups between the ``::`` and the last 32 bits
        if after >= 1:
            tail = (rf"(?:{_H16}:){{{after}}}" if after > 1 else rf"{_H16}:") + _LS32
        elif after == 0:
            tail = _LS32
        elif after == -1:
            tail = _H16
        else:
            tail = ""
        forms.append(rf"{head}?::{tail}")
    return "|".join(forms)


URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"  # the scheme, in any letter case (RFC 3986, 3.1)
    rf"(?:[^/?#@{_NOT_IN_URL}]*@)?"  # user information (optional)
    r"(?:"
    rf"\[(?![0:.]*\])(?:{_ipv6_forms()})\]"  # an IPv6 literal, not the unspecified address
    rf"|{_FIRST_OCTET}(?:\.{_OCTET}){{3}}"  # an IPv4 address, not in 0.0.0.0/8
    rf"|[0-9.]*[^{_NAME}0-9.][^{_NAME}]*"  # a name: not only digits and dots
    r")"
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    rf"(?:[/?#][^{_NOT_IN_URL}]*)?$"  # path, query, fragment
)
"""An absolute http or https URL with a valid host: the contract's ``WebhookUrl`` pattern, verbatim.

The host is an IPv6 literal in RFC 4291 text form (no zone) other than the
unspecified address, a dotted-quad IPv4 address (each part 0 to 255 without
leading zeros, the first not 0), or a name holding at least one character
that is not a digit or a dot (so ``999.1.1.1``, ``127.1`` and ``0`` are
refused rather than read as an address). A port, when given, is 1 to 65535
without leading zeros.
"""


@functools.cache
def url_regex() -> re.Pattern[str]:
    """``URL_PATTERN`` compiled on first use: compiling it is ~5 ms that every command on an
    embedded sandbox paid at start, and only a webhook write needs it."""
    return re.compile(URL_PATTERN)


FIELDS = ("workspace_id", "url", "events", "enabled", "delivered_to")
UPDATABLE = ("url", "events", "enabled")


def new_secret() -> str:
    return SECRET_MARK + secrets.token_urlsafe(32)


def webhook_json(row: sqlite3.Row) -> dict[str, Any]:
    """The representation every read returns: never the secret, which is not stored."""
    return {
        "id": row["id"],
        "workspace_id": row["workspace_id"],
        "url": row["url"],
        "events": json.loads(row["events"]),
        "enabled": bool(row["enabled"]),
        "secret_rotated_at": row["secret_rotated_at"],
        "delivered_to": row["delivered_to"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "etag": store.etag(row["id"], row["rev"]),
    }


WEBHOOKS = Resource("webhook_endpoints", "webhook endpoint", webhook_json, ("workspace_id",))


# --- validation ---------------------------------------------------------------------


def _url(value: Any, errors: dict[str, list[str]]) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= URL_MAX or not url_regex().fullmatch(value):
        errors["url"] = [
            f"Enter an absolute http or https URL with a host, of at most {URL_MAX} characters, "
            "without white space or control characters."
        ]


def _events(value: Any, errors: dict[str, list[str]]) -> list[str] | None:
    """The events sorted, or None with a message in ``errors``."""
    if not isinstance(value, list) or not value:
        errors["events"] = ["Enter a non-empty list of event types."]
        return None
    unknown = [event for event in value if event not in EVENT_TYPES]
    if unknown:
        errors["events"] = [
            f"{json.dumps(event)} is not an event type; use one of: {', '.join(EVENT_TYPES)}."
            for event in unknown
        ]
        return None
    if len(set(value)) != len(value):
        errors["events"] = ["Name each event type once."]
        return None
    return sorted(value)


def _enabled(value: Any, errors: dict[str, list[str]]) -> None:
    if not isinstance(value, bool):
        errors["enabled"] = ["Must be true or false."]


def comparable_url(url: str) -> str:
    """``url`` with its scheme and host (with the port) in lower case: how duplicates are compared.

    Both are case-insensitive (RFC 3986, 3.1 and 3.2.2), so ``HTTPS://DUP.example/x``
    is the same endpoint as ``https://dup.example/x``. The user information,
    path, query and fragment are compared as sent.
    """
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    return f"{scheme.lower()}://{userinfo}{at}{host.lower()}{rest[end:]}"


def _refuse_duplicate_url(call: Call, workspace_id: str, url: str, except_id: str | None = None) -> None:
    wanted = comparable_url(url)
    for other in call.conn.execute(
        "SELECT id, url FROM webhook_endpoints WHERE workspace_id = ?", (workspace_id,)
    ):
        if other["id"] != except_id and comparable_url(other["url"]) == wanted:
            raise ApiProblem.coded(
                409,
                "already_exists",
                "The workspace already has a webhook endpoint with this URL "
                "(scheme and host compared in any letter case).",
            )


def _with_secret(row: sqlite3.Row, secret: str, status: int, call: Call) -> Response:
    body = {**webhook_json(row), "secret": secret}
    headers = {"ETag": body["etag"]}
    if status == 201:
        headers["Location"] = location(call, f"/webhook_endpoints/{row['id']}/")
    return json_response(status, body, headers)


# --- handlers ------------------------------------------------------------------------


def create_webhook(call: Call) -> Response:
    data = call.body()
    errors = refuse_unknown(data, FIELDS)
    for name in ("workspace_id", "url", "events"):
        if name not in data:
            errors[name] = ["This field is required."]
    if "workspace_id" in data and (problem := workspace_problem(call, data["workspace_id"])):
        errors["workspace_id"] = [problem]
    if "url" in data:
        _url(data["url"], errors)
    events = _events(data["events"], errors) if "events" in data else None
    if "enabled" in data:
        _enabled(data["enabled"], errors)
    if problem := delivered_to_problem(call, data.get("delivered_to")):
        errors["delivered_to"] = [problem]
    if errors:
        raise ApiProblem.fields(errors)
    workspace_id, url = data["workspace_id"], data["url"]
    _refuse_duplicate_url(call, workspace_id, url)
    ts = store.now_iso()
    call.conn.execute(
        "INSERT INTO webhook_endpoints "
        "(id, workspace_id, url, events, enabled, secret_rotated_at, created_at, updated_at, delivered_to) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            store.new_id(),
            workspace_id,
            url,
            json.dumps(events),
            data.get("enabled", True),
            ts,
            ts,
            ts,
            data.get("delivered_to"),
        ),
    )
    row = call.conn.execute("SELECT * FROM webhook_endpoints WHERE seq = last_insert_rowid()").fetchone()
    return _with_secret(row, new_secret(), 201, call)


def get_webhook(call: Call) -> Response:
    return single(fetch(call, WEBHOOKS), WEBHOOKS)


def update_webhook(call: Call) -> Response:
    """Any of ``url``, ``events``, ``enabled``; an unchanged endpoint keeps its ETag."""
    row = fetch(call, WEBHOOKS)
    check_if_match(call, row)
    data = call.body()
    errors = refuse_unknown(data, UPDATABLE)
    if "url" in data:
        _url(data["url"], errors)
    events = _events(data["events"], errors) if "events" in data else None
    if "enabled" in data:
        _enabled(data["enabled"], errors)
    if errors:
        raise ApiProblem.fields(errors)
    after = {
        "url": data.get("url", row["url"]),
        "events": json.dumps(events) if events is not None else row["events"],
        "enabled": int(data.get("enabled", bool(row["enabled"]))),
    }
    if after != {"url": row["url"], "events": row["events"], "enabled": row["enabled"]}:
        if after["url"] != row["url"]:
            _refuse_duplicate_url(call, row["workspace_id"], after["url"], except_id=row["id"])
        call.conn.execute(
            "UPDATE webhook_endpoints SET url = ?, events = ?, enabled = ?, updated_at = ?, rev = rev + 1 "
            "WHERE id = ?",
            (after["url"], after["events"], after["enabled"], store.now_iso(), row["id"]),
        )
        row = fetch(call, WEBHOOKS)
    return single(row, WEBHOOKS)


def delete_webhook(call: Call) -> Response:
    row = fetch(call, WEBHOOKS)
    check_if_match(call, row)
    call.conn.execute("DELETE FROM webhook_endpoints WHERE id = ?", (row["id"],))
    return json_response(204, None)


def rotate_secret(call: Call) -> Response:
    """A new signing secret, in this answer only; the old one stops being valid at once.

    ``delivered_to`` records where the caller delivers the new secret; without
    it the destination becomes unknown (null): whoever rotated has the secret.
    """
    row = fetch(call, WEBHOOKS)
    check_if_match(call, row)
    data = optional_body(call)
    errors = refuse_unknown(data, ("delivered_to",))
    if problem := delivered_to_problem(call, data.get("delivered_to")):
        errors["delivered_to"] = [problem]
    if errors:
        raise ApiProblem.fields(errors)
    ts = store.now_iso()
    call.conn.execute(
        "UPDATE webhook_endpoints SET secret_rotated_at = ?, updated_at = ?, delivered_to = ?, "
        "rev = rev + 1 WHERE id = ?",
        (ts, ts, data.get("delivered_to"), row["id"]),
    )
    return _with_secret(fetch(call, WEBHOOKS), new_secret(), 200, call)


recorded_body = recorded_without("secret")
"""What an Idempotency-Key replay of a create or rotation answers: the first body without ``secret``."""

HANDLERS: dict[str, Callable[[Call], Response]] = {
    "webhooks.list": lambda call: list_page(call, WEBHOOKS),
    "webhooks.create": create_webhook,
    "webhooks.get": get_webhook,
    "webhooks.update": update_webhook,
    "webhooks.delete": delete_webhook,
    "webhooks.rotate_secret": rotate_secret,
}
