"""The audit trail: one JSON object per apply run, appended to a JSON-lines file.

A record holds when, which tool, which organization, the config digest and
state fingerprint, the changes applied, failed and skipped, the git commit
when run in a checkout, and the state the apply left behind (compact), so that
``drift`` can tell out-of-band changes from config that was never applied.
It also pins the run to a review: the digest of the plan that was applied,
the digest that was expected (``apply --expect``/``--expect-file``/``--plan``)
and where that expectation came from, and the reason when an emergency
``--override-expect`` applied a plan that differed from it.
It links the run to its approval as far as CI tells it (``Approval``: the
pull request, its approvers, who merged it), and each applied change to its
subject in named fields (``subject``): the user and instance, a role's
``before`` and ``after``, an API key's prefixes, so a review reads them back
without parsing keys.
And it keeps what the config declared that the API cannot tell back
(``Declared``: service accounts and each key's ``rotate_every``; the server
records where a secret went, ``sink``),
so that ``export --audit-log`` writes them back.
It never holds the API key: nothing here receives it. The one free text it
holds, each change's message, may quote what a failed ``--secrets-command``
wrote or what a server answered: ``append_record`` passes every message
through the run's redactor (``provisioner.redaction.Redactor``), which knows
the key, the config's secret values and every secret delivered so far.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from provisioner.apply.executor import ApplyReport, ChangeResult
from provisioner.errors import ProvisionerError
from provisioner.frozen import frozen
from provisioner.model import (
    ACTIVE,
    ApiKey,
    Config,
    Credential,
    Membership,
    State,
    User,
    Webhook,
    Workspace,
    ZoomApp,
)
from provisioner.plan.model import Change

AUDIT_FORMAT_VERSION = 1


class AuditLogError(ProvisionerError):
    """The audit log could not be read or written."""


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The current git commit, when run inside a git checkout; else None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) >= 7 else None


def config_commit(config: Config) -> str | None:
    """The git commit of the repository holding the config's first source; None outside one.

    Read from the config's own folder, not the working directory: a run may
    start anywhere.
    """
    if not config.sources:
        return None
    source = os.path.abspath(config.sources[0])
    return git_commit(source if os.path.isdir(source) else os.path.dirname(source))


def compact_state(state: State) -> dict[str, Any]:
    """A small, stable JSON form of a state: roles by email, members by workspace.

    Settings are kept as drift compares them: a webhook's events and enabled
    flag by workspace and URL, a credential's readable fields by workspace and
    provider, the owners of the live API keys of each name. Never a secret,
    nor a digest of one.
    """
    members: dict[str, list[str]] = {}
    for ws, email in sorted(state.memberships):
        members.setdefault(ws, []).append(email)
    out: dict[str, Any] = {
        "users": {u.email: u.role for u in sorted(state.users.values(), key=lambda u: u.email)},
        "pending": sorted(u.email for u in state.users.values() if u.status != ACTIVE),
        "workspaces": sorted(state.workspaces),
        "memberships": members,
    }
    if state.webhooks:
        hooks: dict[str, dict[str, Any]] = {}
        for (ws, url), hook in sorted(state.webhooks.items()):
            hooks.setdefault(ws, {})[url] = {"events": list(hook.events), "enabled": hook.enabled}
        out["webhooks"] = hooks
    live_keys = [k for k in state.api_keys.values() if not k.disabled]
    if live_keys:
        keys: dict[str, dict[str, list[str]]] = {}
        for key in sorted(live_keys, key=lambda k: (k.workspace, k.name, k.owner)):
            keys.setdefault(key.workspace, {}).setdefault(key.name, []).append(key.owner)
        out["api_keys"] = keys
    if state.credentials:
        creds: dict[str, dict[str, Any]] = {}
        for (ws, provider), credential in sorted(state.credentials.items()):
            creds.setdefault(ws, {})[provider] = dict(credential.fields)
        out["credentials"] = creds
    if state.zoom_apps:
        # The readable part of each instance's Zoom app; its secrets are never kept.
        out["zoom_apps"] = {
            key: {"client_id": app.client_id, "kind": app.kind}
            for key, app in sorted(state.zoom_apps.items())
        }
    return out


def state_from_compact(data: dict[str, Any]) -> State:
    """Inverse of ``compact_state`` (ids and etags are not kept)."""
    pending = set(data.get("pending", []))
    users = [
        User(email, role, status="invited" if email in pending else ACTIVE)
        for email, role in data.get("users", {}).items()
    ]
    workspaces = [Workspace(name) for name in data.get("workspaces", [])]
    memberships = [
        Membership(ws, email) for ws, emails in data.get("memberships", {}).items() for email in emails
    ]
    webhooks = [
        Webhook(ws, url, tuple(h.get("events", [])), bool(h.get("enabled", True)))
        for ws, by_url in data.get("webhooks", {}).items()
        for url, h in by_url.items()
    ]
    credentials = [
        Credential(ws, provider, fields=tuple(sorted(fields.items())))
        for ws, by_provider in data.get("credentials", {}).items()
        for provider, fields in by_provider.items()
    ]
    api_keys = [
        ApiKey(ws, name, owner, id=f"{name}#{i}")
        for ws, by_name in data.get("api_keys", {}).items()
        for name, owners in by_name.items()
        for i, owner in enumerate(owners)
    ]
    zoom_apps = [
        ZoomApp(key.split("/")[0], str(app.get("client_id", "")), str(app.get("kind", "account_level")))
        for key, app in data.get("zoom_apps", {}).items()
        if "/" not in key  # an instance's extra app was drift, not an apply's result
    ]
    return State.build(users, workspaces, memberships, webhooks, credentials, api_keys, zoom_apps)


@frozen
class Declared:
    """What the applied config declared that the API cannot tell back, for ``export``.

    ``key_rotation_s`` is by (workspace instance, key name). Where a key's
    secret went (``sink``) is not here: the server records it (``delivered_to``).
    """

    service_accounts: frozenset[str] = frozenset()
    key_rotation_s: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, desired: State) -> Declared:
        """What ``desired`` (a config's state) declares beyond what the API stores."""
        keys = list(desired.api_keys.values())
        return cls(
            service_accounts=frozenset(u.email for u in desired.users.values() if u.service_account),
            key_rotation_s={(k.workspace, k.name): k.rotate_every_s for k in keys if k.rotate_every_s},
        )

    def to_dict(self) -> dict[str, Any]:
        keys: dict[str, dict[str, dict[str, Any]]] = {}
        for (ws, name), seconds in sorted(self.key_rotation_s.items()):
            keys.setdefault(ws, {}).setdefault(name, {})["rotate_every_s"] = seconds
        return {"service_accounts": sorted(self.service_accounts), "api_keys": keys}

    @classmethod
    def from_dict(cls, data: Any) -> Declared | None:
        """The inverse of ``to_dict``; None when ``data`` does not have its shape."""
        if not isinstance(data, dict):
            return None
        accounts, keys = data.get("service_accounts", []), data.get("api_keys", {})
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            return None
        if not isinstance(keys, dict) or not all(isinstance(v, dict) for v in keys.values()):
            return None
        rotation: dict[tuple[str, str], int] = {}
        for ws, by_name in keys.items():
            for name, entry in by_name.items():
                if not isinstance(entry, dict):
                    return None
                seconds = entry.get("rotate_every_s")
                if seconds is None:
                    continue
                if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
                    return None
                rotation[(ws, name)] = seconds
        return cls(frozenset(accounts), rotation)


# How an applied key creation names the key it made ("key <prefix> made, ..."), see
# provisioner.resources.api_key: the only place a new key's prefix is known.
_MADE_KEY = re.compile(r"\bkey (\S+) made\b")


def _object_subject(obj: object) -> dict[str, str]:
    """The identifying fields of one side of a change, by the model type it is."""
    if isinstance(obj, User):
        return {"user": obj.email}
    if isinstance(obj, Workspace):
        return {"workspace": obj.name}
    if isinstance(obj, Membership):
        return {"workspace": obj.workspace, "user": obj.user}
    if isinstance(obj, Webhook):
        return {"workspace": obj.workspace, "target": obj.url}
    if isinstance(obj, Credential):
        return {"workspace": obj.workspace, "target": obj.provider}
    if isinstance(obj, ApiKey):
        return {"workspace": obj.workspace, "target": obj.name, "user": obj.owner}
    return {}


def subject(change: Change, message: str | None = None) -> dict[str, str]:
    """What one change was about, in named fields (no secret, no digest).

    ``user`` and ``workspace`` (the instance) where there are such; ``target``
    for a webhook's URL, a credential's provider, an API key's name; a user's
    ``role_before``/``role_after``; an API key's ``prefix_before`` (the key
    rotated or disabled) and ``prefix_after`` (the key made, from the
    applied change's message).
    """
    out = {**_object_subject(change.before), **_object_subject(change.after)}
    if isinstance(change.before, User):
        out["role_before"] = change.before.role
    if isinstance(change.after, User):
        out["role_after"] = change.after.role
    if isinstance(change.before, ApiKey) and change.before.prefix:
        out["prefix_before"] = change.before.prefix
    if isinstance(change.after, ApiKey) and message:
        made = _MADE_KEY.search(message)
        if made is not None and made.group(1) != "None":
            out["prefix_after"] = made.group(1)
    return out


def _result(r: ChangeResult, redact: Callable[[str], str]) -> dict[str, Any]:
    out: dict[str, Any] = {"action": r.change.action.value, "type": r.change.type.value, "key": r.change.key}
    if r.message:
        out["message"] = redact(r.message)
    out["subject"] = subject(r.change, r.message)
    return out


def _unchanged(text: str) -> str:
    return text


# Bounds of what CI says about a run's approval: untrusted text, kept short.
PULL_REQUEST_LIMIT = 300
NAME_LIMIT = 100
APPROVERS_LIMIT = 20


@frozen
class Approval:
    """Who approved a run, as far as CI tells: the pull request, its approvers, the merge actor.

    The values come from CI (options or environment) and are untrusted: the
    CLI bounds them (``PULL_REQUEST_LIMIT``, ``NAME_LIMIT``,
    ``APPROVERS_LIMIT``) and every renderer escapes them.
    """

    pull_request: str | None = None
    approvers: tuple[str, ...] = ()
    merged_by: str | None = None

    def __bool__(self) -> bool:
        return bool(self.pull_request or self.approvers or self.merged_by)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pull_request": self.pull_request,
            "approvers": list(self.approvers),
            "merged_by": self.merged_by,
        }


@frozen
class Pin:
    """What the applied plan was checked against (see ``provisioner.plan.digest``).

    ``expected_digest``/``expected_from`` are ``None`` when apply was given no
    expectation; ``override_reason`` is set only when the plan differed from
    the expectation and ``--override-expect`` applied it anyway.
    """

    applied_digest: str
    expected_digest: str | None = None
    expected_from: str | None = None
    override_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied_digest": self.applied_digest,
            "expected_digest": self.expected_digest,
            "expected_from": self.expected_from,
            "override_reason": self.override_reason,
            "overridden": self.override_reason is not None,
        }


@frozen
class AuditRecord:
    """What one apply of one organization did."""

    time: datetime
    tool_version: str
    organization: str
    config_digest: str
    state_fingerprint: str
    report: ApplyReport
    left_behind: State
    commit: str | None
    pin: Pin | None = None
    approval: Approval = Approval()
    declared: Declared | None = None

    def to_json(self, redact: Callable[[str], str] = _unchanged) -> str:
        """The record as one JSON line; ``redact`` is applied to every message (see the module doc)."""
        record = {
            "format_version": AUDIT_FORMAT_VERSION,
            "time": self.time.isoformat(),
            "tool_version": self.tool_version,
            "organization": self.organization,
            "config_digest": self.config_digest,
            "state_fingerprint": self.state_fingerprint,
            "git_commit": self.commit,
            "result": "success" if self.report.ok else "incomplete",
            "applied": [_result(r, redact) for r in self.report.applied],
            "failed": [_result(r, redact) for r in self.report.failed],
            "skipped": [_result(r, redact) for r in self.report.skipped],
            "left_behind": compact_state(self.left_behind),
            **(self.pin.to_dict() if self.pin is not None else {}),
            **self.approval.to_dict(),
            **({"declared": self.declared.to_dict()} if self.declared is not None else {}),
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":"))


def append_record(
    record: AuditRecord, target: str, *, stdout: TextIO, redact: Callable[[str], str] = _unchanged
) -> None:
    """Append the record as one line to ``target``; ``-`` means stdout. Messages pass through ``redact``."""
    line = record.to_json(redact) + "\n"
    if target == "-":
        stdout.write(line)
        stdout.flush()
        return
    try:
        # O_APPEND makes each record one write at the end, even with two applies.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError as error:
        raise AuditLogError(f"cannot write the audit log {target}: {error.strerror}") from None


def last_applied_state(path: str | os.PathLike[str], organization: str) -> State | None:
    """The state left behind by the latest apply of ``organization`` in the log, if any.

    A line that is not a JSON object, or a record of this organization whose
    ``left_behind`` is malformed, is an ``AuditLogError`` naming file and line:
    drift must not guess from a log it cannot read.
    """
    found = _latest_record(Path(path), organization)
    if found is None:
        return None
    number, record = found
    left_behind = record["left_behind"]
    if not _is_compact_state(left_behind):
        raise AuditLogError(
            f"{path}:{number}: the record's left_behind is not a state as `provisioner apply "
            "--audit-log` writes it; remove or repair that line"
        )
    return state_from_compact(left_behind)


def last_declared(path: str | os.PathLike[str], organization: str) -> Declared | None:
    """What the config of the latest apply of ``organization`` declared beyond the API, if any.

    None when the log records no apply of it; an empty ``Declared`` when the
    latest record predates ``declared``. A malformed one is an ``AuditLogError``.
    """
    found = _latest_record(Path(path), organization)
    if found is None:
        return None
    number, record = found
    declared = Declared.from_dict(record.get("declared", {}))
    if declared is None:
        raise AuditLogError(
            f"{path}:{number}: the record's declared is not what `provisioner apply "
            "--audit-log` writes; remove or repair that line"
        )
    return declared


def _latest_record(p: Path, organization: str) -> tuple[int, dict[str, Any]] | None:
    """The line number and record of the latest apply of ``organization``; None without one.

    A line that is not a JSON object is an ``AuditLogError`` naming file and line.
    """
    if not p.exists():
        return None
    found: tuple[int, dict[str, Any]] | None = None
    try:
        lines: Iterable[str] = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AuditLogError(f"cannot read the audit log {p}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            record = None
        if not isinstance(record, dict):
            raise AuditLogError(
                f"{p}:{number}: not a JSON audit record; the audit log must hold one JSON "
                "object per line as written by `provisioner apply --audit-log`"
            ) from None
        if record.get("organization") == organization and "left_behind" in record:
            found = (number, record)
    return found


def _is_compact_state(data: Any) -> bool:
    """Whether ``data`` has the shape ``compact_state`` writes (every name a string)."""

    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    if not isinstance(data, dict):
        return False
    users, members = data.get("users", {}), data.get("memberships", {})
    hooks, creds = data.get("webhooks", {}), data.get("credentials", {})
    keys = data.get("api_keys", {})

    def nested(value: Any, leaf: Any) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str)
            and isinstance(v, dict)
            and all(isinstance(n, str) and leaf(x) for n, x in v.items())
            for k, v in value.items()
        )

    return (
        nested(hooks, lambda h: isinstance(h, dict) and strings(h.get("events", [])))
        and nested(creds, lambda f: isinstance(f, dict) and all(isinstance(x, str) for x in f.values()))
        and nested(keys, strings)
        and isinstance(users, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in users.items())
        and strings(data.get("pending", []))
        and strings(data.get("workspaces", []))
        and isinstance(members, dict)
        and all(isinstance(k, str) and strings(v) for k, v in members.items())
    )
