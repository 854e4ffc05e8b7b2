"""Drift: does the organization match the config, and if not, whose doing is it?

The plan (``diff(current, desired)``) decides *what* differs; drift only says
*why*. Each change of that plan that is not a cascade becomes one
``DriftItem``, and the state the last logged apply left behind (``L``, from the
audit log) tells which side moved away from it:

* the server's object differs from ``L``: an **out-of-band** change (someone
  changed the organization outside the tool since the last apply);
* the server's object is as ``L`` left it: **unapplied** config (the config
  asks something no logged apply did).

Without an audit log nobody can tell, and every item's origin is ``UNKNOWN``.

Decisions worth knowing:

* Drift never reports what the plan would not change. When ``plan`` says "No
  changes", drift is clean, even if ``L`` is stale (the last apply logged
  elsewhere, ``--audit-log -``, or ``apply`` without a log). A stale ``L``
  can only make an item's origin wrong, never invent one.
* An object is reported once: its origin is one of the three, never two.
* An object changed on *both* sides since ``L`` (say promoted on the server
  and removed from the config) counts as out-of-band: the server moved away
  from the last apply, which is what a drift check exists to catch.
* Cascaded membership removals are not items: they travel with their user's
  removal. Each user item carries the user's role and the workspaces the user
  reaches on the server (or, for a user missing on the server, the workspaces
  the config grants), production marked.

Pure: no I/O, no clock. Rendering lives in ``provisioner.render.drift``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from enum import Enum

from provisioner.frozen import frozen
from provisioner.model import (
    ApiKey,
    Config,
    Credential,
    Membership,
    State,
    Webhook,
    ZoomApp,
    is_production_environment,  # one definition of "production"
)
from provisioner.plan.diff import diff, filter_ignored
from provisioner.plan.model import Action, Change, Plan, ResourceType, describe_warning
from provisioner.resources.credential import changed_values, credential_key
from provisioner.secrets.refs import SecretValues


class Origin(str, Enum):
    """Which side moved away from the last logged apply."""

    OUT_OF_BAND = "out-of-band"
    UNAPPLIED = "unapplied"
    UNKNOWN = "unknown"  # no audit log: every difference is drift


@frozen(slots=True)
class Reach:
    """One workspace instance a user reaches (or would reach)."""

    workspace: str
    production: bool


@frozen(slots=True)
class DriftItem:
    """One difference: the plan's change that would remove it, and where it came from.

    For user changes, ``server_role``, ``config_role`` and ``last_role`` are
    the user's role on the server, in the config and as the last logged apply
    left it (``None`` where absent), and ``reach`` the workspaces the user
    reaches on the server, or, when the user is not on the server, those the
    config grants (``reach_on_server`` says which). For a membership or a
    workspace, ``reach`` holds its one workspace.
    """

    change: Change
    origin: Origin
    reach: tuple[Reach, ...] = ()
    reach_on_server: bool = True
    server_role: str | None = None
    config_role: str | None = None
    last_role: str | None = None


@frozen
class DriftReport:
    """The items of a drift check, in the plan's order, and the plan they come from."""

    organization: str
    plan: Plan
    items: tuple[DriftItem, ...]
    with_audit_log: bool

    @property
    def drifted(self) -> bool:
        return bool(self.items)

    @property
    def out_of_band(self) -> tuple[DriftItem, ...]:
        """Items the server caused (or, without an audit log, every item)."""
        return tuple(i for i in self.items if i.origin is not Origin.UNAPPLIED)

    @property
    def unapplied(self) -> tuple[DriftItem, ...]:
        """Items the config asks for that no logged apply made."""
        return tuple(i for i in self.items if i.origin is Origin.UNAPPLIED)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(describe_warning(w) for w in self.plan.warnings)


def detect_drift(
    current: State,
    config: Config,
    *,
    last_applied: State | None,
    now: datetime,
    organization: str,
    secrets: SecretValues | None = None,
) -> DriftReport:
    """Split the plan from ``current`` to the config into drift items (see the module doc).

    ``last_applied`` is the state the last logged apply left behind, or
    ``None`` without an audit log. ``secrets``: the values of the config's
    secret references this job holds; a value that differs from the server's
    digest behind an unchanged reference is drift the plan cannot show.
    """
    # An integrations-only config manages no user: no admin count to keep (as in plan).
    policy = replace(config.policy, min_admins=0) if config.integrations_only else config.policy
    plan = diff(
        current,
        config.desired,
        policy,
        now=now,
        organization=organization,
        config_digest=config.digest,
        secrets=secrets,
    )
    cur = filter_ignored(current, config.policy)
    des = filter_ignored(config.desired, config.policy)
    last = filter_ignored(last_applied, config.policy) if last_applied is not None else None
    # A grant that ran out counts as absent, as in the diff.
    live = {k for k, m in des.memberships.items() if m.expires is None or m.expires > now}
    production = frozenset(
        name for name, ws in des.workspaces.items() if is_production_environment(ws.environment)
    )
    on_server = _workspaces_by_user(cur.memberships.keys(), production)
    in_config = _workspaces_by_user(live, production)

    items: list[DriftItem] = []
    for change in plan.changes:
        if change.cascade:
            continue  # shown with its user's removal (``DriftItem.reach``)
        origin = _origin(change, cur, last)
        if change.type is ResourceType.USER:
            server_user, config_user = cur.users.get(change.key), des.users.get(change.key)
            last_user = last.users.get(change.key) if last is not None else None
            there = server_user is not None
            items.append(
                DriftItem(
                    change,
                    origin,
                    reach=(on_server if there else in_config).get(change.key, ()),
                    reach_on_server=there,
                    server_role=server_user.role if server_user else None,
                    config_role=config_user.role if config_user else None,
                    last_role=last_user.role if last_user else None,
                )
            )
        else:
            workspace = _workspace_of(change)
            items.append(DriftItem(change, origin, reach=(Reach(workspace, workspace in production),)))
    for change in _changed_values(cur, des, plan, secrets or SecretValues()):
        workspace = _workspace_of(change)
        items.append(DriftItem(change, Origin.UNKNOWN, reach=(Reach(workspace, workspace in production),)))
    return DriftReport(organization, plan, tuple(items), with_audit_log=last is not None)


def _origin(change: Change, current: State, last: State | None) -> Origin:
    """Which side moved away from the last logged apply, as far as can be told."""
    if last is None or _secret_only(change):
        # A secret is never read back: whether the server's or the config's
        # value moved since the last apply cannot be told.
        return Origin.UNKNOWN
    if _value(current, change) == _value(last, change):
        return Origin.UNAPPLIED
    return Origin.OUT_OF_BAND


def _changed_values(current: State, desired: State, plan: Plan, secrets: SecretValues) -> list[Change]:
    """Credentials whose secret value differs from the server's, with nothing in the config saying so.

    A plan never writes these (it compares sources, not values), so an
    apply under ``--expect`` never sends such a value silently: drift
    reports it, and raising the reference's ``version`` sends it through review.
    """
    planned = {c.key for c in plan.changes if c.type is ResourceType.CREDENTIAL}
    out = []
    for key in sorted(desired.credentials.keys() & current.credentials.keys()):
        before, after = current.credentials[key], desired.credentials[key]
        names = changed_values(before, after, secrets)
        if names and credential_key(*key) not in planned:
            out.append(
                Change(
                    Action.UPDATE,
                    ResourceType.CREDENTIAL,
                    credential_key(*key),
                    before,
                    replace(after, write=names),
                )
            )
    return out


def _workspace_of(change: Change) -> str:
    if change.type is ResourceType.WORKSPACE:
        return change.key
    obj = change.before if change.before is not None else change.after
    assert isinstance(obj, (Membership, Webhook, Credential, ApiKey, ZoomApp))
    return obj.workspace


def _secret_only(change: Change) -> bool:
    """A credential or Zoom app change that only rewrites secrets (its readable fields agree)."""
    before, after = change.before, change.after
    if isinstance(before, ZoomApp) and isinstance(after, ZoomApp):
        return (before.client_id, before.kind) == (after.client_id, after.kind)
    return (
        isinstance(before, Credential)
        and isinstance(after, Credential)
        and bool(after.write)
        and before.fields == after.fields
    )


def _value(state: State, change: Change) -> object:
    """What ``state`` holds of the object ``change`` is about: a role, settings, or presence."""
    if change.type is ResourceType.USER:
        user = state.users.get(change.key)
        return user.role if user is not None else None
    if change.type is ResourceType.WORKSPACE:
        return change.key in state.workspaces
    obj = change.before if change.before is not None else change.after
    if isinstance(obj, Webhook):
        hook = state.webhooks.get(obj.key)
        return None if hook is None else (hook.events, hook.enabled)
    if isinstance(obj, Credential):
        credential = state.credentials.get(obj.key)
        return None if credential is None else credential.fields
    if isinstance(obj, ZoomApp):
        app = state.zoom_apps.get(obj.key)
        return None if app is None else (app.client_id, app.kind)
    if isinstance(obj, ApiKey):
        # Live keys of the name, by owner: what a rotation or a disable changes.
        return sorted(
            k.owner
            for k in state.api_keys.values()
            if (k.workspace, k.name) == (obj.workspace, obj.name) and not k.disabled
        )
    assert isinstance(obj, Membership)
    return (obj.workspace, obj.user.lower()) in state.memberships


def _workspaces_by_user(
    keys: Iterable[tuple[str, str]], production: frozenset[str]
) -> dict[str, tuple[Reach, ...]]:
    """Each user's workspaces, production first, then by name."""
    by_user: dict[str, list[str]] = defaultdict(list)
    for workspace, email in keys:
        by_user[email].append(workspace)
    return {
        email: tuple(
            Reach(ws, ws in production) for ws in sorted(names, key=lambda ws: (ws not in production, ws))
        )
        for email, names in by_user.items()
    }
