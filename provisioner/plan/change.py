"""The vocabulary at the bottom: what a change is, when it runs, what became of it.

``ResourceType``, ``Phase``, ``Action``, ``Change``, ``PlanWarning`` and
``ChangeResult`` are plain data. Every resource type module builds them, and
the plan, the executor and the renderers consume them, so this module imports
no resource type and nothing that imports one (octoDNS keeps its
``Create``/``Update``/``Delete`` in ``record/change.py`` the same way).

Decisions worth knowing:

* What depends on a type's own rules (a change's phase, a warning's sentence)
  is asked of the registry by the caller (``provisioner.plan.model.phase_of``,
  ``describe_warning``), never looked up from here: that lookup was the import
  circle between ``plan/model.py`` and ``resources/``.
* ``ResourceType`` and ``Phase`` are closed enums rather than strings in each
  module: plan files are validated against the type names, and the apply order
  is one decision across all types, made in one visible place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import UTC, datetime, time, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Final, Literal

from provisioner.frozen import frozen
from provisioner.model import (
    ApiKey,
    Credential,
    GoogleLoginGroup,
    Membership,
    User,
    Webhook,
    Workspace,
    ZoomApp,
)

__all__ = [
    "APPLIED",
    "FAILED",
    "SKIPPED",
    "TEXT",
    "Action",
    "Change",
    "ChangeResult",
    "Phase",
    "PlanWarning",
    "Resource",
    "ResourceType",
    "Status",
    "format_expiry",
]


class ResourceType(str, Enum):
    """The registered resource types, by the name plans and plan files use."""

    USER = "user"
    WORKSPACE = "workspace"
    MEMBERSHIP = "membership"
    WEBHOOK = "webhook"
    CREDENTIAL = "credential"
    API_KEY = "api_key"
    ZOOM_OAUTH_APP = "zoom_oauth_app"
    GOOGLE_LOGIN_GROUP = "google_login_group"


class Phase(int, Enum):
    """Apply order. Lower phases run first; changes within a phase run concurrently.

    Promotions run before demotions so that ``min_admins`` holds at every
    moment; grants before revocations so nobody loses access they keep; a
    new workspace is configured (webhooks, credentials) before anyone is
    granted access to it; API keys are made once their owners have access,
    and old ones disabled before anyone's access is revoked.
    """

    INVITE = 1
    PROMOTE = 2
    CREATE_WORKSPACE = 3
    CONFIGURE = 4
    GRANT = 5
    KEYS = 6
    REVOKE = 7
    DEMOTE = 8
    REMOVE_USER = 9


class Action(str, Enum):
    """What a change does to its resource (Terraform's vocabulary)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


Resource = User | Workspace | Membership | Webhook | Credential | ApiKey | ZoomApp | GoogleLoginGroup


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


@frozen(slots=True)
class Change:
    """One change to one resource.

    * ``key`` is the resource's identity as text: an email, a workspace name,
      or ``"<workspace>/<email>"`` for a membership.
    * ``before`` is the current object (with its server id), ``None`` on create.
    * ``after`` is the desired object, ``None`` on delete.
    * ``cascade`` marks a membership removal that is a consequence of removing
      its user: the server does it, so it costs no API call.

    Its apply phase is its type's decision: ``provisioner.plan.model.phase_of``.
    """

    action: Action
    type: ResourceType
    key: str
    before: Resource | None
    after: Resource | None
    cascade: bool = False

    @property
    def reason(self) -> str | None:
        """The grant's reason, for a change whose ``after`` has one."""
        return self.after.reason if isinstance(self.after, Membership) else None

    @property
    def expires(self) -> datetime | None:
        """The grant's expiry, for a change whose ``after`` has one."""
        return self.after.expires if isinstance(self.after, Membership) else None


# A warning known only by its sentence: read from a plan file written before
# warnings had codes (``params["text"]``).
TEXT = "text"


@frozen(slots=True)
class PlanWarning:
    """Something a plan does not change but a reviewer should know, as data.

    ``code`` says what (e.g. ``undeclared-workspace``), ``type`` and ``key``
    which object it is about (``key`` is ``""`` for the organization), and
    ``params`` the numbers and values the sentence needs. The sentence itself
    comes from one place, ``provisioner.plan.model.describe_warning``, so JSON
    consumers can match on the code and renderers escape one string.
    """

    code: str
    type: ResourceType | None  # None only for a ``TEXT`` warning
    key: str = ""
    params: Mapping[str, str | int] = field(default_factory=lambda: MappingProxyType({}))

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


APPLIED: Final = "applied"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
Status = Literal["applied", "failed", "skipped"]


@frozen(slots=True)
class ChangeResult:
    """The outcome of one change. ``message`` says why it failed or was skipped
    (or a note on an applied one, such as "already existed")."""

    change: Change
    status: Status
    message: str | None = None
