"""The API key: a user's key to one workspace instance, made and rotated by apply, its secret delivered.

* Wire shape: ``GET /api_keys/`` (one organization-wide listing), objects
  ``id``, ``name``, ``user_id``, ``workspace_id``, ``prefix``,
  ``created_at``, ``last_used_at``, ``disabled``, ``etag``; ``POST`` makes a
  key and answers its secret (``key``) once; ``PATCH {"disabled": true}``
  disables one for good; ``DELETE`` removes a disabled one.
* Identity: the server allows several keys of one name (a rotation makes the
  new key before the old one goes), so current keys are filed by id and
  declared ones by ``(workspace, name)``; the diff groups the live keys of
  each declared name, newest last.
* Only the tool's own keys: a key counts as the declared key (rotated,
  replaced, disabled as replaced) only if the server recorded where its
  secret was delivered (``delivered_to``), which only an admin's key may
  record. A key of the same name that someone else made (a developer for
  themselves, a person on the dashboard) is unmanaged: reported, never taken
  for a rotation, never the reason the tool's key is disabled.
* Where the secret goes is desired state: the key's destination name is
  recorded on the server; a different ``sink:`` (or default) is a rotation
  that delivers a new key there, shown in the plan, never done silently.
* Diff, for each declared key:

  - no live key of that name: **create** it;
  - the newest is older than ``rotate_every``, or belongs to another user
    than the config says: **rotate** (an update: a new key is made and
    delivered; the old one stays enabled);
  - every older live key of the name is **disabled** (a delete) once it is
    safe: the grace period (``policy.api_keys.rotation_grace``) since the
    newest key was made has passed, or the newest key has been used and the
    old one has not been used since the newest was made (its consumers
    moved). Until then the plan says why it waits.

  Keys the config does not name, on declared workspaces, follow
  ``policy.api_keys.unmanaged``: kept, reported (a warning with owner and
  last use) or disabled.
* What a removal breaks: a user's removal or demotion, or the revocation of
  their access to a workspace, is checked against the keys they own; the
  plan names the keys on a line of its own (a warning, ``KEY_IMPACT``), and
  the guards refuse it when a production key was used recently.
* Apply: the secret goes to the operator's secret sink before the change
  counts as applied; if it cannot be delivered, the new key is disabled and
  deleted, so no key is left live that nobody has.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from provisioner.errors import ConflictError, NotFoundError, PreconditionFailedError, ProvisionerError
from provisioner.escape import terminal
from provisioner.model import ADMIN, DEVELOPER, ApiKey, Membership, User, is_production_environment
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
    convert,
    workspace_dependency,
    workspace_id,
)
from provisioner.secrets.names import api_key_slug, default_name

log = logging.getLogger("provisioner.api")

TYPE = ResourceType.API_KEY
API_KEYS = "/api_keys/"

KEY_IMPACT = "api-key-impact"
ROTATION_WAITS = "api-key-rotation-waits"
UNMANAGED = "api-key-unmanaged"
IMPACT_LISTED = 5  # keys named in one impact line; the rest are counted
REPLACED = "replaced by the newer key"  # the note of an old key disabled after its rotation
DUE = "rotate_every"  # in the note of a rotation that time made due
SINK_MOVED = "delivered as"  # in the note of a rotation that a new destination name asks for


def api_key_path(key_id: str) -> str:
    """The path of one API key."""
    return f"{API_KEYS}{key_id}/"


def key_text(key: ApiKey) -> str:
    """The text key of a change: ``"<workspace> <name>"``, plus the prefix for one particular key."""
    base = f"{key.workspace} {key.name}"
    return f"{base} {key.prefix or key.id}" if key.id else base


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# --- wire shape -------------------------------------------------------------------


def _parse(data: dict[str, Any], users: Mapping[str, str], names: Mapping[str, str]) -> ApiKey | None:
    owner, workspace = users.get(str(data.get("user_id"))), names.get(str(data.get("workspace_id")))
    if owner is None or workspace is None:
        log.warning("skipping API key %s: its user or workspace is not in the listing", data.get("id"))
        return None
    return convert(
        "API key",
        API_KEYS,
        lambda: ApiKey(
            workspace=workspace,
            name=str(data["name"]),
            owner=owner,
            id=str(data["id"]),
            prefix=str(data["prefix"]),
            created_at=_moment(data["created_at"]),
            last_used_at=_moment(data["last_used_at"]),
            disabled=bool(data["disabled"]),
            etag=data.get("etag"),
            sink_name=None if data.get("delivered_to") is None else str(data["delivered_to"]),
        ),
    )


def _from_plain(d: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        **{**d, "created_at": _moment(d.get("created_at")), "last_used_at": _moment(d.get("last_used_at"))}
    )


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listing = reading.submit(reading.client.list_all, API_KEYS)

    def finish() -> list[Any]:
        users = {str(u.id): u.email for u in reading.result(ResourceType.USER)}
        names = {str(w.id): w.name for w in reading.result(ResourceType.WORKSPACE)}
        keys = [k for k in (_parse(raw, users, names) for raw in listing.result()) if k is not None]
        # The key this run authenticates with is never disabled by it (that would lock it out).
        client = reading.client
        return [
            replace(k, in_use=True) if k.prefix and client.authenticates_with(k.prefix) else k for k in keys
        ]

    return finish


# --- diff rules -------------------------------------------------------------------


def _material(k: ApiKey) -> dict[str, Any]:
    # What a change does: which key (by id, for one that exists), where, whose.
    # Never times or notes, which move with the clock.
    return {"workspace": k.workspace, "name": k.name, "owner": k.owner, "id": k.id, "sink": k.sink_name}


def is_own(key: ApiKey) -> bool:
    """Whether the tool made ``key``: the server recorded where its secret was delivered."""
    return key.sink_name is not None


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never used"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 3600:
        return f"last used {seconds // 60} minutes ago"
    if seconds < 2 * 86400:
        return f"last used {seconds // 3600} hours ago"
    return f"last used {seconds // 86400} days ago"


def _live(ctx: DiffContext) -> dict[tuple[str, str], list[ApiKey]]:
    """The live keys by ``(workspace, name)``, oldest first."""
    groups: dict[tuple[str, str], list[ApiKey]] = defaultdict(list)
    for key in ctx.current.api_keys.values():
        if not key.disabled:
            groups[(key.workspace, key.name)].append(key)
    for keys in groups.values():
        keys.sort(key=lambda k: (k.created_at or datetime.min.replace(tzinfo=ctx.now.tzinfo), k.id or ""))
    return groups


def _diff(ctx: DiffContext) -> Diffed:
    """Each declared key made, rotated or retired; every other live key by the unmanaged policy."""
    if ctx.key_clock is not None:
        # The clock that stamped the keys measures their ages, not this machine's.
        ctx = replace(ctx, now=ctx.key_clock)
    live = _live(ctx)
    desired = {(k.workspace, k.name): k for k in ctx.desired.api_keys.values()}
    changes: list[Change] = []
    warnings: list[PlanWarning] = []
    for where, wanted in sorted(desired.items()):
        own = [k for k in live.get(where, []) if is_own(k)]
        made, waits = _declared_key(ctx, wanted, own)
        changes += made
        warnings += waits
    others = {
        where: [k for k in keys if where not in desired or not is_own(k)] for where, keys in live.items()
    }
    made, waits = _unmanaged(ctx, others, frozenset(desired))
    changes += made
    warnings += waits
    warnings += _impacts(ctx, live)
    return Diffed(changes=tuple(changes), warnings=tuple(warnings))


def _declared_key(
    ctx: DiffContext, wanted: ApiKey, own: list[ApiKey]
) -> tuple[list[Change], list[PlanWarning]]:
    """One declared key against the tool's own live keys of its name (oldest first)."""
    if not own:
        return [Change(Action.CREATE, TYPE, key_text(wanted), None, wanted)], []
    newest, older = own[-1], own[:-1]
    changes: list[Change] = []
    note = _why_rotate(ctx.now, newest, wanted)
    if note is not None:
        changes.append(Change(Action.UPDATE, TYPE, key_text(newest), newest, replace(wanted, note=note)))
    warnings: list[PlanWarning] = []
    grace = timedelta(seconds=ctx.policy.rotation_grace_s)
    for old in older:
        why_not = _why_old_key_stays(old, newest, ctx.now, grace)
        if old.in_use:
            why_not = "this run authenticates with it; apply with another key to disable it"
        if why_not is None:
            before = replace(old, note=f"{REPLACED} {newest.prefix or newest.id}")
            changes.append(Change(Action.DELETE, TYPE, key_text(old), before, None))
        else:
            warnings.append(PlanWarning(ROTATION_WAITS, TYPE, key_text(old), {"why": why_not}))
    return changes, warnings


def _breaks_production(ctx: DiffContext, key: ApiKey) -> list[PlanWarning]:
    """Disabling an unmanaged key that production used recently: what it breaks, for the guards.

    The same refusal as a removal's (``KEY_IMPACT`` with ``recent_production``):
    ``policy.api_keys.unmanaged: disable`` is no way around it.
    """
    declared = ctx.desired.workspaces.get(key.workspace)
    recent = timedelta(days=ctx.policy.recent_use_days)
    used = key.last_used_at is not None and ctx.now - key.last_used_at <= recent
    if declared is None or not is_production_environment(declared.environment) or not used:
        return []
    params: dict[str, str | int] = {
        "verb": "disabling the unmanaged key of",
        "effect": "(policy.api_keys.unmanaged: disable) disables",
        "user": key.owner,
        "count": 1,
        "keys": f"{key.name} on {key.workspace} ({_ago(key.last_used_at, ctx.now)})",
        "recent_production": f"{key.name} on {key.workspace}",
    }
    return [PlanWarning(KEY_IMPACT, TYPE, key.owner, params)]


def _why_rotate(now: datetime, newest: ApiKey, wanted: ApiKey) -> str | None:
    """Why the newest key of a declared name is replaced by a new one, or None."""
    if newest.owner != wanted.owner:
        return f"owner {newest.owner} -> {wanted.owner}"
    if newest.sink_name != wanted.sink_name:
        return f"{SINK_MOVED} {wanted.sink_name} (was {newest.sink_name})"
    age = now - newest.created_at if newest.created_at else timedelta(0)
    if wanted.rotate_every_s and age > timedelta(seconds=wanted.rotate_every_s):
        return f"{age.days} days old, {DUE} {_duration(wanted.rotate_every_s)}"
    return None


def _unmanaged(
    ctx: DiffContext, others: Mapping[tuple[str, str], list[ApiKey]], declared: frozenset[tuple[str, str]]
) -> tuple[list[Change], list[PlanWarning]]:
    """Keys on declared workspaces that are not the tool's declared keys: ``policy.api_keys.unmanaged``.

    A key that bears a declared key's name but was made by someone else is
    reported even under ``keep``: it may be mistaken for the declared one.
    """
    policy, now = ctx.policy, ctx.now
    changes: list[Change] = []
    warnings: list[PlanWarning] = []
    for (ws, _), keys in sorted(others.items()):
        if ws not in ctx.desired.workspaces:
            continue  # on a workspace the config does not declare
        for key in keys:
            if policy.unmanaged_keys == "disable" and not key.in_use:
                before = replace(key, note=f"not in the config ({_ago(key.last_used_at, now)})")
                changes.append(Change(Action.DELETE, TYPE, key_text(key), before, None))
                warnings += _breaks_production(ctx, key)
            elif policy.unmanaged_keys != "keep" or (ws, key.name) in declared:
                used = "the key this run authenticates with, so not disabled" if key.in_use else ""
                params = {"owner": key.owner, "used": used or _ago(key.last_used_at, now)}
                warnings.append(PlanWarning(UNMANAGED, TYPE, key_text(key), params))
    return changes, warnings


def _duration(seconds: int) -> str:
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"


def _why_old_key_stays(old: ApiKey, newest: ApiKey, now: datetime, grace: timedelta) -> str | None:
    """Why an old key of a rotated name stays enabled for now, or None when it can be disabled."""
    made = newest.created_at
    if made is None or now >= made + grace:
        return None
    switched = newest.last_used_at is not None and (old.last_used_at is None or old.last_used_at < made)
    if switched:
        return None
    until = (made + grace).strftime("%Y-%m-%d %H:%M UTC")
    if newest.last_used_at is None:
        reason = "the new key has not been used yet"
    else:
        reason = "the old key was used after the new key was made"
    return f"{reason}; it is disabled by an apply after {until} (policy.api_keys.rotation_grace)"


def _impacts(ctx: DiffContext, live: Mapping[tuple[str, str], list[ApiKey]]) -> list[PlanWarning]:
    """What the plan's removals, demotions and revocations do to the keys their users own."""
    owned: dict[str, list[ApiKey]] = defaultdict(list)
    for keys in live.values():
        for key in keys:
            owned[key.owner].append(key)
    if not owned:
        return []
    out = []
    for change in ctx.earlier:
        hit = None if change.cascade else _what_breaks(change, owned)
        if hit is not None:
            out.append(_impact(ctx, *hit))
    return out


def _what_breaks(
    change: Change, owned: Mapping[str, list[ApiKey]]
) -> tuple[str, str, str, list[ApiKey]] | None:
    """``(verb, effect, user, keys)`` when ``change`` takes something from the owner of live keys."""
    before, after = change.before, change.after
    if change.type is ResourceType.USER and isinstance(before, User):
        keys = owned.get(before.email, [])
        if change.action is Action.DELETE and keys:
            return "removing", "disables", before.email, keys
        demoted = isinstance(after, User) and (before.role, after.role) == (ADMIN, DEVELOPER)
        if change.action is Action.UPDATE and demoted and keys:
            return "demoting", "leaves read-only", before.email, keys
        return None
    if change.type is ResourceType.MEMBERSHIP and change.action is Action.DELETE:
        assert isinstance(before, Membership)
        keys = [k for k in owned.get(before.user, []) if k.workspace == before.workspace]
        if keys:
            return "revoking the access of", f"to {before.workspace} disables", before.user, keys
    return None


def _impact(ctx: DiffContext, verb: str, effect: str, user: str, hit: list[ApiKey]) -> PlanWarning:
    """The warning that names the keys a change breaks, production first, and the recently used ones."""

    def production(k: ApiKey) -> bool:
        declared = ctx.desired.workspaces.get(k.workspace)
        return is_production_environment(declared.environment if declared is not None else None)

    hit = sorted(hit, key=lambda k: (not production(k), k.workspace))
    described = [f"{k.name} on {k.workspace} ({_ago(k.last_used_at, ctx.now)})" for k in hit]
    more = len(described) - IMPACT_LISTED
    recent = timedelta(days=ctx.policy.recent_use_days)
    used = [
        f"{k.name} on {k.workspace}"
        for k in hit
        if production(k) and k.last_used_at is not None and ctx.now - k.last_used_at <= recent
    ]
    params: dict[str, str | int] = {
        "verb": verb,
        "effect": effect,
        "user": user,
        "count": len(hit),
        "keys": ", ".join(described[:IMPACT_LISTED]) + (f", and {more} more" if more > 0 else ""),
        "recent_production": ", ".join(used),
    }
    return PlanWarning(KEY_IMPACT, TYPE, user, params)


def is_scheduled_rotation(change: Change) -> bool:
    """A change that only time made due under the reviewed config: a rotation ``rotate_every``
    asks for, or disabling the key such a rotation replaced (``apply --rotate-only``)."""
    if change.type is not TYPE:
        return False
    if change.action is Action.UPDATE and isinstance(change.after, ApiKey):
        before = change.before
        same_owner = isinstance(before, ApiKey) and before.owner == change.after.owner
        return same_owner and DUE in (change.after.note or "")
    if change.action is Action.DELETE and isinstance(change.before, ApiKey):
        return (change.before.note or "").startswith(REPLACED)
    return False


def impact_text(w: PlanWarning) -> str:
    """``removing bob@acme.com disables 2 API keys: ci-deploy on notetaker-production (…), …``."""
    n = int(w.params["count"])
    keys = f"{n} API key{'s' if n != 1 else ''}"
    return f"{w.params['verb']} {w.params['user']} {w.params['effect']} {keys}: {w.params['keys']}"


def _waits_text(w: PlanWarning) -> str:
    return f"the old API key {w.key} stays enabled after its rotation: {w.params['why']}."


def _unmanaged_text(w: PlanWarning) -> str:
    return (
        f"API key {w.key} of {w.params['owner']} is not in the configuration ({w.params['used']}); "
        "declare it under the workspace's api_keys, or set policy.api_keys.unmanaged to keep or disable."
    )


def _phase(change: Change) -> Phase:
    return Phase.KEYS


def _replay(objects: dict[ResourceType, dict[Any, Any]], change: Change) -> None:
    if change.action is Action.DELETE:
        assert isinstance(change.before, ApiKey)
        objects[TYPE][change.before.key] = replace(change.before, disabled=True, note=None)
        return
    assert isinstance(change.after, ApiKey)
    objects[TYPE][change.after.key] = replace(change.after, note=None)


# --- API calls --------------------------------------------------------------------


def _make(c: Change, ctx: ApplyContext) -> str | None:
    wanted = c.after
    assert isinstance(wanted, ApiKey)
    user_id = ctx.id_of(ResourceType.USER, wanted.owner)
    if user_id is None:
        raise Failed(f"the user {wanted.owner} is unknown to the API; run plan again")
    body = {
        "name": wanted.name,
        "user_id": user_id,
        "workspace_id": workspace_id(ctx, wanted.workspace),
        # Where its secret goes: the next plan compares it, and it marks the key as the tool's own.
        "delivered_to": wanted.sink_name,
    }
    try:
        made = ctx.client.post(API_KEYS, body, idempotency_key=ctx.idempotency_key(c))
    except ConflictError:
        raise Failed(RUN_PLAN_AGAIN) from None
    key_id = convert("API key", API_KEYS, lambda: str(made["id"]))
    secret = made.get("key")
    if not isinstance(secret, str) or not secret:
        # A replayed answer never repeats the secret: that key is of no use to anyone.
        _retire(ctx, key_id, made.get("etag"))
        raise Failed(
            "the API answered from an earlier attempt whose answer was lost, without the key's secret; "
            "that key was disabled and deleted. Run apply again to make a new one"
        )
    try:
        where = ctx.deliver(wanted.workspace, f"API key {wanted.name}", "API_KEY", secret, wanted.sink_name)
    except ProvisionerError as e:
        _retire(ctx, key_id, made.get("etag"))
        raise Failed(
            f"its secret could not be delivered ({e}); the new key was disabled and deleted, so no live "
            "key is left that nobody has. Fix the secret sink and apply again"
        ) from None
    prefix = made.get("prefix")
    rotated = (
        ""
        if c.before is None
        else "; the old key stays enabled until its consumers moved or the grace period ends"
    )
    return f"key {prefix} made, its secret delivered to {where}{rotated}"


def _retire(ctx: ApplyContext, key_id: str, etag: Any) -> None:
    """Disable, then delete, a key nobody should hold (best effort; logged when it fails)."""
    try:
        try:
            ctx.client.patch(api_key_path(key_id), {"disabled": True}, if_match=None)
        except NotFoundError:
            return
        ctx.client.delete(api_key_path(key_id), if_match=None)
    except ProvisionerError as e:
        log.error("retiring the undelivered API key %s failed: %s", key_id, e)


def _disable(c: Change, ctx: ApplyContext) -> str | None:
    key = c.before
    assert isinstance(key, ApiKey) and key.id
    try:
        ctx.client.patch(api_key_path(key.id), {"disabled": True}, if_match=key.etag)
    except NotFoundError:
        return "already gone"
    except PreconditionFailedError:
        raise Failed(RUN_PLAN_AGAIN) from None
    return None


def _blocked_by(c: Change, ctx: ApplyContext) -> str | None:
    key = c.after if c.after is not None else c.before
    assert isinstance(key, ApiKey)
    waits = workspace_dependency(c, ctx)
    if waits is not None:
        return waits
    if ctx.not_applied(ResourceType.USER, key.owner):
        return f"depends on inviting {key.owner}, which did not succeed"
    return None


# --- text -------------------------------------------------------------------------


def _delivery(change: Change) -> tuple[str, str, bool] | None:
    """Where a made key's secret goes, whose it is, and whether ``sink:`` chose the name."""
    k = change.after
    if not isinstance(k, ApiKey) or not k.sink_name:
        return None
    chosen = k.sink_name != default_name(k.workspace, api_key_slug(k.name))
    return k.sink_name, f"API key {k.name} ({k.workspace})", chosen


def create_line(change: Change, _: Counter[str]) -> str:
    """``api key ci-deploy (notetaker-production) of svc-ci@acme.com``."""
    k = change.after
    assert isinstance(k, ApiKey)
    # The sink name is shown: the config chooses which secret of the sink's store a key overwrites.
    sink = f", delivered as {terminal(k.sink_name)}" if k.sink_name else ""
    return f"api key {terminal(k.name)} ({terminal(k.workspace)}) of {terminal(k.owner)}{sink}"


def update_line(change: Change, _: Counter[str]) -> str:
    """``rotate api key ci-deploy (notetaker-production): 97 days old, rotate_every 90d``."""
    k = change.after
    assert isinstance(k, ApiKey)
    sink = f", delivered as {terminal(k.sink_name)}" if k.sink_name else ""
    return f"rotate api key {terminal(k.name)} ({terminal(k.workspace)}): {terminal(k.note or '')}{sink}"


def delete_line(change: Change, _: Counter[str]) -> str:
    """``disable api key ci-deploy (notetaker-production) ak_1234abcd of bob@acme.com: replaced …``."""
    k = change.before
    assert isinstance(k, ApiKey)
    return (
        f"disable api key {terminal(k.name)} ({terminal(k.workspace)}) {terminal(k.prefix or k.id or '')} "
        f"of {terminal(k.owner)}: {terminal(k.note or '')}"
    )


KIND = ResourceKind(
    type=TYPE,
    model=ApiKey,
    field="api_keys",
    heading="API keys",
    identity=lambda k: (k.workspace, k.name, k.id or ""),
    normalized_keys=lambda keys: True,
    text_key=key_text,
    of=lambda state: state.api_keys,
    ignored=lambda k, ignore: ignore.user(k.owner) or ignore.workspace(k.workspace),
    read=_read,
    from_plain=_from_plain,
    material=_material,
    diff=_diff,
    phase=_phase,
    replay=_replay,
    handlers={Action.CREATE: _make, Action.UPDATE: _make, Action.DELETE: _disable},
    lines={Action.CREATE: create_line, Action.UPDATE: update_line, Action.DELETE: delete_line},
    warning_texts={KEY_IMPACT: impact_text, ROTATION_WAITS: _waits_text, UNMANAGED: _unmanaged_text},
    blocked_by=_blocked_by,
    makes_secret=lambda change: change.action is not Action.DELETE,
    delivery=_delivery,
)

__all__ = [
    "API_KEYS",
    "KEY_IMPACT",
    "KIND",
    "api_key_path",
    "impact_text",
    "is_own",
    "is_scheduled_rotation",
    "key_text",
]
