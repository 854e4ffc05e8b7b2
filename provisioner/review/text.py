"""The words every review format uses for the same facts, so the formats agree.

These return plain, *unescaped* text; each renderer escapes it for its own
destination (``provisioner.escape``), as it does any other value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from provisioner.plan.model import format_expiry
from provisioner.review.model import Change, History, Integration, Origin, Provenance, Run, Summary

SHORT_COMMIT = 12

ORIGIN_TEXT: dict[Origin, str] = {
    Origin.DECLARED: "declared",
    Origin.OUT_OF_BAND: "out of band: not in the config",
    Origin.EXPIRED: "past expiry, still on the server",
    Origin.IGNORED: "ignored by policy",
}

PROVENANCE_TEXT: dict[Provenance, str] = {
    Provenance.GRANTED: "granted",
    Provenance.BEFORE_LOG: "before the audit log",
    Provenance.NOT_BY_APPLY: "not granted by any recorded apply",
    Provenance.NO_LOG: "no audit log given",
}

# (type, action) -> what happened, in a reviewer's words.
CHANGE_TEXT: dict[tuple[str, str], str] = {
    ("membership", "create"): "access granted",
    ("membership", "delete"): "access revoked",
    ("user", "create"): "user invited",
    ("user", "update"): "role changed",
    ("user", "delete"): "user removed",
    ("workspace", "create"): "workspace created",
    ("workspace", "update"): "workspace changed",
    ("workspace", "delete"): "workspace deleted",
    ("webhook", "create"): "webhook added",
    ("webhook", "update"): "webhook changed",
    ("webhook", "delete"): "webhook removed",
    ("credential", "create"): "credential added",
    ("credential", "update"): "credential changed",
    ("credential", "delete"): "credential removed",
    ("api_key", "create"): "API key created",
    ("api_key", "update"): "API key rotated",
    ("api_key", "delete"): "API key disabled",
    ("zoom_oauth_app", "create"): "Zoom OAuth app added",
    ("zoom_oauth_app", "update"): "Zoom OAuth app changed",
    ("zoom_oauth_app", "delete"): "Zoom OAuth app removed",
    ("google_login_group", "create"): "Google login group added",
    ("google_login_group", "update"): "Google login group changed",
    ("google_login_group", "delete"): "Google login group removed",
}

ARROW = "->"

# The words for a section of the report that a reviewer signs off, in report order.
SIGN_OFF_SECTIONS: tuple[str, ...] = (
    "Admins",
    "Production access",
    "Access matrix",
    "API keys",
    "Expiring grants",
    "Changes in the period",
)
DECISIONS = "approved / changes needed"

# The review's platform integrations (``review.model.Integration.kind``), as people call them.
INTEGRATION_KINDS: dict[str, str] = {"zoom_oauth_app": "Zoom OAuth app", "google_login": "Google login"}
NO_INTEGRATIONS = "No Zoom OAuth apps or Google logins on Recall.ai's v2 API."


def integration_status(integration: Integration, value: Callable[[str], str] = str) -> str:
    """``webhook validated 2026-…``, ``webhook never validated: …``, or a login's status.

    ``value`` escapes the server's timestamp for where the text goes.
    """
    if integration.kind != "zoom_oauth_app":
        return integration.status
    if integration.checked_at:
        return f"webhook validated {value(integration.checked_at)}"
    return "webhook never validated: Zoom sends it no meeting events; set its webhook URL in the Zoom app"


def moment(value: datetime) -> str:
    """A moment as ``2026-01-31 14:30 UTC``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def expiry(value: datetime | None) -> str:
    """The last day of a grant as the config wrote it, or ``""``."""
    return format_expiry(value) if value is not None else ""


def commit(run: Run | None) -> str:
    """The run's commit, shortened; ``""`` without one."""
    return run.commit[:SHORT_COMMIT] if run is not None and run.commit else ""


def since(provenance: Provenance, run: Run | None) -> str:
    """Since when, e.g. ``2026-01-31 14:30 UTC`` or ``before the audit log``."""
    if provenance is Provenance.GRANTED and run is not None:
        return moment(run.time)
    return PROVENANCE_TEXT[provenance]


def run_name(run: Run) -> str:
    """Which apply, e.g. ``apply at 2026-01-31 14:30 UTC (audit log line 3)``."""
    return f"apply at {moment(run.time)} (audit log line {run.line})"


def change_text(change: Change) -> str:
    """What a change did, e.g. ``access granted``; never a raw type."""
    label = CHANGE_TEXT.get((change.type, change.action))
    if label is not None:
        return label
    return f"{change.type.replace('_', ' ')} {PAST.get(change.action, change.action)}"


PAST = {"create": "created", "update": "changed", "delete": "deleted"}


def change_detail(change: Change) -> str:
    """What else names the change: ``developer -> admin``, a URL, a provider, a key and its prefixes."""
    if change.role_before or change.role_after:
        return f"{change.role_before or '?'} {ARROW} {change.role_after or '?'}"
    if change.type == "api_key":
        return " ".join(part for part in (change.target, _prefixes(change)) if part)
    return change.target or ""


def _prefixes(change: Change) -> str:
    """A key change's prefixes: ``rk_old``, ``rk_new``, or ``rk_old -> rk_new`` for a rotation."""
    if change.prefix_before and change.prefix_after:
        return f"{change.prefix_before} {ARROW} {change.prefix_after}"
    return change.prefix_before or change.prefix_after or ""


def approval(run: Run) -> str:
    """Who approved the run, e.g. ``PR https://… approved by ana, ben; merged by ana``; ``""`` if unknown."""
    parts = []
    if run.pull_request:
        parts.append(f"PR {run.pull_request}")
    if run.approvers:
        parts.append("approved by " + ", ".join(run.approvers))
    if run.merged_by:
        parts.append(f"merged by {run.merged_by}")
    return "; ".join(parts)


def history(summary: Summary, value: Callable[[str], str] = str) -> str:
    """What the audit log covers, said plainly, e.g. ``History starts at 2026-01-31 14:30 UTC; ...``.

    ``value`` marks up the values in it (the log's path, the organization's name) for a
    destination that needs it, e.g. ``escape.markdown_code``; by default they are plain.
    """
    if summary.history is History.NOT_GIVEN:
        return "No audit log given: the history of grants and changes is not known."
    log = value(summary.audit_log or "")
    if summary.history is History.MISSING:
        return (
            f"The audit log {log} does not exist (a first run, or an evicted CI cache): "
            "no history is known, and no change of the period is listed."
        )
    if summary.history is History.EMPTY:
        return (
            f"The audit log {log} records no apply of {value(summary.organization)}: history starts "
            "after this review, and no change of the period is listed."
        )
    start = summary.history_start
    assert start is not None
    if start > summary.period_start:
        return (
            f"History starts at {moment(start)}, after the period's start ({moment(summary.period_start)}): "
            f"changes are known from {moment(start)} on only."
        )
    return f"History starts at {moment(start)}; the whole period is covered."


def gap(summary: Summary) -> bool:
    """Whether the audit log leaves part of the period unknown (missing, empty, or starting late)."""
    if summary.history in (History.MISSING, History.EMPTY):
        return True
    start = summary.covered_from
    return start is not None and start > summary.period_start


def covered(summary: Summary) -> str:
    """The period the listed changes actually cover, e.g. ``2026-01-01 00:00 UTC to 2026-03-31 …``."""
    start = summary.covered_from
    if start is None:
        return "no recorded history"
    return f"{moment(start)} to {moment(summary.read_at)}"
