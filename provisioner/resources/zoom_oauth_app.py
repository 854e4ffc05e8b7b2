"""The Zoom OAuth app of a workspace instance, on Recall.ai's real v2 API (``platforms.zoom``).

Identified by the instance's name: ``platforms.zoom`` declares one app per
instance. It speaks ``RECALL_V2`` with each instance's own key.

* Wire shape (``schemas/recall-v2.yaml``): ``GET /api/v2/zoom-oauth-apps/``
  lists the key's workspace's apps with ``kind``, ``client_id``,
  ``client_secret``, ``webhook_secret`` (in clear) and
  ``webhook_last_validation``; ``POST`` creates; ``PATCH`` on
  ``/zoom-oauth-apps/{id}/`` takes ``client_secret`` and ``webhook_secret``;
  ``DELETE`` removes.
* Secrets: the reader turns each secret the API returns into a digest at once
  (``base.read_secret_digest``) and drops the value; the diff compares the
  config's value with that digest in memory. No value is in a state, change,
  plan, record or message.
* Diff: a changed ``webhook_secret`` is an in-place PATCH. A changed
  ``client_id``, ``kind`` or ``client_secret`` *replaces* the app (a new app,
  then the old one deleted), as issue 22 asks: a new client secret means a new
  OAuth app on Zoom's side, and the replacement gives it a new webhook URL,
  ``https://{region}.recall.ai/api/v2/zoom-oauth-apps/{id}/webhook``, to set
  in the Zoom app's event subscription. The plan says so, and the apply names
  the new URL. An instance whose ``platforms`` section the config manages
  loses apps it does not declare.
* Status: an app whose webhook Zoom never validated
  (``webhook_last_validation`` null) is a warning in plan, drift and review.

The reference's PATCH lists ``client_secret`` too
(reference/zoom_oauth_apps_partial_update); the tool does not use it, so that
a client secret change is always reviewed as the replacement it is on Zoom's
side, with the webhook URL it moves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from provisioner.errors import NotFoundError
from provisioner.escape import terminal
from provisioner.model import SecretDigest, SecretRef, ZoomApp
from provisioner.plan.change import Action, Change, PlanWarning
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

TYPE = ResourceType.ZOOM_OAUTH_APP
ZOOM_APPS = "/zoom-oauth-apps/"
SECRETS = ("client_secret", "webhook_secret")
# A new client secret is a new app (issue 22); only the webhook secret is patched in place.
REPLACING_SECRET = "client_secret"
NOT_VALIDATED = "zoom-webhook-not-validated"
PROVIDER = "zoom"  # the name ``policy.ignore.credentials`` globs match


def app_path(app_id: str) -> str:
    """The path of one app, relative to the v2 base URL."""
    return f"{ZOOM_APPS}{app_id}/"


def webhook_url(v2_base: str, app_id: str) -> str:
    """Where Zoom must send the events of app ``app_id`` (``v2_base`` ends in ``/api/v2``)."""
    return f"{v2_base.rstrip('/')}{ZOOM_APPS}{app_id}/webhook"


# --- wire shape -------------------------------------------------------------------


def parse(data: Mapping[str, Any], workspace: str, v2_base: str, primary: bool = True) -> ZoomApp:
    """One listed app; its secrets become digests here and the values go no further."""

    def build() -> ZoomApp:
        app_id = str(data["id"])
        return ZoomApp(
            workspace=workspace,
            client_id=str(data["client_id"]),
            kind=str(data["kind"]),
            digests=tuple(
                (name, read_secret_digest(str(data[name]), f"zoom:{app_id}:{name}")) for name in SECRETS
            ),
            id=app_id,
            webhook_last_validation=data.get("webhook_last_validation"),
            webhook_url=webhook_url(v2_base, app_id),
            primary=primary,
        )

    return convert("Zoom OAuth app", ZOOM_APPS, build)


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listings = {
        workspace: (client, reading.submit(client.list_all, ZOOM_APPS))
        for workspace, client in sorted(reading.workspace_clients().items())
    }

    def finish() -> list[Any]:
        apps: list[ZoomApp] = []
        for workspace, (client, listing) in listings.items():
            # The oldest app is the instance's; any other is an extra (drift).
            ordered = sorted(
                listing.result(), key=lambda raw: (str(raw.get("created_at")), str(raw.get("id")))
            )
            for n, raw in enumerate(ordered):
                apps.append(parse(raw, workspace, client.base_url, primary=n == 0))
        return apps

    return finish


def _from_plain(d: Mapping[str, Any]) -> ZoomApp:
    return ZoomApp(
        workspace=str(d["workspace"]),
        client_id=str(d["client_id"]),
        kind=str(d.get("kind", "account_level")),
        secrets=tuple((str(k), SecretRef(**v)) for k, v in d.get("secrets") or ()),
        digests=tuple((str(k), SecretDigest(**v)) for k, v in d.get("digests") or ()),
        write=tuple(d.get("write") or ()),
        id=d.get("id"),
        webhook_last_validation=d.get("webhook_last_validation"),
        webhook_url=d.get("webhook_url"),
        replacement=bool(d.get("replacement", False)),
        replaced_secrets=tuple(d.get("replaced_secrets") or ()),
        primary=bool(d.get("primary", True)),
    )


def _material(z: ZoomApp) -> dict[str, Any]:
    # What a change does: never a value, never a digest.
    return {
        "workspace": z.workspace,
        "client_id": z.client_id,
        "kind": z.kind,
        "secrets": [[name, str(ref)] for name, ref in z.secrets],
        "write": list(z.write),
        "replacement": z.replacement,
        "replaced_secrets": list(z.replaced_secrets),
    }


# --- diff rules -------------------------------------------------------------------


def _managed(ctx: DiffContext, workspace: str) -> bool:
    declared = ctx.desired.workspaces.get(workspace)
    return declared is not None and "platforms" in declared.manages


def _changed_secrets(before: ZoomApp, after: ZoomApp, ctx: DiffContext) -> tuple[str, ...]:
    digests = dict(before.digests)
    return tuple(
        name
        for name, ref in after.secrets
        if name not in digests or not ctx.secrets.matches(ref, digests[name])
    )


def _replaces(before: ZoomApp, wanted: ZoomApp, changed_secrets: tuple[str, ...]) -> bool:
    """Whether the change needs a new app: what PATCH is not used for changed."""
    moved = (before.client_id, before.kind) != (wanted.client_id, wanted.kind)
    return moved or REPLACING_SECRET in changed_secrets


def _replacing(changed_secrets: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in changed_secrets if n == REPLACING_SECRET)


def _diff(ctx: DiffContext) -> Diffed:
    current, desired = ctx.current.zoom_apps, ctx.desired.zoom_apps
    changes: list[Change] = []
    for ws, after in sorted_items(desired, desired.keys() - current.keys()):
        changes.append(Change(Action.CREATE, TYPE, ws, None, replace(after, write=SECRETS)))
    for ws, wanted in sorted_items(desired, desired.keys() & current.keys()):
        before = current[ws]
        write = _changed_secrets(before, wanted, ctx)
        if _replaces(before, wanted, write):
            after = replace(wanted, write=SECRETS, replacement=True, replaced_secrets=_replacing(write))
            changes.append(Change(Action.UPDATE, TYPE, ws, before, after))
        elif write:
            changes.append(Change(Action.UPDATE, TYPE, ws, before, replace(wanted, write=write)))
    for key, before in sorted_items(current, current.keys() - desired.keys()):
        if _managed(ctx, before.workspace):
            changes.append(Change(Action.DELETE, TYPE, key, before, None))
    changed = {c.key for c in changes if c.action is not Action.CREATE}
    warnings = [
        PlanWarning(
            NOT_VALIDATED, TYPE, app.workspace, {"client_id": app.client_id, "url": app.webhook_url or ""}
        )
        for key, app in sorted(current.items())
        if app.primary and app.webhook_last_validation is None and key not in changed
    ]
    return Diffed(changes=tuple(changes), warnings=tuple(warnings))


def _not_validated_text(w: PlanWarning) -> str:
    return (
        f"the Zoom OAuth app {w.params['client_id']} of {w.key} has never validated its webhook: "
        f"Zoom sends it no events until its event subscription points at {w.params['url']}"
    )


def _phase(change: Change) -> Phase:
    return Phase.CONFIGURE


# --- API calls --------------------------------------------------------------------


def _secret_body(app: ZoomApp, ctx: ApplyContext, names: tuple[str, ...]) -> dict[str, str]:
    refs = dict(app.secrets)
    return {name: ctx.secret_value(refs[name]) for name in names}


def _post(change: Change, app: ZoomApp, ctx: ApplyContext) -> str:
    client = ctx.client_for(app.workspace)
    body = {"kind": app.kind, "client_id": app.client_id, **_secret_body(app, ctx, SECRETS)}
    made = client.post(ZOOM_APPS, body, idempotency_key=ctx.idempotency_key(change))
    app_id = convert("Zoom OAuth app", ZOOM_APPS, lambda: str(made["id"]))
    ctx.learn_id(TYPE, change.key, app_id)
    return webhook_url(client.base_url, app_id)


def _create(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.after, ZoomApp)
    url = _post(c, c.after, ctx)
    return f"point the Zoom app's event subscription at {url}"


def _update(c: Change, ctx: ApplyContext) -> str | None:
    before, after = c.before, c.after
    assert isinstance(before, ZoomApp) and isinstance(after, ZoomApp) and before.id
    client = ctx.client_for(after.workspace)
    if not after.replacement:
        body = _secret_body(after, ctx, after.write)
        client.patch(app_path(before.id), body, if_match=None, idempotency_key=ctx.idempotency_key(c))
        return None
    # New first: if it fails, the old app still works.
    url = _post(c, after, ctx)
    try:
        client.delete(app_path(before.id), if_match=None)
    except NotFoundError:
        pass
    return f"replaced; point the Zoom app's event subscription at {url} (the old URL no longer answers)"


def _delete(c: Change, ctx: ApplyContext) -> str | None:
    before = c.before
    assert isinstance(before, ZoomApp) and before.id
    try:
        ctx.client_for(before.workspace).delete(app_path(before.id), if_match=None)
    except NotFoundError:
        return "already gone"
    return None


# --- text -------------------------------------------------------------------------


def _what(z: ZoomApp) -> str:
    return f"Zoom OAuth app {terminal(z.client_id)} ({terminal(z.workspace)})"


def create_line(change: Change, _: Counter[str]) -> str:
    """``Zoom OAuth app abc (notetaker-production): account_level, client_secret from env ZOOM_SECRET``."""
    z = change.after
    assert isinstance(z, ZoomApp)
    parts = [terminal(z.kind)] + [f"{terminal(name)} from {terminal(str(ref))}" for name, ref in z.secrets]
    return f"{_what(z)}: {', '.join(parts)}; then point Zoom's event subscription at its new webhook URL"


def update_line(change: Change, _: Counter[str]) -> str:
    """``Zoom OAuth app abc (notetaker-production): webhook_secret changed``, or a replacement."""
    before, after = change.before, change.after
    assert isinstance(before, ZoomApp) and isinstance(after, ZoomApp)
    if not after.replacement:
        return f"{_what(after)}: {', '.join(f'{terminal(n)} changed' for n in after.write)}"
    what = []
    if before.client_id != after.client_id:
        what.append(f"client_id {terminal(before.client_id)} → {terminal(after.client_id)}")
    if before.kind != after.kind:
        what.append(f"kind {terminal(before.kind)} → {terminal(after.kind)}")
    refs = dict(after.secrets)
    for name in after.replaced_secrets:
        what.append(f"{terminal(name)} changed (new value from {terminal(str(refs[name]))})")
    return (
        f"{_what(after)}: REPLACE ({', '.join(what)}; a new app, the old one deleted). "
        f"Its webhook URL changes from {terminal(before.webhook_url or '(unknown)')} to the new app's "
        "…/api/v2/zoom-oauth-apps/<new id>/webhook, which apply prints: set it in the Zoom app"
    )


def delete_line(change: Change, _: Counter[str]) -> str:
    """``Zoom OAuth app abc (notetaker-staging)``."""
    assert isinstance(change.before, ZoomApp)
    return _what(change.before)


def _ignored(z: ZoomApp, ignore: Any) -> bool:
    return bool(ignore.workspace(z.workspace) or ignore.credential(PROVIDER))


KIND = ResourceKind(
    type=TYPE,
    model=ZoomApp,
    field="zoom_apps",
    heading="Zoom OAuth apps (Recall.ai v2 API)",
    identity=lambda z: z.key,
    normalized_keys=lambda keys: True,
    text_key=lambda z: z.key,
    of=lambda state: state.zoom_apps,
    ignored=_ignored,
    read=_read,
    from_plain=_from_plain,
    material=_material,
    diff=_diff,
    phase=_phase,
    replay=keyed_replay(TYPE),
    handlers={Action.CREATE: _create, Action.UPDATE: _update, Action.DELETE: _delete},
    lines={Action.CREATE: create_line, Action.UPDATE: update_line, Action.DELETE: delete_line},
    warning_texts={NOT_VALIDATED: _not_validated_text},
    blocked_by=workspace_dependency,
    api=RECALL_V2,
)

__all__ = ["KIND", "ZOOM_APPS", "app_path", "parse", "webhook_url"]
