"""The audit log's applies, read for a review: who changed what, when, from which commit.

``provisioner apply --audit-log`` writes one JSON object per line (see
``provisioner.audit``). This module reads every line into an ``AuditEntry``;
``build_review`` then picks the entries of the organization under review.

Decisions worth knowing:

* A line that is not a JSON object, or an object without the fields a review
  needs in the types ``apply`` writes them, is an ``AuditLogError`` naming file
  and line: a review must not present a history it could not read.
* A change's subject (user, instance, URL or provider or key name, a role's
  before and after, a key's prefixes) is read from the record's ``subject``
  when it has one. Records written before it existed are read from the key:
  a membership's ``<workspace>/<email>`` (the split prefers the workspace names
  the record itself left behind, as a name from the server may hold ``/``),
  a setting's or key's ``<workspace> <rest>``.
* The approval (pull request, approvers, merge actor) is optional: CI may
  not provide it, and older records lack it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioner.audit import AuditLogError
from provisioner.frozen import frozen


@frozen(slots=True)
class AppliedChange:
    """One change a run applied: ``action``, ``type`` and ``key`` as the plan named them.

    ``subject`` holds the named fields ``provisioner.audit.subject`` wrote
    (empty for older records).
    """

    action: str
    type: str
    key: str
    subject: tuple[tuple[str, str], ...] = ()

    def field(self, name: str) -> str | None:
        """One subject field, or None."""
        return dict(self.subject).get(name)


@frozen
class AuditEntry:
    """One apply run of one organization, as its audit record says."""

    line: int
    time: datetime
    organization: str
    commit: str | None
    result: str
    plan_digest: str | None
    applied: tuple[AppliedChange, ...]
    # The memberships and admins the run left behind: what was on the server after it.
    memberships: frozenset[tuple[str, str]]
    workspaces: frozenset[str]
    roles: tuple[tuple[str, str], ...]
    pull_request: str | None = None
    approvers: tuple[str, ...] = ()
    merged_by: str | None = None


def read_audit_log(path: str | os.PathLike[str]) -> tuple[AuditEntry, ...]:
    """Every record of the audit log at ``path``, in file order. A missing file is an error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuditLogError(
            f"the audit log {p} does not exist; give the file that `provisioner apply --audit-log` writes"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise AuditLogError(f"cannot read the audit log {p}: {error}") from None
    entries: list[AuditEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = _entry(line, number)
        if entry is None:
            raise AuditLogError(
                f"{p}:{number}: not an audit record as `provisioner apply --audit-log` writes it; "
                "remove or repair that line"
            )
        entries.append(entry)
    return tuple(entries)


def _entry(line: str, number: int) -> AuditEntry | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    time = _time(record.get("time"))
    organization, commit = record.get("organization"), record.get("git_commit")
    left = record.get("left_behind", {})
    applied = record.get("applied", [])
    if (
        time is None
        or not isinstance(organization, str)
        or not (commit is None or isinstance(commit, str))
        or not isinstance(left, dict)
        or not isinstance(applied, list)
    ):
        return None
    members, workspaces, roles = _left_behind(left)
    if members is None or workspaces is None or roles is None:
        return None
    changes = _applied(applied)
    if changes is None:
        return None
    digest = record.get("applied_digest")
    result = record.get("result")
    pull_request, approvers, merged_by = _approval(record)
    return AuditEntry(
        line=number,
        time=time,
        organization=organization,
        commit=commit,
        result=result if isinstance(result, str) else "success",
        plan_digest=digest if isinstance(digest, str) else None,
        applied=changes,
        memberships=frozenset(members),
        workspaces=frozenset(workspaces),
        roles=roles,
        pull_request=pull_request,
        approvers=approvers,
        merged_by=merged_by,
    )


def _approval(record: dict[str, Any]) -> tuple[str | None, tuple[str, ...], str | None]:
    """The pull request, approvers and merge actor of a record; what is absent or malformed is dropped."""
    pull_request, approvers, merged_by = (
        record.get("pull_request"),
        record.get("approvers"),
        record.get("merged_by"),
    )
    names = tuple(a for a in approvers if isinstance(a, str)) if isinstance(approvers, list) else ()
    return (
        pull_request if isinstance(pull_request, str) else None,
        names,
        merged_by if isinstance(merged_by, str) else None,
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _left_behind(
    left: dict[str, Any],
) -> tuple[set[tuple[str, str]] | None, set[str] | None, tuple[tuple[str, str], ...] | None]:
    users, by_workspace, names = (
        left.get("users", {}),
        left.get("memberships", {}),
        left.get("workspaces", []),
    )
    if not (
        isinstance(users, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in users.items())
        and isinstance(by_workspace, dict)
        and isinstance(names, list)
        and all(isinstance(n, str) for n in names)
    ):
        return None, None, None
    members: set[tuple[str, str]] = set()
    for workspace, emails in by_workspace.items():
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            return None, None, None
        members.update((workspace, email) for email in emails)
    return members, set(names), tuple(sorted(users.items()))


def _applied(items: list[Any]) -> tuple[AppliedChange, ...] | None:
    changes: list[AppliedChange] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        action, kind, key = item.get("action"), item.get("type"), item.get("key")
        if not (isinstance(action, str) and isinstance(kind, str) and isinstance(key, str)):
            return None
        found = item.get("subject", {})
        subject = (
            tuple(sorted((k, v) for k, v in found.items() if isinstance(k, str) and isinstance(v, str)))
            if isinstance(found, dict)
            else ()
        )
        changes.append(AppliedChange(action, kind, key, subject))
    return tuple(changes)


def split_membership_key(key: str, workspaces: frozenset[str]) -> tuple[str, str]:
    """``<workspace>/<email>`` as ``(workspace, email)``.

    The split at a ``/`` whose left side is a known workspace wins; else the
    first ``/`` (config workspace names hold none).
    """
    positions = [i for i, char in enumerate(key) if char == "/"]
    for i in positions:
        if key[:i] in workspaces:
            return key[:i], key[i + 1 :]
    if positions:
        return key[: positions[0]], key[positions[0] + 1 :]
    return key, ""
