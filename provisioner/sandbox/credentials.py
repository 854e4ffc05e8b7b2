"""Credentials as resources: ``/api/v1/credentials/``, transcription providers and platform apps.

A credential belongs to a workspace, one per provider. It has readable
``fields`` (an AWS region, an OAuth client id) and write-only ``secrets``
(API keys, client secrets). Which of each a provider has is ``PROVIDERS``,
the contract's table.

Decisions worth knowing:

* **Only what has no public API.** Transcription keys and calendar OAuth
  clients are here because Recall.ai publishes no API for them. The Zoom
  OAuth app is on Recall.ai's real v2 API (``v2``), so ``provider: zoom`` is
  refused with the path that holds it (``ON_THE_REAL_API``), not invented twice.
* **Secrets are never kept, only digests.** Each written secret is stored
  and returned as ``{"algorithm": "pbkdf2_sha256", "iterations", "salt",
  "digest"}``: PBKDF2-HMAC-SHA256 over the secret's UTF-8 with a fresh
  random 16-byte salt at every write. A client tells whether its local
  value differs by computing the same; the server cannot give the secret
  back because it does not have it. ``ITERATIONS`` is the contract's
  minimum, OWASP's figure for PBKDF2-HMAC-SHA256 (600,000): whoever may read a
  digest can test guesses of the secret offline, each guess costing that
  many iterations, and clients refuse to trust a digest made with fewer.
  About a third of a second per secret written, on one core.
* **Errors name the nested field** with a dot (``fields.region``,
  ``secrets.api_key``), so a client can point at the line of its config.
* **A PATCH replaces what it names** and keeps the rest; ``null`` removes an
  optional field (a required one stays required). A PATCH that changes
  nothing keeps the ETag, but writing a secret always changes it: a secret
  is written with a new salt even when its value is the same, and the
  sandbox cannot know that it is.
* **Where each secret came from is non-secret metadata.** A write may label
  each secret it sends (``secret_sources``, e.g. ``"env DEEPGRAM_KEY_PRODUCTION
  v1"``); a secret written without a label gets ``null``, so a value written
  by hand or by another tool never passes for the one a config declared. A
  plan compares labels, never values: it needs no secret to be complete.
* **Digests are for admins.** A developer's key reads every credential's
  fields and labels, with ``null`` in place of each digest: a salted digest
  of a low-entropy secret can be guessed offline, and only a job that holds
  the secrets (an admin's drift check) compares values.
* **Unknown names are refused**, at the top level and inside ``fields`` and
  ``secrets``: a misspelt secret silently dropped would leave the old one.

The module builds on ``resource``; ``app`` routes to ``HANDLERS``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from provisioner.frozen import frozen
from provisioner.sandbox import store
from provisioner.sandbox.resource import (
    NO_CONTROL,
    ApiProblem,
    Call,
    Resource,
    check_if_match,
    fetch,
    json_response,
    list_page,
    location,
    refuse_unknown,
    single,
    workspace_problem,
)

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000
SALT_BYTES = 16
FIELD_MAX = 256
REQUIRED_NOT_NULL = "This field is required; only an optional field can be removed with null."
SECRET_MAX = 4096


@frozen(slots=True)
class Provider:
    """What one provider's credential holds: its kind, readable fields and write-only secrets."""

    kind: str  # "transcription" or "platform"
    fields: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()  # the fields that may be left out
    secrets: tuple[str, ...] = ("api_key",)


PROVIDERS: dict[str, Provider] = {
    "assembly_ai": Provider("transcription"),
    "deepgram": Provider("transcription"),
    "rev": Provider("transcription"),
    "speechmatics": Provider("transcription", ("region",), frozenset({"region"})),
    "aws_transcribe": Provider("transcription", ("region", "access_key_id"), secrets=("secret_access_key",)),
    "gladia": Provider("transcription"),
    "elevenlabs": Provider("transcription"),
    "google_calendar": Provider("platform", ("client_id",), secrets=("client_secret",)),
    "microsoft_calendar": Provider("platform", ("client_id",), secrets=("client_secret",)),
}

# What Recall.ai's real API holds, by the provider name a client might still
# send, and where: the contract keeps no second copy of it (issue 22).
ON_THE_REAL_API: dict[str, tuple[str, str]] = {
    "zoom": ("the Zoom OAuth app", "/api/v2/zoom-oauth-apps/"),
}


def secret_digest(secret: str) -> dict[str, Any]:
    """The stored and shown form of a secret: a salted PBKDF2 digest with a fresh salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, ITERATIONS)
    return {"algorithm": ALGORITHM, "iterations": ITERATIONS, "salt": salt.hex(), "digest": digest.hex()}


def credential_json(row: sqlite3.Row) -> dict[str, Any]:
    """The representation every read returns: digests of the secrets, never a secret."""
    return {
        "id": row["id"],
        "workspace_id": row["workspace_id"],
        "provider": row["provider"],
        "kind": row["kind"],
        "fields": json.loads(row["fields"]),
        "secrets": json.loads(row["secrets"]),
        "secret_sources": json.loads(row["secret_sources"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "etag": store.etag(row["id"], row["rev"]),
    }


CREDENTIALS = Resource("credentials", "credential", credential_json, ("workspace_id", "provider"))


SOURCE_MAX = 300
LABEL_ONLY = "Label only a secret this request writes."


def _for_caller(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """A credential as this caller may read it: no digests unless an admin."""
    if call.user["role"] == "admin":
        return body
    return {**body, "secrets": {name: None for name in body["secrets"]}}


def as_caller_reads(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """A credential's representation as the caller reads it (the change feed shows it so too)."""
    return _for_caller(call, body)


def _shown(call: Call, response: Response) -> Response:
    """``response`` (one credential or a page of them) with each credential as the caller may read it."""
    if call.user["role"] == "admin":
        return response
    data = response.get_json()
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data["results"] = [_for_caller(call, item) for item in data["results"]]
    elif isinstance(data, dict):
        data = _for_caller(call, data)
    return json_response(response.status_code, data, dict(response.headers))


# --- validation ---------------------------------------------------------------------


def _object(data: dict[str, Any], name: str, errors: dict[str, list[str]]) -> dict[str, Any] | None:
    """``data[name]`` if it is an object ({} if absent); None with a message in ``errors`` if not."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        errors[name] = ["Must be an object."]
        return None
    return value


def _fields(
    provider: Provider, given: dict[str, Any], errors: dict[str, list[str]], *, partial: bool
) -> None:
    """Check readable fields: known names, values of 1 to 256 characters without controls.

    ``partial`` (a PATCH) does not require every field and lets ``null``
    remove an optional one.
    """
    errors.update(refuse_unknown(given, provider.fields, "fields."))
    for name in provider.fields:
        where = f"fields.{name}"
        if name not in given:
            if not partial and name not in provider.optional:
                errors[where] = ["This field is required."]
            continue
        value = given[name]
        if value is None and partial:
            if name not in provider.optional:
                errors[where] = [REQUIRED_NOT_NULL]
            continue
        if not isinstance(value, str) or not 1 <= len(value) <= FIELD_MAX or not NO_CONTROL.fullmatch(value):
            errors[where] = [f"Enter 1 to {FIELD_MAX} characters without control characters."]


def _secrets(
    provider: Provider, given: dict[str, Any], errors: dict[str, list[str]], *, partial: bool
) -> None:
    errors.update(refuse_unknown(given, provider.secrets, "secrets."))
    for name in provider.secrets:
        where = f"secrets.{name}"
        if name not in given:
            if not partial:
                errors[where] = ["This field is required."]
            continue
        value = given[name]
        if not isinstance(value, str) or not 1 <= len(value) <= SECRET_MAX:
            errors[where] = [f"Enter a secret of 1 to {SECRET_MAX} characters."]


def _sources(
    provider: Provider, given: dict[str, Any], written: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, str | None]:
    """The labels of the secrets written: each a secret this write sends, a short text or null."""
    errors.update(refuse_unknown(given, provider.secrets, "secret_sources."))
    out: dict[str, str | None] = {}
    for name in provider.secrets:
        if name not in given:
            continue
        value = given[name]
        if name not in written:
            errors[f"secret_sources.{name}"] = [LABEL_ONLY]
        elif value is not None and (
            not isinstance(value, str) or not 1 <= len(value) <= SOURCE_MAX or not NO_CONTROL.fullmatch(value)
        ):
            errors[f"secret_sources.{name}"] = [
                f"Enter 1 to {SOURCE_MAX} characters without control characters, or null."
            ]
        else:
            out[name] = value
    return out


def _not_a_provider(name: Any) -> str:
    """Why ``name`` is refused, and where its data lives if Recall.ai's real API has it."""
    if isinstance(name, str) and name in ON_THE_REAL_API:
        what, path = ON_THE_REAL_API[name]
        return (
            f"{json.dumps(name)} is not a provider of /credentials/: Recall.ai's real API holds "
            f"{what}; write it at {path} with the workspace's own key."
        )
    return f"{json.dumps(name)} is not a provider; use one of: {', '.join(PROVIDERS)}."


# --- handlers ------------------------------------------------------------------------


def create_credential(call: Call) -> Response:
    data = call.body()
    errors = refuse_unknown(data, ("workspace_id", "provider", "fields", "secrets", "secret_sources"))
    if "workspace_id" not in data:
        errors["workspace_id"] = ["This field is required."]
    elif problem := workspace_problem(call, data["workspace_id"]):
        errors["workspace_id"] = [problem]
    name = data.get("provider")
    provider = PROVIDERS.get(name) if isinstance(name, str) else None
    if "provider" not in data:
        errors["provider"] = ["This field is required."]
    elif provider is None:
        errors["provider"] = [_not_a_provider(name)]
    fields = _object(data, "fields", errors)
    written = _object(data, "secrets", errors)
    if provider is not None and fields is not None:
        _fields(provider, fields, errors, partial=False)
    labels = _object(data, "secret_sources", errors)
    sources: dict[str, str | None] = {}
    if provider is not None and written is not None:
        _secrets(provider, written, errors, partial=False)
        if labels is not None:
            sources = _sources(provider, labels, written, errors)
    if errors:
        raise ApiProblem.fields(errors)
    assert provider is not None and fields is not None and written is not None
    exists = call.conn.execute(
        "SELECT 1 FROM credentials WHERE workspace_id = ? AND provider = ?", (data["workspace_id"], name)
    ).fetchone()
    if exists is not None:
        raise ApiProblem.coded(
            409, "already_exists", f"The workspace already has a {name} credential; change that one instead."
        )
    ts = store.now_iso()
    digests = {secret: secret_digest(written[secret]) for secret in provider.secrets}
    call.conn.execute(
        "INSERT INTO credentials "
        "(id, workspace_id, provider, kind, fields, secrets, secret_sources, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            store.new_id(),
            data["workspace_id"],
            name,
            provider.kind,
            json.dumps(fields, sort_keys=True),
            json.dumps(digests, sort_keys=True),
            json.dumps({name: sources.get(name) for name in provider.secrets}, sort_keys=True),
            ts,
            ts,
        ),
    )
    row = call.conn.execute("SELECT * FROM credentials WHERE seq = last_insert_rowid()").fetchone()
    response = single(row, CREDENTIALS, 201)
    response.headers["Location"] = location(call, f"/credentials/{row['id']}/")
    return _shown(call, response)


def get_credential(call: Call) -> Response:
    return _shown(call, single(fetch(call, CREDENTIALS), CREDENTIALS))


def update_credential(call: Call) -> Response:
    """Replace the fields and secrets named; ``null`` removes an optional field."""
    row = fetch(call, CREDENTIALS)
    check_if_match(call, row)
    data = call.body()
    provider = PROVIDERS[row["provider"]]
    errors = refuse_unknown(data, ("fields", "secrets", "secret_sources"))
    fields = _object(data, "fields", errors)
    written = _object(data, "secrets", errors)
    labels = _object(data, "secret_sources", errors)
    sources: dict[str, str | None] = {}
    if fields is not None:
        _fields(provider, fields, errors, partial=True)
    if written is not None:
        _secrets(provider, written, errors, partial=True)
        if labels is not None:
            sources = _sources(provider, labels, written, errors)
    if errors:
        raise ApiProblem.fields(errors)
    assert fields is not None and written is not None
    before_fields = json.loads(row["fields"])
    after_fields = {**before_fields, **fields}
    after_fields = {name: value for name, value in after_fields.items() if value is not None}
    if after_fields != before_fields or written:
        digests = json.loads(row["secrets"])
        digests.update({secret: secret_digest(value) for secret, value in written.items()})
        # A secret written without a label has an unknown source from now on.
        labelled = {**json.loads(row["secret_sources"]), **{name: sources.get(name) for name in written}}
        call.conn.execute(
            "UPDATE credentials SET fields = ?, secrets = ?, secret_sources = ?, updated_at = ?, "
            "rev = rev + 1 WHERE id = ?",
            (
                json.dumps(after_fields, sort_keys=True),
                json.dumps(digests, sort_keys=True),
                json.dumps(labelled, sort_keys=True),
                store.now_iso(),
                row["id"],
            ),
        )
        row = fetch(call, CREDENTIALS)
    return _shown(call, single(row, CREDENTIALS))


def delete_credential(call: Call) -> Response:
    row = fetch(call, CREDENTIALS)
    check_if_match(call, row)
    call.conn.execute("DELETE FROM credentials WHERE id = ?", (row["id"],))
    return json_response(204, None)


HANDLERS: dict[str, Callable[[Call], Response]] = {
    "credentials.list": lambda call: _shown(call, list_page(call, CREDENTIALS)),
    "credentials.create": create_credential,
    "credentials.get": get_credential,
    "credentials.update": update_credential,
    "credentials.delete": delete_credential,
}
