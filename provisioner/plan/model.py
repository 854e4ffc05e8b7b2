"""What a plan is: ordered, typed changes with ``before`` and ``after`` values.

The vocabulary is Terraform's: an action is create, update or delete; a change
holds ``before`` and ``after``. The diff (``provisioner.plan.diff``) makes a
``Plan``; guards check it; renderers show it; the applier only ever receives a
``Plan``.

The vocabulary itself (``Change``, ``Action``, ``Phase``, ``PlanWarning``)
lives in ``provisioner.plan.change``, below the resource types; this module
sits above them and asks the registry what depends on a type's rules.
"""

from __future__ import annotations

from dataclasses import field

from provisioner.apiurl import endpoint_note
from provisioner.frozen import frozen
from provisioner.model import Membership
from provisioner.plan.change import (
    TEXT,
    Action,
    Change,
    Phase,
    PlanWarning,
    Resource,
    ResourceType,
    format_expiry,
)
from provisioner.resources.registry import REGISTRY

__all__ = [
    "Action",
    "Change",
    "Phase",
    "Plan",
    "PlanWarning",
    "Resource",
    "TEXT",
    "ResourceType",
    "Summary",
    "describe_warning",
    "format_expiry",
    "phase_of",
]


def phase_of(change: Change) -> Phase:
    """The apply phase of ``change`` (see ``Phase``), as its type's module decides."""
    return REGISTRY[change.type].phase(change)


def describe_warning(warning: PlanWarning) -> str:
    """The sentence of a warning, from the module of the type it is about.

    The result holds untrusted values: escape it for its destination.
    """
    if warning.type is None or warning.code == TEXT:
        return str(warning.params.get("text", warning.code))
    return REGISTRY[warning.type].warning_texts[warning.code](warning)


@frozen(slots=True)
class Summary:
    """Counts of a plan's changes by action."""

    create: int = 0
    update: int = 0
    delete: int = 0

    @property
    def total(self) -> int:
        return self.create + self.update + self.delete


@frozen
class Plan:
    """The ordered changes for one organization, and what they were made from.

    ``changes`` are sorted deterministically: by phase, then type, then key.
    ``state_fingerprint`` is the sha256 of the current state the plan was made
    from; ``config_digest`` the sha256 of the loaded config. ``organization``
    is the organization's name (from the API). ``endpoint`` is the base URL
    the plan was read from (never a secret) and ``region`` the organization's
    region, so that a plan read from elsewhere than the region says so.
    """

    organization: str
    changes: tuple[Change, ...]
    warnings: tuple[PlanWarning, ...] = ()
    state_fingerprint: str = ""
    config_digest: str = ""
    expiring_soon: tuple[Membership, ...] = field(default=())
    endpoint: str = ""
    region: str = ""
    # The declared instances that count as production: the config's, and every
    # one the reviewed base config (``plan --base``) had as production, so a
    # pull request cannot drop production call-outs by relabelling. In the digest.
    production: tuple[str, ...] = ()
    # What the pull request changes in ``policy`` against the base config:
    # (path, before, after), shown first and part of the digest. Guards use
    # the stricter of the two.
    policy_changes: tuple[tuple[str, str, str], ...] = ()

    @property
    def endpoint_note(self) -> str:
        """Why the endpoint deserves attention (not the region's), or ``""``."""
        return endpoint_note(self.endpoint, self.region)

    @property
    def summary(self) -> Summary:
        """Counts by action. Cascaded membership removals count as removals."""
        counts = {a: 0 for a in Action}
        for c in self.changes:
            counts[c.action] += 1
        return Summary(counts[Action.CREATE], counts[Action.UPDATE], counts[Action.DELETE])

    @property
    def empty(self) -> bool:
        """Whether the plan changes nothing."""
        return not self.changes
