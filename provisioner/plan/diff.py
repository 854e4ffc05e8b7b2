"""The diff: ``(current, desired) -> Plan``. Pure; no I/O, no clock.

Resources are keyed by identity (a user by lowercased email, a workspace by
name, a membership by ``(workspace, email)``) and creates and deletes come
from set differences, as in octoDNS's ``Zone.changes``.

Rules that are not plain set differences:

* Ignored users/workspaces (``policy.ignore_*`` globs) are removed from both
  sides before anything else, and so are the memberships that touch them.
* A user ``invited`` in ``current`` is pending, not absent: never invited again.
* Workspaces are only ever created. One that exists but is not declared is
  left alone with a warning, and its memberships are unmanaged (neither
  granted nor revoked) -- except when the user who holds them is removed: the
  server then deletes them too, so the plan shows them as cascaded deletes.
* A desired grant whose ``expires <= now`` counts as absent.
* An organization that already has fewer active admins than
  ``policy.min_admins`` gets a warning on every plan, whatever the plan does:
  the guard only refuses plans that make it worse, so nothing else says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import TypeVar

from provisioner.model import ACTIVE, ADMIN, Membership, Policy, State, User, Workspace
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.plan.model import Action, Change, Plan, ResourceType, format_expiry

_K = TypeVar("_K")
_V = TypeVar("_V")

# Within one phase, users before workspaces before memberships.
_TYPE_ORDER: Mapping[ResourceType, int] = {
    ResourceType.USER: 0,
    ResourceType.WORKSPACE: 1,
    ResourceType.MEMBERSHIP: 2,
}


def membership_key(workspace: str, email: str) -> str:
    """The text key of a membership change: ``"<workspace>/<email>"``."""
    return f"{workspace}/{email}"


def _matches(value: str, globs: Iterable[str]) -> bool:
    # fnmatchcase: os-independent; emails are compared lowercased on both sides.
    return any(fnmatchcase(value, glob) for glob in globs)


def is_ignored_user(email: str, policy: Policy) -> bool:
    """Whether ``policy.ignore_users`` matches this email (case-insensitively)."""
    return _matches(email.lower(), (g.lower() for g in policy.ignore_users))


def is_ignored_workspace(name: str, policy: Policy) -> bool:
    """Whether ``policy.ignore_workspaces`` matches this workspace name."""
    return _matches(name, policy.ignore_workspaces)


def filter_ignored(state: State, policy: Policy) -> State:
    """``state`` without ignored users and workspaces and the memberships touching them.

    Keys are normalized on the way: users by lowercased email, memberships by
    ``(workspace, lowercased email)``.
    """
    # The globs are lowercased once here, not once per object (100,000 memberships).
    user_globs = tuple(g.lower() for g in policy.ignore_users)
    workspace_globs = tuple(policy.ignore_workspaces)
    if not user_globs and not workspace_globs and _keys_normalized(state):
        return state  # nothing to drop or re-key: skip rebuilding 100,000 entries

    def ignored_user(email: str) -> bool:
        return bool(user_globs) and _matches(email.lower(), user_globs)

    def ignored_workspace(name: str) -> bool:
        return bool(workspace_globs) and _matches(name, workspace_globs)

    users = [u for u in state.users.values() if not ignored_user(u.email)]
    workspaces = [w for w in state.workspaces.values() if not ignored_workspace(w.name)]
    memberships = [
        m
        for m in state.memberships.values()
        if not ignored_user(m.user) and not ignored_workspace(m.workspace)
    ]
    return State(
        users=MappingProxyType({u.email.lower(): u for u in users}),
        workspaces=MappingProxyType({w.name: w for w in workspaces}),
        memberships=MappingProxyType({(m.workspace, m.user.lower()): m for m in memberships}),
    )


def _keys_normalized(state: State) -> bool:
    """Whether every email key is already lowercased (as the reader and the loader make them)."""
    return all(e == e.lower() for e in state.users) and all(e == e.lower() for _, e in state.memberships)


def _sorted_items(mapping: Mapping[_K, _V], keys: Iterable[_K]) -> list[tuple[_K, _V]]:
    return [(k, mapping[k]) for k in sorted(keys)]  # type: ignore[type-var]


def _user_changes(current: Mapping[str, User], desired: Mapping[str, User]) -> list[Change]:
    changes: list[Change] = []
    for email, after in _sorted_items(desired, desired.keys() - current.keys()):
        changes.append(Change(Action.CREATE, ResourceType.USER, email, None, after))
    for email, before in _sorted_items(current, current.keys() - desired.keys()):
        changes.append(Change(Action.DELETE, ResourceType.USER, email, before, None))
    for email in sorted(current.keys() & desired.keys()):
        before, wanted = current[email], desired[email]
        # Only the role is managed. ``after`` keeps the server's id, ETag and
        # status so the applier can address it (pending invitations included).
        if before.role != wanted.role:
            after = dataclasses.replace(before, role=wanted.role)
            changes.append(Change(Action.UPDATE, ResourceType.USER, email, before, after))
    return changes


def _workspace_changes(current: Mapping[str, Workspace], desired: Mapping[str, Workspace]) -> list[Change]:
    return [
        Change(Action.CREATE, ResourceType.WORKSPACE, name, None, after)
        for name, after in _sorted_items(desired, desired.keys() - current.keys())
    ]


def _membership_changes(
    current: Mapping[tuple[str, str], Membership],
    desired: Mapping[tuple[str, str], Membership],
    *,
    unmanaged_workspaces: frozenset[str],
    removed_users: frozenset[str],
) -> list[Change]:
    changes: list[Change] = []
    for (workspace, email), after in _sorted_items(desired, desired.keys() - current.keys()):
        changes.append(
            Change(
                Action.CREATE,
                ResourceType.MEMBERSHIP,
                membership_key(workspace, email),
                None,
                after,
            )
        )
    for (workspace, email), before in _sorted_items(current, current.keys() - desired.keys()):
        cascade = email in removed_users
        # Memberships on undeclared workspaces are unmanaged; only the server's
        # cascade on user removal touches them, and the plan says so.
        if workspace in unmanaged_workspaces and not cascade:
            continue
        changes.append(
            Change(
                Action.DELETE,
                ResourceType.MEMBERSHIP,
                membership_key(workspace, email),
                before,
                None,
                cascade=cascade,
            )
        )
    return changes


def active_admins(users: Iterable[User]) -> int:
    """How many of ``users`` are active admins (a pending invitation administers nothing yet)."""
    return sum(1 for u in users if u.status == ACTIVE and u.role == ADMIN)


def users_after(current: State, changes: Iterable[Change]) -> dict[str, User]:
    """``current``'s users by lowercased email once the user changes of a plan are made."""
    users = {u.email.lower(): u for u in current.users.values()}
    for change in changes:
        if change.type is not ResourceType.USER:
            continue
        if change.action is Action.DELETE:
            users.pop(change.key, None)
        elif change.action is Action.UPDATE and isinstance(change.after, User):
            users[change.key] = change.after
        # Invitations are pending: they do not count as active admins.
    return users


def _min_admins_warning(current: State, changes: list[Change], policy: Policy) -> list[str]:
    now = active_admins(current.users.values())
    if now >= policy.min_admins:
        return []
    after = active_admins(users_after(current, changes).values())
    return [
        f"the organization has {now} active admin{'s' if now != 1 else ''}, fewer than "
        f"policy.min_admins {policy.min_admins} (after this plan: {after}); promote active users "
        f"to admin in the configuration (invited admins count once they accept), or lower "
        f"policy.min_admins."
    ]


def _sort_key(change: Change) -> tuple[int, int, str]:
    return (int(change.phase), _TYPE_ORDER[change.type], change.key)


def diff(
    current: State,
    desired: State,
    policy: Policy,
    *,
    now: datetime,
    organization: str = "",
    config_digest: str = "",
    expiring_within: timedelta = timedelta(days=7),
) -> Plan:
    """The plan that takes ``current`` to ``desired``.

    ``now`` (timezone-aware) decides which grants have expired (``expires <=
    now`` counts as absent) and which expire within ``expiring_within``
    (reported in ``Plan.expiring_soon`` and as a warning).
    ``state_fingerprint`` is computed over the unfiltered ``current``.
    """
    cur = filter_ignored(current, policy)
    des = filter_ignored(desired, policy)
    warnings: list[str] = []

    # Workspaces the organization has but the config does not declare.
    undeclared = frozenset(cur.workspaces.keys() - des.workspaces.keys())
    for name in sorted(undeclared):
        held = sum(1 for (ws, _) in cur.memberships if ws == name)
        warnings.append(
            f"workspace {name} exists in the organization but is not declared in the "
            f"configuration; the API cannot delete workspaces, so it is left as it is and its "
            f"{held} membership{'s are' if held != 1 else ' is'} not managed. Declare it, or add it "
            f"to policy.ignore.workspaces to silence this warning."
        )

    # Grants: drop the expired ones, note the ones about to expire.
    live: dict[tuple[str, str], Membership] = {}
    expiring: list[Membership] = []
    horizon = now + expiring_within
    for key, grant in _sorted_items(des.memberships, des.memberships.keys()):
        if grant.expires is not None and grant.expires <= now:
            warnings.append(
                f"access {membership_key(*key)} ran until {format_expiry(grant.expires)} and "
                f"counts as absent (it is revoked if present); remove it from the configuration."
            )
            continue
        live[key] = grant
        if grant.expires is not None and grant.expires <= horizon:
            expiring.append(grant)
            warnings.append(
                f"access {membership_key(*key)} runs until {format_expiry(grant.expires)}; "
                f"extend it in the configuration if it is still needed."
            )

    user_changes = _user_changes(cur.users, des.users)
    removed_users = frozenset(c.key for c in user_changes if c.action is Action.DELETE)
    changes = [
        *user_changes,
        *_workspace_changes(cur.workspaces, des.workspaces),
        *_membership_changes(
            cur.memberships,
            live,
            unmanaged_workspaces=undeclared,
            removed_users=removed_users,
        ),
    ]
    changes.sort(key=_sort_key)
    warnings[:0] = _min_admins_warning(current, changes, policy)

    return Plan(
        organization=organization,
        changes=tuple(changes),
        warnings=tuple(warnings),
        state_fingerprint=state_fingerprint(current),
        config_digest=config_digest,
        expiring_soon=tuple(expiring),
    )
