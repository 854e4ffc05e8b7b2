"""The webhook endpoint: where a workspace instance sends events, identified by ``(workspace, url)``.

* Wire shape: ``GET /webhook_endpoints/`` (one organization-wide listing:
  pages, not workspaces), objects ``id``, ``workspace_id``, ``url``,
  ``events``, ``enabled``, ``etag``; ``POST`` creates one and answers its
  signing secret once; ``PATCH`` and ``DELETE`` on ``/webhook_endpoints/{id}/``;
  ``POST /webhook_endpoints/{id}/rotate_secret/`` makes a new secret.
* Diff: an endpoint is created, updated (events, enabled) or removed; a
  changed URL is a different endpoint. Where its signing secret is
  delivered is desired state too: the server records the destination name
  (``delivered_to``), and a different name in the config is an update that
  rotates the secret and delivers the new one there (the old secret cannot
  be read back to move it). Endpoints of a workspace instance
  whose config does not mention webhooks are left alone, and so are those
  ``policy.ignore.webhooks`` matches.
* Apply: the signing secret goes to the operator's secret sink before the
  create counts as applied. If it cannot be delivered the endpoint is
  removed again: an endpoint whose secret nobody has would sign events no
  one can check. A create answered from the idempotency record (a retry
  after a lost answer) carries no secret, so a new one is made by rotation.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from provisioner.errors import ConflictError, PreconditionFailedError, ProvisionerError
from provisioner.escape import terminal
from provisioner.model import (
    Webhook,
    is_production_environment,  # one definition of "production"
)
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
    delete,
    keyed_replay,
    sorted_items,
    workspace_dependency,
    workspace_id,
)
from provisioner.secrets.names import default_name, webhook_slug

log = logging.getLogger("provisioner.api")

TYPE = ResourceType.WEBHOOK
WEBHOOKS = "/webhook_endpoints/"
SECTION = "webhooks"

SHARED_URL = "webhook-shared-across-environments"


def webhook_key(workspace: str, url: str) -> str:
    """The text key of a webhook change: ``"<workspace> <url>"``."""
    return f"{workspace} {url}"


def webhook_path(webhook_id: str) -> str:
    """The path of one webhook endpoint."""
    return f"{WEBHOOKS}{webhook_id}/"


# --- wire shape -------------------------------------------------------------------


def webhook_body(hook: Webhook, workspace_id: str) -> dict[str, Any]:
    """The body of ``POST /webhook_endpoints/``."""
    return {
        "workspace_id": workspace_id,
        "url": hook.url,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "delivered_to": hook.sink_name,
    }


def _parse(data: dict[str, Any], names: Mapping[str, str]) -> Webhook | None:
    """An endpoint of the listing; None when its workspace is not in the workspace listing."""
    name = names.get(str(data.get("workspace_id")))
    if name is None:
        log.warning("skipping webhook endpoint %s: its workspace is not in the listing", data.get("id"))
        return None
    return convert(
        "webhook endpoint",
        WEBHOOKS,
        lambda: Webhook(
            workspace=name,
            url=str(data["url"]),
            events=tuple(sorted({str(e) for e in data["events"]})),
            enabled=bool(data["enabled"]),
            sink_name=None if data.get("delivered_to") is None else str(data["delivered_to"]),
            id=str(data["id"]),
            etag=data.get("etag"),
        ),
    )


def _from_plain(d: Mapping[str, Any]) -> Webhook:
    return Webhook(**{**d, "events": tuple(d.get("events") or ())})


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listing = reading.submit(reading.client.list_all, WEBHOOKS)

    def finish() -> list[Any]:
        names = {str(w.id): w.name for w in reading.result(ResourceType.WORKSPACE)}
        return [h for h in (_parse(raw, names) for raw in listing.result()) if h is not None]

    return finish


# --- diff rules -------------------------------------------------------------------


def _material(h: Webhook) -> dict[str, Any]:
    return {
        "workspace": h.workspace,
        "url": h.url,
        "events": list(h.events),
        "enabled": h.enabled,
        "sink": h.sink_name,
    }


def _moves_secret(change: Change) -> bool:
    """Whether applying ``change`` makes a signing secret: a create, or a new destination name."""
    if change.action is Action.CREATE:
        return True
    before, after = change.before, change.after
    return (
        change.action is Action.UPDATE
        and isinstance(before, Webhook)
        and isinstance(after, Webhook)
        and before.sink_name != after.sink_name
    )


def _managed(ctx: DiffContext, workspace: str) -> bool:
    declared = ctx.desired.workspaces.get(workspace)
    return declared is not None and SECTION in declared.manages


def _diff(ctx: DiffContext) -> Diffed:
    current, desired = ctx.current.webhooks, ctx.desired.webhooks
    changes: list[Change] = []
    for (ws, url), after in sorted_items(desired, desired.keys() - current.keys()):
        changes.append(Change(Action.CREATE, TYPE, webhook_key(ws, url), None, after))
    for key, after in sorted_items(desired, desired.keys() & current.keys()):
        before = current[key]
        if (before.events, before.enabled, before.sink_name) != (
            after.events,
            after.enabled,
            after.sink_name,
        ):
            changes.append(Change(Action.UPDATE, TYPE, webhook_key(*key), before, after))
    for (ws, url), before in sorted_items(current, current.keys() - desired.keys()):
        if _managed(ctx, ws):
            changes.append(Change(Action.DELETE, TYPE, webhook_key(ws, url), before, None))
    return Diffed(changes=tuple(changes), warnings=tuple(_shared_urls(ctx)))


def _shared_urls(ctx: DiffContext) -> list[PlanWarning]:
    """A production endpoint's URL that an instance of another environment also uses."""
    envs: dict[str, set[str]] = defaultdict(set)
    for ws, url in ctx.desired.webhooks:
        declared = ctx.desired.workspaces.get(ws)
        envs[url].add((declared.environment if declared else None) or "")
    warnings = []
    for url in sorted(envs):
        names = envs[url]
        if len(names) > 1 and any(is_production_environment(e) for e in names):
            warnings.append(PlanWarning(SHARED_URL, TYPE, url, {"environments": ", ".join(sorted(names))}))
    return warnings


def _shared_text(w: PlanWarning) -> str:
    return (
        f"webhook URL {w.key} receives events from the environments {w.params['environments']}: "
        "production events then reach a non-production receiver (or the reverse). Give each "
        "environment its own URL, e.g. with {environment} in the URL."
    )


def _phase(change: Change) -> Phase:
    return Phase.CONFIGURE


# --- API calls --------------------------------------------------------------------


def _create(c: Change, ctx: ApplyContext) -> str | None:
    hook = c.after
    assert isinstance(hook, Webhook)
    body = webhook_body(hook, workspace_id(ctx, hook.workspace))
    try:
        made = ctx.client.post(WEBHOOKS, body, idempotency_key=ctx.idempotency_key(c))
    except ConflictError:
        # Someone made it meanwhile: its secret is theirs, never rotated from under them.
        raise Failed(RUN_PLAN_AGAIN) from None
    hook_id = convert("webhook endpoint", WEBHOOKS, lambda: str(made["id"]))
    ctx.learn_id(TYPE, c.key, hook_id)
    secret = made.get("secret")
    note = None
    if not isinstance(secret, str) or not secret:
        # A replayed answer never repeats the secret: make a new one to deliver.
        rotated = ctx.client.post(
            f"{webhook_path(hook_id)}rotate_secret/",
            {"delivered_to": hook.sink_name},
            idempotency_key=ctx.idempotency_key(c) + ":rotate",
        )
        secret = convert("webhook endpoint", WEBHOOKS, lambda: str(rotated["secret"]))
        note = "made by an earlier attempt; its secret was rotated"
    try:
        where = ctx.deliver(hook.workspace, f"webhook {hook.url}", "WEBHOOK", secret, hook.sink_name)
    except ProvisionerError as e:
        _undo(ctx, hook_id)
        raise Failed(
            f"its signing secret could not be delivered ({e}); the endpoint was removed again, so "
            "no endpoint is left whose secret nobody has. Fix the secret sink and apply again"
        ) from None
    return f"signing secret delivered to {where}" + (f"; {note}" if note else "")


def _undo(ctx: ApplyContext, hook_id: str) -> None:
    try:
        delete(ctx.client, webhook_path(hook_id), None)
    except (ProvisionerError, Failed) as e:
        log.error("removing webhook endpoint %s after a failed delivery failed too: %s", hook_id, e)


def _update(c: Change, ctx: ApplyContext) -> str | None:
    before, after = c.before, c.after
    assert isinstance(before, Webhook) and isinstance(after, Webhook) and before.id
    etag = before.etag
    if (before.events, before.enabled) != (after.events, after.enabled):
        body = {"events": list(after.events), "enabled": after.enabled}
        try:
            etag = ctx.client.patch(webhook_path(before.id), body, if_match=before.etag).get("etag")
        except PreconditionFailedError:
            raise Failed(RUN_PLAN_AGAIN) from None
    if before.sink_name == after.sink_name:
        return None
    return _redeliver(c, ctx, before.id, etag)


def _redeliver(c: Change, ctx: ApplyContext, hook_id: str, etag: Any) -> str:
    """Rotate the signing secret and deliver the new one under the config's destination name.

    The old secret cannot be read back, so a new destination gets a new
    secret; the endpoint signs with it at once.
    """
    hook = c.after
    assert isinstance(hook, Webhook)
    try:
        rotated = ctx.client.post(
            f"{webhook_path(hook_id)}rotate_secret/",
            {"delivered_to": hook.sink_name},
            idempotency_key=ctx.idempotency_key(c) + ":rotate",
            if_match=etag,
        )
    except PreconditionFailedError:
        raise Failed(RUN_PLAN_AGAIN) from None
    secret = rotated.get("secret")
    if not isinstance(secret, str) or not secret:
        raise Failed("the rotation was answered from an earlier attempt without its secret; run apply again")
    try:
        where = ctx.deliver(hook.workspace, f"webhook {hook.url}", "WEBHOOK", secret, hook.sink_name)
    except ProvisionerError as e:
        raise Failed(
            f"its new signing secret could not be delivered ({e}); rotate it again by applying once the "
            "secret sink is fixed (the next plan shows the rotation)"
        ) from None
    return f"signing secret rotated and delivered to {where}"


def _delete(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.before, Webhook) and c.before.id
    return delete(ctx.client, webhook_path(c.before.id), c.before.etag)


# --- text -------------------------------------------------------------------------


def _delivery(change: Change) -> tuple[str, str, bool] | None:
    """Where a signing secret goes, whose it is, and whether ``sink:`` chose the name."""
    h = change.after
    if not isinstance(h, Webhook) or not h.sink_name:
        return None
    chosen = h.sink_name != default_name(h.workspace, webhook_slug(h.url, urlsplit(h.url).hostname))
    return h.sink_name, f"signing secret of webhook {h.url} ({h.workspace})", chosen


def _events_change(before: Webhook, after: Webhook) -> str:
    added = sorted(set(after.events) - set(before.events))
    removed = sorted(set(before.events) - set(after.events))
    parts = [f"+{terminal(e)}" for e in added] + [f"-{terminal(e)}" for e in removed]
    return "events " + " ".join(parts) if parts else ""


def create_line(change: Change, _: Counter[str]) -> str:
    """``webhook https://hooks.acme.com/x (notetaker-production): bot.done, transcript.done``."""
    h = change.after
    assert isinstance(h, Webhook)
    off = ", disabled" if not h.enabled else ""
    sink = f", signing secret delivered as {terminal(h.sink_name)}" if h.sink_name else ""
    events = ", ".join(map(terminal, h.events))
    return f"webhook {terminal(h.url)} ({terminal(h.workspace)}): {events}{off}{sink}"


def update_line(change: Change, _: Counter[str]) -> str:
    """``webhook https://… (notetaker-production): events +transcript.done; disabled``."""
    before, after = change.before, change.after
    assert isinstance(before, Webhook) and isinstance(after, Webhook)
    parts = [_events_change(before, after)]
    if before.enabled != after.enabled:
        parts.append("enabled" if after.enabled else "disabled")
    if before.sink_name != after.sink_name:
        was = terminal(before.sink_name) if before.sink_name else "an unknown name"
        parts.append(f"signing secret rotated and delivered as {terminal(after.sink_name or '')} (was {was})")
    return f"webhook {terminal(after.url)} ({terminal(after.workspace)}): " + "; ".join(p for p in parts if p)


def delete_line(change: Change, _: Counter[str]) -> str:
    """``webhook https://… (notetaker-staging)``."""
    h = change.before
    assert isinstance(h, Webhook)
    return f"webhook {terminal(h.url)} ({terminal(h.workspace)})"


def _ignored(h: Webhook, ignore: Any) -> bool:
    return bool(ignore.workspace(h.workspace) or ignore.webhook(h.url))


KIND = ResourceKind(
    type=TYPE,
    model=Webhook,
    field="webhooks",
    heading="Webhooks",
    identity=lambda h: h.key,
    normalized_keys=lambda keys: True,
    text_key=lambda h: webhook_key(h.workspace, h.url),
    of=lambda state: state.webhooks,
    ignored=_ignored,
    read=_read,
    from_plain=_from_plain,
    material=_material,
    diff=_diff,
    phase=_phase,
    replay=keyed_replay(TYPE),
    handlers={Action.CREATE: _create, Action.UPDATE: _update, Action.DELETE: _delete},
    lines={Action.CREATE: create_line, Action.UPDATE: update_line, Action.DELETE: delete_line},
    warning_texts={SHARED_URL: _shared_text},
    blocked_by=workspace_dependency,
    makes_secret=_moves_secret,
    delivery=_delivery,
)

__all__ = ["KIND", "WEBHOOKS", "webhook_body", "webhook_key", "webhook_path"]
