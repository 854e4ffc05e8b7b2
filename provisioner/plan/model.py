"""What a plan is: ordered, typed changes with ``before`` and ``after`` values.

The vocabulary is Terraform's: an action is create, update or delete; a change
holds ``before`` and ``after``. The diff (``provisioner.plan.diff``) makes a
``Plan``; guards check it; renderers show it; the applier only ever receives a
``Plan``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING

from provisioner.apiurl import endpoint_note
from provisioner.model import ApiKey, Credential, Membership, User, Webhook, Workspace
from provisioner.resources.base import Phase, ResourceType

if TYPE_CHECKING:
    from provisioner.resources.registry import Registry

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
]


def _registry() -> Registry:
    # The type modules build Changes, so they import this module; the registry
    # that lists them is looked up when a change first asks, not at import.
    from provisioner.resources.registry import REGISTRY

    return REGISTRY


def format_expiry(expires: datetime) -> str:
    """The last day of a grant as the config wrote it, else the exact moment.

    A config date such as ``2026-12-31`` means "through that day", so the
    loader makes it expire at 00:00 UTC the next day; show it back as
    ``2026-12-31``. Other moments read ``2026-12-31 14:30 UTC``.
    """
    moment = expires.astimezone(UTC)
    if moment.time() == time(0, 0):
        return (moment.date() - timedelta(days=1)).isoformat()
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class Action(str, Enum):
    """What a change does to its resource (Terraform's vocabulary)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


Resource = User | Workspace | Membership | Webhook | Credential | ApiKey


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one resource.

    * ``key`` is the resource's identity as text: an email, a workspace name,
      or ``"<workspace>/<email>"`` for a membership.
    * ``before`` is the current object (with its server id), ``None`` on create.
    * ``after`` is the desired object, ``None`` on delete.
    * ``cascade`` marks a membership removal that is a consequence of removing
      its user: the server does it, so it costs no API call.
    """

    action: Action
    type: ResourceType
    key: str
    before: Resource | None
    after: Resource | None
    cascade: bool = False

    @property
    def phase(self) -> Phase:
        """The apply phase of this change (see ``Phase``), as its type's module decides."""
        return _registry()[self.type].phase(self)

    @property
    def reason(self) -> str | None:
        """The grant's reason, for a change whose ``after`` has one."""
        return self.after.reason if isinstance(self.after, Membership) else None

    @property
    def expires(self) -> datetime | None:
        """The grant's expiry, for a change whose ``after`` has one."""
        return self.after.expires if isinstance(self.after, Membership) else None


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """Something a plan does not change but a reviewer should know, as data.

    ``code`` says what (e.g. ``undeclared-workspace``), ``type`` and ``key``
    which object it is about (``key`` is ``""`` for the organization), and
    ``params`` the numbers and values the sentence needs. The sentence itself
    comes from one place, ``describe_warning`` (``text``), so JSON consumers
    can match on the code and renderers escape one string.
    """

    code: str
    type: ResourceType | None  # None only for a ``TEXT`` warning
    key: str = ""
    params: Mapping[str, str | int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def text(self) -> str:
        """The warning as one English sentence (untrusted values included: escape it)."""
        return describe_warning(self)

    def to_dict(self) -> dict[str, object]:
        """The warning's plain form (the plan document's ``warning_details``)."""
        kind = None if self.type is None else self.type.value
        return {"code": self.code, "type": kind, "key": self.key, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> PlanWarning:
        """``to_dict``'s inverse."""
        params = d.get("params") or {}
        assert isinstance(params, Mapping)
        kind = d.get("type")
        return cls(
            code=str(d["code"]),
            type=None if kind is None else ResourceType(str(kind)),
            key=str(d.get("key", "")),
            params=MappingProxyType(dict(params)),
        )


# A warning known only by its sentence: read from a plan file written before
# warnings had codes (``params["text"]``).
TEXT = "text"


def describe_warning(warning: PlanWarning) -> str:
    """The sentence of a warning, from the module of the type it is about."""
    if warning.type is None or warning.code == TEXT:
        return str(warning.params.get("text", warning.code))
    return _registry()[warning.type].warning_texts[warning.code](warning)


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts of a plan's changes by action."""

    create: int = 0
    update: int = 0
    delete: int = 0

    @property
    def total(self) -> int:
        return self.create + self.update + self.delete


@dataclass(frozen=True)
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
