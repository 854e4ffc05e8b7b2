"""The audit trail: one JSON object per apply run, appended to a JSON-lines file.

A record holds when, which tool, which organization, the config digest and
state fingerprint, the changes applied, failed and skipped, the git commit
when run in a checkout, and the state the apply left behind (compact), so that
``drift`` can tell out-of-band changes from config that was never applied.
It also pins the run to a review: the digest of the plan that was applied,
the digest that was expected (``apply --expect``/``--expect-file``/``--plan``)
and where that expectation came from, and the reason when an emergency
``--override-expect`` applied a plan that differed from it.
It never holds the API key: nothing here receives it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from provisioner.apply.executor import ApplyReport, ChangeResult
from provisioner.errors import ProvisionerError
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


def _result(r: ChangeResult) -> dict[str, Any]:
    out: dict[str, Any] = {"action": r.change.action.value, "type": r.change.type.value, "key": r.change.key}
    if r.message:
        out["message"] = r.message
    return out


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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

    def to_json(self) -> str:
        record = {
            "format_version": AUDIT_FORMAT_VERSION,
            "time": self.time.isoformat(),
            "tool_version": self.tool_version,
            "organization": self.organization,
            "config_digest": self.config_digest,
            "state_fingerprint": self.state_fingerprint,
            "git_commit": self.commit,
            "result": "success" if self.report.ok else "incomplete",
            "applied": [_result(r) for r in self.report.applied],
            "failed": [_result(r) for r in self.report.failed],
            "skipped": [_result(r) for r in self.report.skipped],
            "left_behind": compact_state(self.left_behind),
            **(self.pin.to_dict() if self.pin is not None else {}),
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":"))


def append_record(record: AuditRecord, target: str, *, stdout: TextIO) -> None:
    """Append the record as one line to ``target``; ``-`` means stdout."""
    line = record.to_json() + "\n"
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
    p = Path(path)
    if not p.exists():
        return None
    found: tuple[int, Any] | None = None
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
            found = (number, record["left_behind"])
    if found is None:
        return None
    number, left_behind = found
    if not _is_compact_state(left_behind):
        raise AuditLogError(
            f"{p}:{number}: the record's left_behind is not a state as `provisioner apply "
            "--audit-log` writes it; remove or repair that line"
        )
    return state_from_compact(left_behind)


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
