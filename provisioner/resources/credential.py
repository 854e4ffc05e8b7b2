"""The credential: a transcription provider's or platform app's keys in one workspace instance.

Identified by ``(workspace, provider)``: one per provider per workspace.

* Providers: the contract's (``model.PROVIDERS``), transcription keys and
  calendar OAuth clients, which Recall.ai publishes no API for. The Zoom app
  is not one: Recall.ai's real v2 API holds it (``zoom_oauth_app``), so a
  ``zoom`` credential is never sent, and one a server lists is skipped.

* Wire shape: ``GET /credentials/`` (one organization-wide listing), objects
  ``id``, ``workspace_id``, ``provider``, ``fields`` (readable), ``secrets``
  (a ``SecretDigest`` per write-only secret, never a value), ``etag``;
  ``POST /credentials/`` creates, ``PATCH``/``DELETE`` on
  ``/credentials/{id}/``.
* Diff: readable fields compare as values. A secret compares by where its
  value comes from, never by the value (Terraform's write-only arguments):
  each write labels the secret with its reference and version
  (``SecretRef.label``, e.g. ``env DEEPGRAM_KEY_PRODUCTION v1``), the server
  keeps the label, and a plan writes the secret again when the label differs:
  another reference, a raised ``version``, or a value written by anyone
  without the label (``null``). So a plan needs no secret value and no digest:
  a developer's key and no secrets give the same plan, and the same digest, as
  an admin's key with all of them. A value that changed behind an unchanged
  reference is drift, which only a job holding the secrets can see
  (``changed_values``, compared with the admin-only digests). Credentials
  of a section (``transcription``, ``platforms``) the config does not
  mention for an instance are left alone, and so are providers ``policy.ignore.credentials`` matches.
* Warnings: one secret reference used in two environments is an isolation
  leak (a staging key in production, or the reverse).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from provisioner.errors import ConflictError, PreconditionFailedError
from provisioner.escape import terminal
from provisioner.model import (
    PLATFORM,
    PROVIDERS,
    Credential,
    SecretDigest,
    SecretRef,
    is_production_environment,
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
    find,
    keyed_replay,
    sorted_items,
    workspace_dependency,
    workspace_id,
)
from provisioner.secrets.refs import SecretValues, digest_problem

log = logging.getLogger("provisioner.api")

TYPE = ResourceType.CREDENTIAL
CREDENTIALS = "/credentials/"

SHARED_SECRET = "secret-shared-across-environments"


def credential_key(workspace: str, provider: str) -> str:
    """The text key of a credential change: ``"<workspace> <provider>"``."""
    return f"{workspace} {provider}"


def credential_path(credential_id: str) -> str:
    """The path of one credential."""
    return f"{CREDENTIALS}{credential_id}/"


def section_of(provider: str) -> str | None:
    """The config section a contract provider is declared in: ``transcription`` or ``platforms``.

    None for any other name: such a credential belongs to no section, so no
    config manages (deletes) it.
    """
    spec = PROVIDERS.get(provider)
    if spec is None:
        return None
    return "platforms" if spec.kind == PLATFORM else "transcription"


# --- wire shape -------------------------------------------------------------------


def _digest(value: Any) -> SecretDigest:
    return SecretDigest(
        algorithm=str(value["algorithm"]),
        iterations=int(value["iterations"]),
        salt=str(value["salt"]),
        digest=str(value["digest"]),
    )


def _parse(data: dict[str, Any], names: Mapping[str, str]) -> Credential | None:
    name = names.get(str(data.get("workspace_id")))
    if name is None:
        log.warning("skipping credential %s: its workspace is not in the listing", data.get("id"))
        return None
    if data.get("provider") not in PROVIDERS:
        # Only the contract's providers are credentials. A `zoom` one an older
        # server still lists is not the instance's Zoom app (that is Recall.ai's
        # real v2 API, ``resources.zoom_oauth_app``): it is left alone, never diffed.
        log.warning(
            "skipping credential %s: %s is not a provider of %s",
            data.get("id"),
            terminal(str(data.get("provider"))),
            CREDENTIALS,
        )
        return None
    return convert(
        "credential",
        CREDENTIALS,
        lambda: Credential(
            workspace=name,
            provider=str(data["provider"]),
            fields=tuple(sorted((str(k), str(v)) for k, v in dict(data["fields"]).items() if v is not None)),
            digests=tuple(
                sorted((str(k), _digest(v)) for k, v in dict(data["secrets"]).items() if v is not None)
            ),
            sources=tuple(
                sorted(
                    (str(k), None if v is None else str(v))
                    for k, v in dict(data.get("secret_sources") or {}).items()
                )
            ),
            id=str(data["id"]),
            etag=data.get("etag"),
        ),
    )


def _from_plain(d: Mapping[str, Any]) -> Credential:
    return Credential(
        workspace=str(d["workspace"]),
        provider=str(d["provider"]),
        fields=tuple((str(k), str(v)) for k, v in d.get("fields") or ()),
        secrets=tuple((str(k), SecretRef(**v)) for k, v in d.get("secrets") or ()),
        digests=tuple((str(k), SecretDigest(**v)) for k, v in d.get("digests") or ()),
        sources=tuple((str(k), None if v is None else str(v)) for k, v in d.get("sources") or ()),
        write=tuple(d.get("write") or ()),
        id=d.get("id"),
        etag=d.get("etag"),
    )


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listing = reading.submit(reading.client.list_all, CREDENTIALS)

    def finish() -> list[Any]:
        names = {str(w.id): w.name for w in reading.result(ResourceType.WORKSPACE)}
        return [c for c in (_parse(raw, names) for raw in listing.result()) if c is not None]

    return finish


def _body(c: Credential, values: Callable[[SecretRef], str], secrets: tuple[str, ...]) -> dict[str, Any]:
    refs = dict(c.secrets)
    return {
        "fields": dict(c.fields),
        "secrets": {name: values(refs[name]) for name in secrets},
        # Where each value came from, so the next plan compares without secrets.
        "secret_sources": {name: refs[name].label for name in secrets},
    }


# --- diff rules -------------------------------------------------------------------


def _material(c: Credential) -> dict[str, Any]:
    # What a change does: the readable fields, where each secret comes from, and
    # which are written. Never a value, and never the server's digests.
    return {
        "workspace": c.workspace,
        "provider": c.provider,
        "fields": [list(f) for f in c.fields],
        "secrets": [[name, ref.label] for name, ref in c.secrets],
        "write": list(c.write),
    }


def _managed(ctx: DiffContext, workspace: str, provider: str) -> bool:
    declared = ctx.desired.workspaces.get(workspace)
    return declared is not None and section_of(provider) in declared.manages


def changed_secrets(before: Credential, after: Credential) -> tuple[str, ...]:
    """The secrets of ``after`` whose source the server does not record as written (no value needed)."""
    written = dict(before.sources)
    return tuple(name for name, ref in after.secrets if written.get(name) != ref.label)


def changed_values(before: Credential, after: Credential, secrets: SecretValues) -> tuple[str, ...]:
    """The secrets whose recorded source is current but whose value the server's digest does not match.

    For a job that holds the secrets and an admin's key (``drift``): a value
    changed behind an unchanged reference, which a plan never applies
    silently. A secret without a digest or a value is not judged here.
    """
    digests, written = dict(before.digests), dict(before.sources)
    out = []
    for name, ref in after.secrets:
        digest = digests.get(name)
        if written.get(name) != ref.label or digest is None or ref not in secrets:
            continue
        if digest_problem(digest) is not None:
            continue  # too weak (or unknown) to compare: a guess-friendly digest proves nothing
        if not secrets.matches(ref, digest):
            out.append(name)
    return tuple(out)


def _diff(ctx: DiffContext) -> Diffed:
    current, desired = ctx.current.credentials, ctx.desired.credentials
    changes: list[Change] = []
    for (ws, provider), after in sorted_items(desired, desired.keys() - current.keys()):
        changes.append(Change(Action.CREATE, TYPE, credential_key(ws, provider), None, after))
    for key, wanted in sorted_items(desired, desired.keys() & current.keys()):
        # A plan never holds a digest (plan files are shared): only sources and fields.
        before = replace(current[key], digests=())
        write = changed_secrets(before, wanted)
        if write or before.fields != wanted.fields:
            after = replace(wanted, write=write)
            changes.append(Change(Action.UPDATE, TYPE, credential_key(*key), before, after))
    for (ws, provider), before in sorted_items(current, current.keys() - desired.keys()):
        if _managed(ctx, ws, provider):
            gone = replace(before, digests=())
            changes.append(Change(Action.DELETE, TYPE, credential_key(ws, provider), gone, None))
    return Diffed(changes=tuple(changes), warnings=tuple(_shared_references(ctx)))


def _shared_references(ctx: DiffContext) -> list[PlanWarning]:
    """A reference that instances of two environments use, or a production one a plain workspace reuses.

    References compare by source and name (a raised ``version`` reads the same variable).
    """
    envs: dict[tuple[str, str], set[str]] = defaultdict(set)
    plain: dict[tuple[str, str], set[str]] = defaultdict(set)
    for credential in ctx.desired.credentials.values():
        declared = ctx.desired.workspaces.get(credential.workspace)
        env = declared.environment if declared is not None else None
        for _, ref in credential.secrets:
            if env is None:
                plain[(ref.source, ref.name)].add(f"plain workspace {credential.workspace}")
            else:
                envs[(ref.source, ref.name)].add(env)
    out = []
    for (source, name), names in sorted(envs.items()):
        reused = (
            plain.get((source, name), set()) if any(is_production_environment(e) for e in names) else set()
        )
        if len(names) > 1 or reused:
            where = ", ".join([*sorted(names), *sorted(reused)])
            out.append(PlanWarning(SHARED_SECRET, TYPE, f"{source} {name}", {"environments": where}))
    return out


def _shared_text(w: PlanWarning) -> str:
    return (
        f"the secret reference {w.key} is used in the environments {w.params['environments']}: "
        "one key then opens every one of them, and a leak in one is a leak in all. Give each "
        "environment its own, e.g. {env: DEEPGRAM_KEY_{ENVIRONMENT}}."
    )


def _phase(change: Change) -> Phase:
    return Phase.CONFIGURE


# --- API calls --------------------------------------------------------------------


def _create(c: Change, ctx: ApplyContext) -> str | None:
    wanted = c.after
    assert isinstance(wanted, Credential)
    body = _body(wanted, ctx.secret_value, tuple(n for n, _ in wanted.secrets))
    ws_id = workspace_id(ctx, wanted.workspace)
    try:
        made = ctx.client.post(
            CREDENTIALS,
            {"workspace_id": ws_id, "provider": wanted.provider, **body},
            idempotency_key=ctx.idempotency_key(c),
        )
    except ConflictError:
        # Made meanwhile (by a person, or an attempt whose answer was lost):
        # the config says what it holds, so write everything over it.
        names = {ws_id: wanted.workspace}
        existing = find(
            ctx.client,
            CREDENTIALS,
            lambda raw: _parse(raw, names),
            lambda found: found is not None and found.provider == wanted.provider,
        )
        if existing is None or existing.id is None:
            raise Failed("the API says the credential exists but does not list it; run plan again") from None
        ctx.client.patch(credential_path(existing.id), body, if_match=existing.etag)
        return "already existed; its fields and secrets were written"
    ctx.learn_id(TYPE, c.key, convert("credential", CREDENTIALS, lambda: str(made["id"])))
    return None


def _update(c: Change, ctx: ApplyContext) -> str | None:
    before, after = c.before, c.after
    assert isinstance(before, Credential) and isinstance(after, Credential) and before.id
    body = _body(after, ctx.secret_value, after.write)
    try:
        ctx.client.patch(credential_path(before.id), body, if_match=before.etag)
    except PreconditionFailedError:
        raise Failed(RUN_PLAN_AGAIN) from None
    return None


def _delete(c: Change, ctx: ApplyContext) -> str | None:
    assert isinstance(c.before, Credential) and c.before.id
    return delete(ctx.client, credential_path(c.before.id), c.before.etag)


# --- text -------------------------------------------------------------------------


def _what(c: Credential) -> str:
    return f"credential {terminal(c.provider)} ({terminal(c.workspace)})"


def create_line(change: Change, _: Counter[str]) -> str:
    """``credential deepgram (notetaker-production): api_key from env DEEPGRAM_KEY_PRODUCTION``."""
    c = change.after
    assert isinstance(c, Credential)
    parts = [f"{terminal(k)} {terminal(v)}" for k, v in c.fields]
    parts += [f"{terminal(name)} from {terminal(str(ref))}" for name, ref in c.secrets]
    return f"{_what(c)}: {', '.join(parts)}"


def update_line(change: Change, _: Counter[str]) -> str:
    """``credential deepgram (notetaker-production): api_key changed``."""
    before, after = change.before, change.after
    assert isinstance(before, Credential) and isinstance(after, Credential)
    old = dict(before.fields)
    parts = [
        f"{terminal(k)} {terminal(old[k]) if k in old else '(none)'} → {terminal(v)}"
        for k, v in after.fields
        if old.get(k) != v
    ]
    parts += [f"{terminal(k)} removed" for k in old if k not in dict(after.fields)]
    parts += [
        _secret_change(name, dict(before.sources).get(name), dict(after.secrets)[name])
        for name in after.write
    ]
    return f"{_what(after)}: {', '.join(parts)}"


def _secret_change(name: str, recorded: str | None, ref: SecretRef) -> str:
    """``api_key written again from env DEEPGRAM_KEY_PRODUCTION (version 2)``, and why."""
    if recorded is None:
        why = "its current value was written outside provisioner"
    elif recorded == ref.label:
        why = (
            "its value differs from the server's, with no change in the config: raise `version` to "
            f"{ref.version + 1} and apply it through review"
        )
    elif recorded.rsplit(" v", 1)[0] == ref.label.rsplit(" v", 1)[0]:
        why = f"version {terminal(recorded.rsplit(' v', 1)[-1])} -> {ref.version}"
    else:
        why = f"was {terminal(recorded)}"
    return f"{terminal(name)} written again from {terminal(str(ref))} ({why})"


def delete_line(change: Change, _: Counter[str]) -> str:
    """``credential rev (notetaker-staging)``."""
    assert isinstance(change.before, Credential)
    return _what(change.before)


def _ignored(c: Credential, ignore: Any) -> bool:
    return bool(ignore.workspace(c.workspace) or ignore.credential(c.provider))


KIND = ResourceKind(
    type=TYPE,
    model=Credential,
    field="credentials",
    heading="Credentials",
    identity=lambda c: c.key,
    normalized_keys=lambda keys: True,
    text_key=lambda c: credential_key(c.workspace, c.provider),
    of=lambda state: state.credentials,
    ignored=_ignored,
    read=_read,
    from_plain=_from_plain,
    material=_material,
    diff=_diff,
    phase=_phase,
    replay=keyed_replay(TYPE),
    handlers={Action.CREATE: _create, Action.UPDATE: _update, Action.DELETE: _delete},
    lines={Action.CREATE: create_line, Action.UPDATE: update_line, Action.DELETE: delete_line},
    warning_texts={SHARED_SECRET: _shared_text},
    blocked_by=workspace_dependency,
)

__all__ = ["CREDENTIALS", "KIND", "changed_secrets", "changed_values", "credential_key", "credential_path"]
