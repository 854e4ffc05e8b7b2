"""Google login groups and their logins, on Recall.ai's real v2 API (``platforms.google_login_groups``).

A group (``name``, ``login_mode``) holds the Google accounts that signed-in
Google Meet bots log in with. The API nests a group's logins in it, so one
listing per instance (``GET /api/v2/google-login-groups/``) reads both, and the
logins are part of their group's change: one line per group, naming what
happens to each login. It speaks ``RECALL_V2`` with each instance's own key.

* A login is identified by its email within its group. Its PEM private key
  and certificate are secret references; the API returns them in clear, and
  the reader keeps only digests (``base.read_secret_digest``), so they are
  compared in memory and never stored or shown.
* Create: the group, then each login (``POST /api/v2/google-logins/``).
  Update: the group's ``login_mode`` by PATCH; each login created, patched
  (its changed fields and secrets only) or deleted. Delete: the group (the
  API deletes its logins with it).
* Groups are managed for an instance whose config gives
  ``platforms.google_login_groups`` (in its workspace or environment): there,
  groups not declared are removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from provisioner.errors import NotFoundError
from provisioner.escape import terminal
from provisioner.model import LOGIN_SECRETS, GoogleLogin, GoogleLoginGroup, SecretDigest, SecretRef
from provisioner.plan.change import Action, Change
from provisioner.resources.base import (
    RECALL_V2,
    ApplyContext,
    DiffContext,
    Diffed,
    Phase,
    Reading,
    ResourceKind,
    ResourceType,
    convert,
    keyed_replay,
    read_secret_digest,
    sorted_items,
    workspace_dependency,
)

TYPE = ResourceType.GOOGLE_LOGIN_GROUP
GROUPS = "/google-login-groups/"
LOGINS = "/google-logins/"
MANAGED = "google_login_groups"  # the key in ``Workspace.manages``


def group_key(workspace: str, name: str) -> str:
    """The text key of a group change: ``"<workspace> <name>"``."""
    return f"{workspace} {name}"


# --- wire shape -------------------------------------------------------------------


def _login(data: Mapping[str, Any]) -> GoogleLogin:
    login_id = str(data["id"])
    return GoogleLogin(
        email=str(data["email"]).lower(),
        sso_v2_workspace_domain=str(data["sso_v2_workspace_domain"]),
        is_active=bool(data.get("is_active", True)),
        digests=tuple(
            (name, read_secret_digest(str(data[name]), f"google-login:{login_id}:{name}"))
            for name in LOGIN_SECRETS
        ),
        id=login_id,
    )


def parse(data: Mapping[str, Any], workspace: str) -> GoogleLoginGroup:
    """One listed group with its logins; the logins' secrets become digests here."""

    def build() -> GoogleLoginGroup:
        logins = sorted((_login(raw) for raw in data.get("logins") or ()), key=lambda x: x.email)
        return GoogleLoginGroup(
            workspace=workspace,
            name=str(data["name"]),
            login_mode=str(data["login_mode"]),
            logins=tuple(logins),
            id=str(data["id"]),
        )

    return convert("Google login group", GROUPS, build)


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listings = {
        workspace: reading.submit(client.list_all, GROUPS)
        for workspace, client in sorted(reading.workspace_clients().items())
    }

    def finish() -> list[Any]:
        return [parse(raw, workspace) for workspace, listing in listings.items() for raw in listing.result()]

    return finish


def _login_from_plain(d: Mapping[str, Any]) -> GoogleLogin:
    return GoogleLogin(
        email=str(d["email"]),
        sso_v2_workspace_domain=str(d["sso_v2_workspace_domain"]),
        is_active=bool(d.get("is_active", True)),
        secrets=tuple((str(k), SecretRef(**v)) for k, v in d.get("secrets") or ()),
        digests=tuple((str(k), SecretDigest(**v)) for k, v in d.get("digests") or ()),
        write=tuple(d.get("write") or ()),
        id=d.get("id"),
    )


def _from_plain(d: Mapping[str, Any]) -> GoogleLoginGroup:
    return GoogleLoginGroup(
        workspace=str(d["workspace"]),
        name=str(d["name"]),
        login_mode=str(d.get("login_mode", "always")),
        logins=tuple(_login_from_plain(x) for x in d.get("logins") or ()),
        id=d.get("id"),
    )


def _material(g: GoogleLoginGroup) -> dict[str, Any]:
    # What a change does: never a value, never a digest.
    return {
        "workspace": g.workspace,
        "name": g.name,
        "login_mode": g.login_mode,
        "logins": [
            {
                "email": x.email,
                "domain": x.sso_v2_workspace_domain,
                "is_active": x.is_active,
                "secrets": [[n, str(ref)] for n, ref in x.secrets],
                "write": list(x.write),
            }
            for x in g.logins
        ],
    }


# --- diff rules -------------------------------------------------------------------


def _managed(ctx: DiffContext, workspace: str) -> bool:
    declared = ctx.desired.workspaces.get(workspace)
    return declared is not None and MANAGED in declared.manages


def _with_writes(before: GoogleLogin | None, wanted: GoogleLogin, ctx: DiffContext) -> GoogleLogin:
    """``wanted`` with ``write`` naming the secrets the server's digests do not match."""
    digests = dict(before.digests) if before is not None else {}
    write = tuple(
        name
        for name, ref in wanted.secrets
        if name not in digests or not ctx.secrets.matches(ref, digests[name])
    )
    return replace(wanted, write=write, id=before.id if before is not None else None)


def _login_changed(before: GoogleLogin, after: GoogleLogin) -> bool:
    return bool(after.write) or (before.sso_v2_workspace_domain, before.is_active) != (
        after.sso_v2_workspace_domain,
        after.is_active,
    )


def _diff(ctx: DiffContext) -> Diffed:
    current, desired = ctx.current.google_login_groups, ctx.desired.google_login_groups
    changes: list[Change] = []
    for key, wanted in sorted_items(desired, desired.keys() - current.keys()):
        after = replace(wanted, logins=tuple(_with_writes(None, x, ctx) for x in wanted.logins))
        changes.append(Change(Action.CREATE, TYPE, group_key(*key), None, after))
    for key, wanted in sorted_items(desired, desired.keys() & current.keys()):
        before = current[key]
        old = {x.email: x for x in before.logins}
        logins = tuple(_with_writes(old.get(x.email), x, ctx) for x in wanted.logins)
        new = {x.email: x for x in logins}
        differs = (
            before.login_mode != wanted.login_mode
            or old.keys() != new.keys()
            or any(_login_changed(old[e], new[e]) for e in old.keys() & new.keys())
        )
        if differs:
            after = replace(wanted, logins=logins, id=before.id)
            changes.append(Change(Action.UPDATE, TYPE, group_key(*key), before, after))
    for key, before in sorted_items(current, current.keys() - desired.keys()):
        if _managed(ctx, before.workspace):
            changes.append(Change(Action.DELETE, TYPE, group_key(*key), before, None))
    return Diffed(changes=tuple(changes))


def _phase(change: Change) -> Phase:
    return Phase.CONFIGURE


# --- API calls --------------------------------------------------------------------


def _login_body(login: GoogleLogin, ctx: ApplyContext, *, full: bool) -> dict[str, Any]:
    refs = dict(login.secrets)
    body: dict[str, Any] = {name: ctx.secret_value(refs[name]) for name in login.write}
    if full:
        body |= {"email": login.email, "sso_v2_workspace_domain": login.sso_v2_workspace_domain}
    body["is_active"] = login.is_active
    return body


def _create(c: Change, ctx: ApplyContext) -> str | None:
    group = c.after
    assert isinstance(group, GoogleLoginGroup)
    client = ctx.client_for(group.workspace)
    made = client.post(
        GROUPS, {"name": group.name, "login_mode": group.login_mode}, idempotency_key=ctx.idempotency_key(c)
    )
    group_id = convert("Google login group", GROUPS, lambda: str(made["id"]))
    ctx.learn_id(TYPE, c.key, group_id)
    for login in group.logins:
        body = _login_body(login, ctx, full=True) | {"group_id": group_id}
        client.post(LOGINS, body, idempotency_key=f"{ctx.idempotency_key(c)}:{login.email}")
    return None


def _update(c: Change, ctx: ApplyContext) -> str | None:
    before, after = c.before, c.after
    assert isinstance(before, GoogleLoginGroup) and isinstance(after, GoogleLoginGroup) and before.id
    client = ctx.client_for(after.workspace)
    key = ctx.idempotency_key(c)
    if before.login_mode != after.login_mode:
        client.patch(
            f"{GROUPS}{before.id}/", {"login_mode": after.login_mode}, if_match=None, idempotency_key=key
        )
    old = {x.email: x for x in before.logins}
    for login in after.logins:
        was = old.pop(login.email, None)
        if was is None:
            body = _login_body(login, ctx, full=True) | {"group_id": before.id}
            client.post(LOGINS, body, idempotency_key=f"{key}:{login.email}")
        elif _login_changed(was, login) and was.id:
            body = _login_body(login, ctx, full=False)
            if login.sso_v2_workspace_domain != was.sso_v2_workspace_domain:
                body["sso_v2_workspace_domain"] = login.sso_v2_workspace_domain
            client.patch(f"{LOGINS}{was.id}/", body, if_match=None, idempotency_key=f"{key}:{login.email}")
    for gone in old.values():
        if gone.id:
            try:
                client.delete(f"{LOGINS}{gone.id}/", if_match=None)
            except NotFoundError:
                pass
    return None


def _delete(c: Change, ctx: ApplyContext) -> str | None:
    before = c.before
    assert isinstance(before, GoogleLoginGroup) and before.id
    try:
        ctx.client_for(before.workspace).delete(f"{GROUPS}{before.id}/", if_match=None)
    except NotFoundError:
        return "already gone"
    return None


# --- text -------------------------------------------------------------------------


def _what(g: GoogleLoginGroup) -> str:
    return f"Google login group {terminal(g.name)} ({terminal(g.workspace)})"


def _login_text(x: GoogleLogin) -> str:
    return f"{terminal(x.email)} ({'active' if x.is_active else 'inactive'})"


def create_line(change: Change, _: Counter[str]) -> str:
    """``Google login group bots (notetaker-production): always; logins a@x.io (active), ...``."""
    g = change.after
    assert isinstance(g, GoogleLoginGroup)
    logins = ", ".join(_login_text(x) for x in g.logins) or "no logins"
    return f"{_what(g)}: {terminal(g.login_mode)}; logins {logins}"


def update_line(change: Change, _: Counter[str]) -> str:
    """``Google login group bots (...): login b@x.io active → inactive, login c@x.io added``."""
    before, after = change.before, change.after
    assert isinstance(before, GoogleLoginGroup) and isinstance(after, GoogleLoginGroup)
    parts = []
    if before.login_mode != after.login_mode:
        parts.append(f"login_mode {terminal(before.login_mode)} → {terminal(after.login_mode)}")
    old = {x.email: x for x in before.logins}
    for login in after.logins:
        was = old.pop(login.email, None)
        if was is None:
            parts.append(f"login {_login_text(login)} added")
            continue
        if was.is_active != login.is_active:
            state = "active → inactive" if was.is_active else "inactive → active"
            parts.append(f"login {terminal(login.email)} {state}")
        if was.sso_v2_workspace_domain != login.sso_v2_workspace_domain:
            parts.append(f"login {terminal(login.email)} domain → {terminal(login.sso_v2_workspace_domain)}")
        parts += [f"login {terminal(login.email)} {terminal(name)} changed" for name in login.write]
    parts += [f"login {terminal(email)} removed" for email in old]
    return f"{_what(after)}: {', '.join(parts)}"


def delete_line(change: Change, _: Counter[str]) -> str:
    """``Google login group bots (notetaker-staging)`` (its logins go with it)."""
    assert isinstance(change.before, GoogleLoginGroup)
    return f"{_what(change.before)} and its {len(change.before.logins)} logins"


KIND = ResourceKind(
    type=TYPE,
    model=GoogleLoginGroup,
    field="google_login_groups",
    heading="Google login groups (Recall.ai v2 API)",
    identity=lambda g: g.key,
    normalized_keys=lambda keys: True,
    text_key=lambda g: group_key(g.workspace, g.name),
    of=lambda state: state.google_login_groups,
    ignored=lambda g, ignore: bool(ignore.workspace(g.workspace)),
    read=_read,
    from_plain=_from_plain,
    material=_material,
    diff=_diff,
    phase=_phase,
    replay=keyed_replay(TYPE),
    handlers={Action.CREATE: _create, Action.UPDATE: _update, Action.DELETE: _delete},
    lines={Action.CREATE: create_line, Action.UPDATE: update_line, Action.DELETE: delete_line},
    warning_texts={},
    blocked_by=workspace_dependency,
    api=RECALL_V2,
)

__all__ = ["GROUPS", "KIND", "LOGINS", "group_key", "parse"]
