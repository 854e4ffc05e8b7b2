"""What an apply did, change by change, and its one-paragraph summary."""

from __future__ import annotations

from provisioner.escape import terminal
from provisioner.frozen import frozen
from provisioner.plan.change import APPLIED, FAILED, SKIPPED, Change, ChangeResult, Status

__all__ = ["APPLIED", "FAILED", "SKIPPED", "ApplyReport", "ChangeResult", "Status", "describe"]


@frozen
class ApplyReport:
    """Every change of the plan, in plan order, sorted by outcome."""

    applied: tuple[ChangeResult, ...] = ()
    failed: tuple[ChangeResult, ...] = ()
    skipped: tuple[ChangeResult, ...] = ()
    # What stopped the run early (for example "SIGINT"), when something did.
    interrupted: str | None = None

    @property
    def ok(self) -> bool:
        """True when every change was applied."""
        return not self.failed and not self.skipped

    @classmethod
    def from_results(
        cls, results: list[ChangeResult] | tuple[ChangeResult, ...], *, interrupted: str | None = None
    ) -> ApplyReport:
        """Split results (already in plan order) by status."""
        return cls(
            applied=tuple(r for r in results if r.status == APPLIED),
            failed=tuple(r for r in results if r.status == FAILED),
            skipped=tuple(r for r in results if r.status == SKIPPED),
            interrupted=interrupted,
        )


def describe(change: Change) -> str:
    """A change in a few words, e.g. ``create membership app-production/a@x.io``."""
    cascade = " (with its user)" if change.cascade else ""
    return f"{change.action.value} {change.type.value} {terminal(change.key)}{cascade}"
