"""The membership: access of one user to one workspace, identified by ``(workspace, email)``.

* Wire shape: ``GET /workspace_memberships/?workspace_id=`` objects (``id``,
  ``workspace_id``, ``user_id``, ``etag``), resolved to names through the
  user and workspace listings; ``POST /workspace_memberships/`` grants,
  ``DELETE /workspace_memberships/{id}/`` revokes.
* Diff: a desired grant whose ``expires <= now`` counts as absent; one that
  expires within ``expiring_within`` is reported. Memberships on undeclared
  workspaces are unmanaged (neither granted nor revoked) -- except when the
  user who holds them is removed: the server then deletes them too, so the
  plan shows them as cascaded deletes, which cost no API call.
* Apply: a grant waits for its user's invite and its workspace's creation;
  a cascaded removal is applied when its user's removal is.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any

from provisioner.errors import ConflictError
from provisioner.escape import terminal
from provisioner.model import Membership, fast_constructor
from provisioner.plan.change import APPLIED, SKIPPED, Action, Change, ChangeResult, PlanWarning, format_expiry
from provisioner.resources.base import (
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
    delete,
    sorted_items,
)

log = logging.getLogger("provisioner.api")

TYPE = ResourceType.MEMBERSHIP
MEMBERSHIPS = "/workspace_memberships/"

GRANT_EXPIRED = "grant-expired"
GRANT_EXPIRING = "grant-expiring"

_Ids = tuple[str, str, str, "str | None"]  # (id, workspace id, user id, etag)


def membership_key(workspace: str, email: str) -> str:
    """The text key of a membership change: ``"<workspace>/<email>"``."""
    return f"{workspace}/{email}"


# --- wire shape -------------------------------------------------------------------


def membership_path(membership_id: str) -> str:
    """The path of one workspace membership."""
    return f"{MEMBERSHIPS}{membership_id}/"


def membership_body(workspace_id: str, user_id: str) -> dict[str, Any]:
    """The body of ``POST /workspace_memberships/``."""
    return {"workspace_id": workspace_id, "user_id": user_id}


def _ids(data: dict[str, Any]) -> _Ids:
    return convert(
        "membership",
        MEMBERSHIPS,
        lambda: (str(data["id"]), str(data["workspace_id"]), str(data["user_id"]), data.get("etag")),
    )


def from_plain(d: Mapping[str, Any]) -> Membership:
    """A ``Membership`` from its plain form (``expires`` parsed back to a datetime)."""
    expires = d.get("expires")
    return Membership(**{**d, "expires": None if expires is None else datetime.fromisoformat(expires)})


def _list_ids(reading: Reading, workspace_id: str) -> list[_Ids]:
    """One workspace's memberships as ids, page by page.

    Each page is reduced as it arrives, so that the 100,000 response dicts of
    a large organization are never all alive at once (peak memory).
    """
    ids: list[_Ids] = []
    for page in reading.client.iter_pages(MEMBERSHIPS, {"workspace_id": workspace_id}):
        ids.extend(_ids(raw) for raw in page)
    return ids


def _emails_lowercased(keys: Iterable[tuple[str, str]]) -> bool:
    return all_lowercase(map(itemgetter(1), keys))


# The reader builds one Membership per membership of the organization (100,000 at 10,000 users).
_new_membership = fast_constructor(Membership)


def _read(reading: Reading) -> Callable[[], list[Any]]:
    # The listing is per workspace: it can start once the workspaces are known.
    workspaces = reading.result(ResourceType.WORKSPACE)
    listings = [reading.submit(_list_ids, reading, w.id) for w in workspaces]

    def finish() -> list[Any]:
        email_by_id = {u.id: u.email for u in reading.result(ResourceType.USER)}
        name_by_id = {w.id: w.name for w in workspaces}
        memberships: list[Membership] = []
        for mid, workspace_id, user_id, etag in (ids for f in listings for ids in f.result()):
            email, name = email_by_id.get(user_id), name_by_id.get(workspace_id)
            if email is None or name is None:
                # A user or workspace created or removed while we were listing.
                log.warning(
                    "skipping membership %s: its %s %s is not in the listing (changed while reading?)",
                    mid,
                    "user" if email is None else "workspace",
                    user_id if email is None else workspace_id,
                )
                continue
            memberships.append(_new_membership(name, email, mid, None, None, etag))
        return memberships

    return finish


# --- diff rules -------------------------------------------------------------------


def _material(m: Membership) -> dict[str, Any]:
    expires = None if m.expires is None else m.expires.isoformat()
    return {"workspace": m.workspace, "user": m.user, "expires": expires, "reason": m.reason}


def _diff(ctx: DiffContext) -> Diffed:
    warnings: list[PlanWarning] = []
    # Grants: drop the expired ones, note the ones about to expire.
    live: dict[tuple[str, str], Membership] = {}
    expiring: list[Membership] = []
    horizon = ctx.now + ctx.expiring_within
    grants = ctx.desired.memberships
    for key, grant in sorted_items(grants, grants.keys()):
        if grant.expires is not None and grant.expires <= ctx.now:
            warnings.append(_grant_warning(GRANT_EXPIRED, key, grant.expires))
            continue
        live[key] = grant
        if grant.expires is not None and grant.expires <= horizon:
            expiring.append(grant)
            warnings.append(_grant_warning(GRANT_EXPIRING, key, grant.expires))

    unmanaged = ctx.current.workspaces.keys() - ctx.desired.workspaces.keys()
    removed_users = frozenset(
        c.key for c in ctx.earlier if c.type is ResourceType.USER and c.action is Action.DELETE
    )
    current = ctx.current.memberships
    changes: list[Change] = []
    for (workspace, email), after in sorted_items(live, live.keys() - current.keys()):
        changes.append(Change(Action.CREATE, TYPE, membership_key(workspace, email), None, after))
    for (workspace, email), before in sorted_items(current, current.keys() - live.keys()):
        cascade = email in removed_users
        # Memberships on undeclared workspaces are unmanaged; only the server's
        # cascade on user removal touches them, and the plan says so.
        if workspace in unmanaged and not cascade:
            continue
        key = membership_key(workspace, email)
        changes.append(Change(Action.DELETE, TYPE, key, before, None, cascade=cascade))
    return Diffed(changes=tuple(changes), warnings=tuple(warnings), expiring_soon=tuple(expiring))


def _grant_warning(code: str, key: tuple[str, str], expires: datetime) -> PlanWarning:
    return PlanWarning(code, TYPE, membership_key(*key), {"until": expires.isoformat()})


def _until(w: PlanWarning) -> str:
    return format_expiry(datetime.fromisoformat(str(w.params["until"])))


def _expired_text(w: PlanWarning) -> str:
    return (
        f"access {w.key} ran until {_until(w)} and counts as absent (it is revoked if present); "
        f"remove it from the configuration."
    )


def _expiring_text(w: PlanWarning) -> str:
    return f"access {w.key} runs until {_until(w)}; extend it in the configuration if it is still needed."


def _phase(change: Change) -> Phase:
    return Phase.GRANT if change.action is Action.CREATE else Phase.REVOKE


def _replay(objects: dict[ResourceType, dict[Any, Any]], change: Change) -> None:
    target = change.after if change.action is Action.CREATE else change.before
    assert isinstance(target, Membership)
    if change.action is Action.CREATE:
        objects[TYPE][target.key] = target
    else:
        objects[TYPE].pop(target.key, None)


# --- API calls --------------------------------------------------------------------


def _grant(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.after, Membership)
    user_id = ctx.id_of(ResourceType.USER, c.after.user)
    workspace_id = ctx.id_of(ResourceType.WORKSPACE, c.after.workspace)
    if user_id is None or workspace_id is None:
        missing = f"user {c.after.user}" if user_id is None else f"workspace {c.after.workspace}"
        raise Failed(f"the {missing} is unknown to the API; run plan again")
    try:
        ctx.client.post(
            MEMBERSHIPS, membership_body(workspace_id, user_id), idempotency_key=ctx.idempotency_key(c)
        )
    except ConflictError:
        return "already existed"
    return None


def _revoke(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.before, Membership) and c.before.id
    return delete(ctx.client, membership_path(c.before.id), c.before.etag)


def _blocked_by(c: Change, ctx: ApplyContext) -> str | None:
    if c.action is not Action.CREATE:
        return None
    assert isinstance(c.after, Membership)
    if ctx.not_applied(ResourceType.USER, c.after.user):
        return f"depends on inviting {c.after.user}, which did not succeed"
    if ctx.not_applied(ResourceType.WORKSPACE, c.after.workspace):
        return f"depends on creating workspace {c.after.workspace}, which did not succeed"
    return None


def _settle_cascade(c: Change, ctx: ApplyContext) -> ChangeResult:
    # The server removes a user's memberships with the user: no requests.
    assert isinstance(c.before, Membership)
    user = c.before.user
    removed = ctx.planned(ResourceType.USER, Action.DELETE)
    if user in removed and not ctx.not_applied(ResourceType.USER, user):
        return ChangeResult(c, APPLIED, "removed by the server with its user")
    return ChangeResult(c, SKIPPED, f"depends on removing {user}, which did not succeed")


# --- text -------------------------------------------------------------------------


def grant_details(membership: Membership, quote: Callable[[str], str] = terminal) -> str:
    """``" (until 2026-12-31, INC-4711)"``, or ``""`` for a grant without expiry or reason.

    ``quote`` escapes the reason for its destination (``escape.terminal`` by
    default; the markdown renderer passes ``escape.markdown_code``).
    """
    parts = []
    if membership.expires is not None:
        parts.append(f"until {format_expiry(membership.expires)}")
    if membership.reason:
        parts.append(quote(membership.reason))
    return f" ({', '.join(parts)})" if parts else ""


def grant_line(change: Change, _: Counter[str]) -> str:
    """``access app-production: bob@acme.com (until 2026-12-31, INC-4711)``."""
    assert isinstance(change.after, Membership)
    m = change.after
    return f"access {terminal(m.workspace)}: {terminal(m.user)}{grant_details(m)}"


def revoke_line(change: Change, _: Counter[str]) -> str:
    """``access app-production: bob@acme.com (removed with user)``."""
    assert isinstance(change.before, Membership)
    m = change.before
    return f"access {terminal(m.workspace)}: {terminal(m.user)}" + (
        " (removed with user)" if change.cascade else ""
    )


KIND = ResourceKind(
    type=TYPE,
    model=Membership,
    field="memberships",
    heading="Access",
    identity=lambda m: (m.workspace, m.user.lower()),
    normalized_keys=_emails_lowercased,
    text_key=lambda m: membership_key(m.workspace, m.user),
    of=lambda state: state.memberships,
    ignored=lambda m, ignore: ignore.user(m.user) or ignore.workspace(m.workspace),
    read=_read,
    from_plain=from_plain,
    material=_material,
    diff=_diff,
    phase=_phase,
    replay=_replay,
    handlers={Action.CREATE: _grant, Action.DELETE: _revoke},
    lines={Action.CREATE: grant_line, Action.DELETE: revoke_line},
    warning_texts={GRANT_EXPIRED: _expired_text, GRANT_EXPIRING: _expiring_text},
    blocked_by=_blocked_by,
    settle_cascade=_settle_cascade,
)

__all__ = ["KIND", "MEMBERSHIPS", "from_plain", "grant_details", "membership_body", "membership_key"]
