"""Drift: does the organization match the config, and if not, whose doing is it?

With the audit log of earlier applies, the state the last successful apply
left behind (``L``) splits the difference between the server (``current``)
and the config (``desired``) in two:

* out-of-band changes: ``diff(current, L)``, what changed on the server since;
* unapplied config: ``diff(L, desired)``, what the config asks that no apply did.

Without the log every difference is drift. Pure, like the diff it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from provisioner.model import Config, State
from provisioner.plan.diff import diff
from provisioner.plan.model import Plan


@dataclass(frozen=True)
class DriftReport:
    """The two halves of a drift check. ``unapplied`` is None without an audit log."""

    out_of_band: Plan
    unapplied: Plan | None

    @property
    def drifted(self) -> bool:
        return not self.out_of_band.empty or (self.unapplied is not None and not self.unapplied.empty)


def detect_drift(
    current: State, config: Config, *, last_applied: State | None, now: datetime, organization: str
) -> DriftReport:
    """Split the difference between ``current`` and the config (see the module doc)."""
    if last_applied is None:
        everything = diff(current, config.desired, config.policy, now=now,
                          organization=organization, config_digest=config.digest)
        return DriftReport(out_of_band=everything, unapplied=None)
    out_of_band = diff(current, last_applied, config.policy, now=now,
                       organization=organization, config_digest=config.digest)
    unapplied = diff(last_applied, config.desired, config.policy, now=now,
                     organization=organization, config_digest=config.digest)
    return DriftReport(out_of_band=out_of_band, unapplied=unapplied)
