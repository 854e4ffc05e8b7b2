"""The words every review format uses for the same facts, so the formats agree.

These return plain, *unescaped* text; each renderer escapes it for its own
destination (``provisioner.escape``), as it does any other value.
"""

from __future__ import annotations

from datetime import UTC, datetime

from provisioner.plan.model import format_expiry
from provisioner.review.model import Change, Origin, Provenance, Run

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
    ("membership", "create"): "granted",
    ("membership", "delete"): "revoked",
    ("user", "create"): "invited",
    ("user", "update"): "role changed",
    ("user", "delete"): "removed",
    ("workspace", "create"): "workspace created",
}


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
    """What a change did, e.g. ``granted``."""
    return CHANGE_TEXT.get((change.type, change.action), f"{change.type} {change.action}")
