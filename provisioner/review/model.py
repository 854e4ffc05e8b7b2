"""What an access review is: the organization as it is now, with its history, as data.

``provisioner.review.build.build_review`` makes a ``Review`` from the config,
the current state, the identity and the audit log's records; one renderer per
format (HTML, CSV, JSON, markdown) turns it into output. The renderers make
sentences; nothing here does.

Decisions worth knowing:

* A ``Grant`` is one user's access to one workspace instance *on the server*
  now. What the config says about it (reason, expiry, declared or not) and
  what the audit log says (which apply granted it) are attached to it.
* ``Origin`` says how the grant relates to the config: declared, out of band
  (on the server, not in the config), expired (declared, past its expiry, still
  on the server), or ignored (``policy.ignore_*`` puts it outside the config's
  reach).
* ``Provenance`` says what the audit log knows: granted by a recorded apply
  (``since`` is that run), there before the log starts, not granted by any
  recorded apply, or no audit log was given.
* ``History`` says what the audit log covers: not given, given but missing
  (a CI cache that was evicted), holding no apply of the organization, or
  starting at its first record. The report states the period it actually
  covers (``Summary.covered_from``), never a silent gap.
* A ``Change`` names its subject in fields (user, instance, target, a role's
  or a key's before and after) and carries its run's approval, so every
  format shows the same facts without parsing keys.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from provisioner.frozen import frozen


class Origin(str, Enum):
    """How a grant on the server relates to the config."""

    DECLARED = "declared"
    OUT_OF_BAND = "out-of-band"
    EXPIRED = "expired"
    IGNORED = "ignored"


class Provenance(str, Enum):
    """What the audit log says about when a grant (or an admin role) came to be."""

    GRANTED = "granted"  # a recorded apply made it; ``since`` is that run
    BEFORE_LOG = "before-log"  # present before the first recorded apply
    NOT_BY_APPLY = "not-by-apply"  # appeared outside every recorded apply
    NO_LOG = "no-log"  # no audit log was given


class History(str, Enum):
    """What the audit log given to the review holds."""

    NOT_GIVEN = "not-given"  # no --audit-log
    MISSING = "missing"  # the file does not exist (e.g. an evicted CI cache)
    EMPTY = "empty"  # the file holds no apply of this organization
    RECORDED = "recorded"  # history starts at the first record of this organization


@frozen(slots=True)
class Run:
    """One apply, as the audit log records it: when, from which commit, which log line, who approved."""

    time: datetime
    commit: str | None
    line: int
    plan_digest: str | None = None
    result: str = "success"
    pull_request: str | None = None
    approvers: tuple[str, ...] = ()
    merged_by: str | None = None


@frozen(slots=True)
class Summary:
    """Which organization, read when, from which config."""

    organization: str
    region: str
    endpoint: str
    read_at: datetime
    config_digest: str
    config_commit: str | None
    config_sources: tuple[str, ...]
    audit_log: str | None
    period_start: datetime
    users: int
    workspaces: int
    grants: int
    production_grants: int
    out_of_band: int
    history: History = History.NOT_GIVEN
    history_start: datetime | None = None  # the first recorded apply of the organization

    @property
    def covered_from(self) -> datetime | None:
        """From when the listed changes are complete: the later of the period's start and the history's."""
        if self.history is not History.RECORDED or self.history_start is None:
            return None
        return max(self.period_start, self.history_start)


@frozen(slots=True)
class Admin:
    """A user with the admin role on the server."""

    email: str
    status: str  # active or invited
    declared: bool  # the config declares this user as an admin
    provenance: Provenance
    since: Run | None = None


@frozen(slots=True)
class Grant:
    """One user's access to one workspace instance on the server now."""

    workspace: str
    user: str
    environment: str | None
    production: bool
    role: str
    status: str
    origin: Origin
    provenance: Provenance
    since: Run | None = None
    reason: str | None = None
    expires: datetime | None = None


@frozen(slots=True)
class Instance:
    """A workspace instance, a column of the matrix."""

    name: str
    environment: str | None
    production: bool


@frozen(slots=True)
class Change:
    """One change applied in the review period, from the audit log.

    ``workspace`` is the instance, ``user`` the user it concerns (a key's
    owner), ``target`` what else names it: a webhook's URL, a credential's
    provider, an API key's name. ``role_before``/``role_after`` for a role
    change; ``prefix_before`` (the key rotated or disabled) and
    ``prefix_after`` (the key made) for an API key.
    """

    run: Run
    action: str  # create, update or delete, as in a plan
    type: str  # a resource type: user, workspace, membership, webhook, credential, api_key
    key: str
    workspace: str | None = None
    user: str | None = None
    target: str | None = None
    role_before: str | None = None
    role_after: str | None = None
    prefix_before: str | None = None
    prefix_after: str | None = None


@frozen(slots=True)
class Key:
    """A live API key on the server: whose, where, and when it was last used."""

    owner: str
    workspace: str
    name: str
    prefix: str
    production: bool
    created_at: datetime | None
    last_used_at: datetime | None
    declared: bool  # the config names a key of this name in this workspace
    service_account: bool  # the owner is declared with service_account: true


@frozen(slots=True)
class Integration:
    """A platform integration on Recall.ai's v2 API, and whether it works.

    A Zoom OAuth app (``kind`` ``zoom_oauth_app``; ``name`` its client id;
    ``status`` ``validated`` or ``never validated``, from the app's
    ``webhook_last_validation``, which ``checked_at`` holds) or a Google login
    of a login group (``google_login``; ``name`` ``group / email``; ``status``
    ``active`` or ``inactive``). ``attention``: an app whose webhook Zoom never
    validated gets no meeting events.
    """

    kind: str
    workspace: str
    production: bool
    name: str
    status: str
    checked_at: str | None
    declared: bool  # the config declares it in this instance
    attention: bool


@frozen
class Review:
    """Everything one access review shows, for one organization.

    ``instances`` are in matrix order: production first, then by environment
    and name. ``grants`` are in the same order, then by user. ``users`` are the
    matrix rows, by email.
    """

    summary: Summary
    admins: tuple[Admin, ...]
    users: tuple[str, ...]
    instances: tuple[Instance, ...]
    grants: tuple[Grant, ...]
    expiring: tuple[Grant, ...]  # declared grants that run out within the warning window
    past_expiry: tuple[Grant, ...]  # grants past their expiry and still on the server
    changes: tuple[Change, ...]
    expiry_window_days: int = 30
    api_keys: tuple[Key, ...] = ()  # live keys by owner, production first
    integrations: tuple[Integration, ...] = ()  # Zoom apps and Google logins, production first

    @property
    def production_grants(self) -> tuple[Grant, ...]:
        """The grants on production instances, in report order."""
        return tuple(g for g in self.grants if g.production)
