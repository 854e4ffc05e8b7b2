"""What a plan is: ordered, typed changes with ``before`` and ``after`` values.

The vocabulary is Terraform's: an action is create, update or delete; a change
holds ``before`` and ``after``. The diff (``provisioner.plan.diff``) makes a
``Plan``; guards check it; renderers show it; the applier only ever receives a
``Plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import Enum

from provisioner.apiurl import endpoint_note
from provisioner.model import Membership, User, Workspace


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
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class ResourceType(str, Enum):
    USER = "user"
    WORKSPACE = "workspace"
    MEMBERSHIP = "membership"


Resource = User | Workspace | Membership


class Phase(int, Enum):
    """Apply order. Lower phases run first; changes within a phase run concurrently.

    Promotions run before demotions so that ``min_admins`` holds at every
    moment; grants before revocations so nobody loses access they keep.
    """

    INVITE = 1
    PROMOTE = 2
    CREATE_WORKSPACE = 3
    GRANT = 4
    REVOKE = 5
    DEMOTE = 6
    REMOVE_USER = 7


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
        """The apply phase of this change (see ``Phase``)."""
        if self.type is ResourceType.USER:
            if self.action is Action.CREATE:
                return Phase.INVITE
            if self.action is Action.DELETE:
                return Phase.REMOVE_USER
            assert isinstance(self.after, User)
            return Phase.PROMOTE if self.after.role == "admin" else Phase.DEMOTE
        if self.type is ResourceType.WORKSPACE:
            return Phase.CREATE_WORKSPACE
        return Phase.GRANT if self.action is Action.CREATE else Phase.REVOKE

    @property
    def reason(self) -> str | None:
        return getattr(self.after, "reason", None) if self.after is not None else None

    @property
    def expires(self):  # -> datetime | None
        return getattr(self.after, "expires", None) if self.after is not None else None


@dataclass(frozen=True, slots=True)
class Summary:
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
    warnings: tuple[str, ...] = ()
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
        return not self.changes
