"""The user: a person in the organization, identified by lowercased email.

* Wire shape: ``GET /users/`` objects (``id``, ``email``, ``role``, ``status``,
  ``etag``); ``POST /users/`` invites, ``PATCH /users/{id}/`` changes the role,
  ``DELETE /users/{id}/`` removes (the server removes the user's memberships too).
* Diff: creates and removals from set differences; only the role is managed.
  A user ``invited`` in current is pending, not absent: never invited again.
  An organization already below ``policy.min_admins`` gets a warning on every
  plan, whatever the plan does: the guard only refuses plans that make it
  worse, so nothing else would say so.
* Phases: invite first; promotions before demotions and removals, so that
  ``min_admins`` holds at every moment; a failed promotion holds back the
  demotions and the removals of admins.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from provisioner.errors import NotFoundError, PreconditionFailedError
from provisioner.escape import terminal
from provisioner.model import ACTIVE, ADMIN, INVITED, State, User, identity_key
from provisioner.plan.change import Action, Change, PlanWarning
from provisioner.resources.base import (
    RUN_PLAN_AGAIN,
    ApplyContext,
    DiffContext,
    Diffed,
    Failed,
    Phase,
    Reading,
    ResourceKind,
    ResourceType,
    all_lowercase,
    convert,
    create_or_adopt,
    delete,
    reread,
    sorted_items,
)

TYPE = ResourceType.USER
USERS = "/users/"

BELOW_MIN_ADMINS = "below-min-admins"


# --- wire shape -------------------------------------------------------------------


def user_path(user_id: str) -> str:
    """The path of one user."""
    return f"{USERS}{user_id}/"


def invite_body(user: User) -> dict[str, Any]:
    """The body of ``POST /users/``."""
    return {"email": user.email, "role": user.role}


def role_body(role: str) -> dict[str, Any]:
    """The body of ``PATCH /users/{id}/``."""
    return {"role": role}


def parse_user(data: dict[str, Any]) -> User:
    """A user representation as a ``User`` (email in identity form)."""
    return convert(
        "user",
        USERS,
        lambda: User(
            email=identity_key(str(data["email"])),
            role=str(data["role"]),
            status=str(data.get("status") or ACTIVE),
            id=str(data["id"]),
            etag=data.get("etag"),
        ),
    )


def _from_plain(d: Mapping[str, Any]) -> User:
    return User(**d)


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listing = reading.submit(reading.client.list_all, USERS)
    return lambda: [parse_user(u) for u in listing.result()]


# --- diff rules -------------------------------------------------------------------


def active_admins(users: Iterable[User]) -> int:
    """How many of ``users`` are active admins (a pending invitation administers nothing yet)."""
    return sum(1 for u in users if u.status == ACTIVE and u.role == ADMIN)


def users_after(current: State, changes: Iterable[Change]) -> dict[str, User]:
    """``current``'s users by lowercased email once the user changes of a plan are made."""
    users = {u.email.lower(): u for u in current.users.values()}
    for change in changes:
        if change.type is not TYPE:
            continue
        if change.action is Action.DELETE:
            users.pop(change.key, None)
        elif change.action is Action.UPDATE and isinstance(change.after, User):
            users[change.key] = change.after
        # Invitations are pending: they do not count as active admins.
    return users


def _diff(ctx: DiffContext) -> Diffed:
    current, desired = ctx.current.users, ctx.desired.users
    changes: list[Change] = []
    for email, after in sorted_items(desired, desired.keys() - current.keys()):
        changes.append(Change(Action.CREATE, TYPE, email, None, after))
    for email, before in sorted_items(current, current.keys() - desired.keys()):
        changes.append(Change(Action.DELETE, TYPE, email, before, None))
    for email in sorted(current.keys() & desired.keys()):
        before, wanted = current[email], desired[email]
        # Only the role is managed. ``after`` keeps the server's id, ETag and
        # status so the applier can address it (pending invitations included).
        if before.role != wanted.role:
            after = dataclasses.replace(before, role=wanted.role)
            changes.append(Change(Action.UPDATE, TYPE, email, before, after))
    return Diffed(changes=tuple(changes), warnings=_min_admins_warning(ctx, changes))


def _min_admins_warning(ctx: DiffContext, changes: list[Change]) -> tuple[PlanWarning, ...]:
    # Counted over the unfiltered organization: an ignored admin still administers.
    now = active_admins(ctx.unfiltered_current.users.values())
    minimum = ctx.policy.min_admins
    if now >= minimum:
        return ()
    after = active_admins(users_after(ctx.unfiltered_current, changes).values())
    params = {"active": now, "min_admins": minimum, "after": after}
    return (PlanWarning(BELOW_MIN_ADMINS, TYPE, "", params),)


def _below_min_admins_text(w: PlanWarning) -> str:
    now = w.params["active"]
    return (
        f"the organization has {now} active admin{'s' if now != 1 else ''}, fewer than "
        f"policy.min_admins {w.params['min_admins']} (after this plan: {w.params['after']}); promote "
        f"active users to admin in the configuration (invited admins count once they accept), or lower "
        f"policy.min_admins."
    )


def _phase(change: Change) -> Phase:
    if change.action is Action.CREATE:
        return Phase.INVITE
    if change.action is Action.DELETE:
        return Phase.REMOVE_USER
    assert isinstance(change.after, User)
    return Phase.PROMOTE if change.after.role == ADMIN else Phase.DEMOTE


def _replay(objects: dict[ResourceType, dict[Any, Any]], change: Change) -> None:
    users = objects[TYPE]
    if change.action is Action.DELETE:
        users.pop(change.key, None)
        # The server removes a user's memberships with the user.
        memberships = objects[ResourceType.MEMBERSHIP]
        for key in [k for k in memberships if k[1] == change.key]:
            del memberships[key]
    else:
        assert isinstance(change.after, User)
        users[change.key] = change.after


# --- API calls --------------------------------------------------------------------


def _invite(c: Change, ctx: ApplyContext) -> str | None:
    wanted = c.after
    assert isinstance(wanted, User)
    user, existed = create_or_adopt(ctx, c, USERS, invite_body(wanted), parse_user, lambda u: u.email)
    if not existed:
        return None
    if user.role != wanted.role:  # invited meanwhile by someone else, with another role
        raise Failed(f"already exists with role {user.role}; {RUN_PLAN_AGAIN}")
    return "already existed"


def _change_role(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.before, User) and isinstance(c.after, User) and c.before.id
    path = user_path(c.before.id)
    try:
        ctx.client.patch(path, role_body(c.after.role), if_match=c.before.etag)
    except NotFoundError:
        raise Failed(f"the user no longer exists; {RUN_PLAN_AGAIN}") from None
    except PreconditionFailedError:
        now = reread(ctx.client, path, parse_user)
        if now is not None and now.role == c.after.role:
            return f"already had role {c.after.role}"
        raise Failed(RUN_PLAN_AGAIN) from None
    return None


def _remove(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.before, User) and c.before.id
    return delete(ctx.client, user_path(c.before.id), c.before.etag)


def _blocked_by(c: Change, ctx: ApplyContext) -> str | None:
    if not ctx.phase_failed(Phase.PROMOTE):
        return None
    phase = _phase(c)
    removes_admin = phase is Phase.REMOVE_USER and isinstance(c.before, User) and c.before.role == ADMIN
    if phase is Phase.DEMOTE or removes_admin:
        return "a promotion did not succeed; doing this now could leave too few admins"
    return None


# --- text -------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def invite_line(change: Change, _: Counter[str]) -> str:
    """``user bob@acme.com (developer)``."""
    assert isinstance(change.after, User)
    return f"user {terminal(change.key)} ({terminal(change.after.role)})"


def update_line(change: Change, _: Counter[str]) -> str:
    """``user bob@acme.com: developer -> admin``."""
    assert isinstance(change.before, User) and isinstance(change.after, User)
    pending = " (invitation pending)" if change.before.status == INVITED else ""
    return (
        f"user {terminal(change.key)}: {terminal(change.before.role)} -> "
        f"{terminal(change.after.role)}{pending}"
    )


def remove_line(change: Change, cascades: Counter[str]) -> str:
    """``user bob@acme.com (and 3 memberships)``; ``cascades`` counts removals by user."""
    assert isinstance(change.before, User)
    notes = []
    if change.before.status == INVITED:
        notes.append("invitation pending")
    if cascades[change.key]:
        notes.append(f"and {_plural(cascades[change.key], 'membership')}")
    return f"user {terminal(change.key)}" + (f" ({', '.join(notes)})" if notes else "")


KIND = ResourceKind(
    type=TYPE,
    model=User,
    field="users",
    heading="Users",
    identity=lambda u: u.email.lower(),
    normalized_keys=all_lowercase,
    text_key=lambda u: u.email,
    of=lambda state: state.users,
    ignored=lambda u, ignore: ignore.user(u.email),
    read=_read,
    from_plain=_from_plain,
    material=lambda u: {"email": u.email, "role": u.role},
    diff=_diff,
    phase=_phase,
    replay=_replay,
    handlers={Action.CREATE: _invite, Action.UPDATE: _change_role, Action.DELETE: _remove},
    lines={Action.CREATE: invite_line, Action.UPDATE: update_line, Action.DELETE: remove_line},
    warning_texts={BELOW_MIN_ADMINS: _below_min_admins_text},
    blocked_by=_blocked_by,
)

__all__ = [
    "KIND",
    "USERS",
    "active_admins",
    "invite_body",
    "parse_user",
    "role_body",
    "user_path",
    "users_after",
]
