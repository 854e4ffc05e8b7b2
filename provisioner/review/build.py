"""Build an access review from what is already known: config, current state, audit log.

``build_review`` is pure: it reads nothing and asks no clock. The CLI reads
the organization (as ``plan`` does), the audit log and the clock, and passes
them in; the tests pass them in directly.

Decisions worth knowing:

* The server is the truth of who has access: every grant in the report is on
  the server now. The config adds reason, expiry and whether it is declared;
  the audit log adds which apply made it.
* A grant's history is the *last* recorded apply that touched it. Granted by
  a run and not revoked since: ``since`` is that run. Revoked by a run yet on
  the server: it came back outside every apply (``NOT_BY_APPLY``). Never
  touched: there before the first record if that record left it behind, else
  it appeared outside every apply.
* Production is an instance whose environment is production (the config's
  environment, else the one its name says under ``workspace_name_format``), so
  an out-of-band ``x-production`` still counts as production.
* Grants past their expiry are reported as still on the server, whatever the
  config says; the expiring list covers declared grants running out within
  ``EXPIRY_WINDOW`` of ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from provisioner.frozen import frozen
from provisioner.model import (
    ADMIN,
    Config,
    GoogleLoginGroup,
    Identity,
    Membership,
    State,
    is_production_environment,  # one definition of "production"
)
from provisioner.resources.base import IgnoreRules
from provisioner.review.audit_history import AppliedChange, AuditEntry, split_membership_key
from provisioner.review.model import (
    Admin,
    Change,
    Grant,
    History,
    Instance,
    Integration,
    Key,
    Origin,
    Provenance,
    Review,
    Run,
    Summary,
)

EXPIRY_WINDOW = timedelta(days=30)
DEFAULT_PERIOD = timedelta(days=90)
# Environments an instance name may end in when the config names none.
DEFAULT_ENVIRONMENTS: tuple[str, ...] = ("development", "staging", "production")

MEMBERSHIP = "membership"
USER = "user"
WORKSPACE = "workspace"


@frozen(slots=True)
class _Event:
    granted: bool
    run: Run


def build_review(
    config: Config,
    current: State,
    identity: Identity,
    audit_records: Sequence[AuditEntry] | None,
    now: datetime,
    since: datetime,
    *,
    endpoint: str = "",
    config_commit: str | None = None,
    audit_log: str | None = None,
    audit_log_missing: bool = False,
) -> Review:
    """The review of ``current`` against ``config`` and the audit log, as of ``now``.

    ``audit_records`` is ``None`` when no audit log was given (every history
    then reads "no audit log"); records of other organizations are ignored.
    ``audit_log_missing``: the log was given but does not exist (its history
    is then empty, and the report says so). ``since`` starts the period whose
    changes are listed.
    """
    organization = identity.organization.name
    entries = _entries_of(audit_records, organization)
    environment_of = _environments(config, current.workspaces)
    instances = _instances(config, current.workspaces, environment_of)
    grants = _grants(config, current, entries, environment_of, instances, now)
    admins = _admins(config, current, entries)
    history, history_start = _history(entries, audit_log_missing)
    summary = Summary(
        organization=organization,
        region=config.organization.region or identity.organization.region or "",
        endpoint=endpoint,
        read_at=now,
        config_digest=config.digest,
        config_commit=config_commit,
        config_sources=config.sources,
        audit_log=audit_log,
        period_start=since,
        users=len(current.users),
        workspaces=len(current.workspaces),
        grants=len(grants),
        production_grants=sum(1 for g in grants if g.production),
        out_of_band=sum(1 for g in grants if g.origin is Origin.OUT_OF_BAND)
        + sum(1 for a in admins if not a.declared),
        history=history,
        history_start=history_start,
    )
    return Review(
        summary=summary,
        admins=admins,
        users=tuple(sorted(current.users)),
        instances=instances,
        grants=grants,
        expiring=_expiring(grants, now),
        past_expiry=tuple(g for g in grants if g.origin is Origin.EXPIRED),
        changes=_changes(entries or (), since),
        expiry_window_days=EXPIRY_WINDOW.days,
        api_keys=_keys(config, current, environment_of),
        integrations=_integrations(config, current, environment_of),
    )


def _entries_of(audit_records: Sequence[AuditEntry] | None, organization: str) -> list[AuditEntry] | None:
    """The records of ``organization``, in file order; None when no audit log was given."""
    if audit_records is None:
        return None
    return sorted((e for e in audit_records if e.organization == organization), key=lambda e: e.line)


def _history(entries: Sequence[AuditEntry] | None, missing: bool) -> tuple[History, datetime | None]:
    """What the audit log covers, and from when."""
    if missing:
        return History.MISSING, None
    if entries is None:
        return History.NOT_GIVEN, None
    if not entries:
        return History.EMPTY, None
    return History.RECORDED, min(e.time for e in entries)


def _grants(
    config: Config,
    current: State,
    entries: Sequence[AuditEntry] | None,
    environment_of: dict[str, str | None],
    instances: Sequence[Instance],
    now: datetime,
) -> tuple[Grant, ...]:
    """Every membership on the server as a grant, in matrix order, then by user."""
    memberships = _membership_history(entries or ())
    first_left = entries[0].memberships if entries else frozenset()
    grants = [
        _grant(
            config,
            current,
            workspace,
            email,
            environment_of.get(workspace),
            now,
            entries,
            memberships,
            first_left,
        )
        for workspace, email in current.memberships
    ]
    order = {instance.name: i for i, instance in enumerate(instances)}
    grants.sort(key=lambda g: (order.get(g.workspace, len(order)), g.user))
    return tuple(grants)


def _grant(
    config: Config,
    current: State,
    workspace: str,
    email: str,
    environment: str | None,
    now: datetime,
    entries: Sequence[AuditEntry] | None,
    memberships: dict[tuple[str, str], _Event],
    first_left: frozenset[tuple[str, str]],
) -> Grant:
    """One user's access to one instance, with what the config and the audit log say of it."""
    user = current.users.get(email)
    declared = config.desired.memberships.get((workspace, email))
    provenance, run = _provenance(
        entries, memberships.get((workspace, email)), (workspace, email) in first_left
    )
    return Grant(
        workspace=workspace,
        user=email,
        environment=environment,
        production=is_production_environment(environment),
        role=user.role if user is not None else "",
        status=user.status if user is not None else "",
        origin=_origin(config, workspace, email, declared, now),
        provenance=provenance,
        since=run,
        reason=declared.reason if declared is not None else None,
        expires=declared.expires if declared is not None else None,
    )


def _expiring(grants: Sequence[Grant], now: datetime) -> tuple[Grant, ...]:
    """Declared grants that run out within ``EXPIRY_WINDOW``, soonest first."""
    return tuple(
        g
        for g in sorted(grants, key=lambda g: (g.expires or now, g.user, g.workspace))
        if g.origin is Origin.DECLARED and g.expires is not None and g.expires <= now + EXPIRY_WINDOW
    )


def _keys(config: Config, current: State, environment_of: dict[str, str | None]) -> tuple[Key, ...]:
    """Every live API key, by owner; within an owner production first, then by workspace and name."""
    declared = {(k.workspace, k.name) for k in config.desired.api_keys.values()}
    service = {u.email for u in config.desired.users.values() if u.service_account}
    keys = [
        Key(
            owner=k.owner,
            workspace=k.workspace,
            name=k.name,
            prefix=k.prefix or "",
            production=is_production_environment(environment_of.get(k.workspace)),
            created_at=k.created_at,
            last_used_at=k.last_used_at,
            declared=(k.workspace, k.name) in declared,
            service_account=k.owner in service,
        )
        for k in current.api_keys.values()
        if not k.disabled
    ]
    keys.sort(key=lambda k: (k.owner, not k.production, k.workspace, k.name, k.prefix))
    return tuple(keys)


ZOOM_OAUTH_APP = "zoom_oauth_app"
GOOGLE_LOGIN = "google_login"
VALIDATED, NEVER_VALIDATED = "validated", "never validated"
ACTIVE, INACTIVE = "active", "inactive"


def _integrations(
    config: Config, current: State, environment_of: dict[str, str | None]
) -> tuple[Integration, ...]:
    """The Zoom apps and Google logins on the v2 API: production first, then by workspace and name."""
    desired = config.desired

    def production(workspace: str) -> bool:
        return is_production_environment(environment_of.get(workspace))

    zoom = [
        Integration(
            kind=ZOOM_OAUTH_APP,
            workspace=app.workspace,
            production=production(app.workspace),
            name=app.client_id,
            status=VALIDATED if app.webhook_last_validation else NEVER_VALIDATED,
            checked_at=app.webhook_last_validation,
            declared=app.primary
            and (wanted := desired.zoom_apps.get(app.workspace)) is not None
            and wanted.client_id == app.client_id,
            attention=not app.webhook_last_validation,
        )
        for app in current.zoom_apps.values()
    ]
    logins = [
        Integration(
            kind=GOOGLE_LOGIN,
            workspace=group.workspace,
            production=production(group.workspace),
            name=f"{group.name} / {login.email}",
            status=ACTIVE if login.is_active else INACTIVE,
            checked_at=None,
            declared=_declares_login(desired.google_login_groups.get(group.key), login.email),
            attention=False,
        )
        for group in current.google_login_groups.values()
        for login in group.logins
    ]
    rows = zoom + logins
    rows.sort(key=lambda i: (not i.production, i.workspace, i.kind, i.name))
    return tuple(rows)


def _declares_login(group: GoogleLoginGroup | None, email: str) -> bool:
    return group is not None and any(login.email == email for login in group.logins)


def _origin(config: Config, workspace: str, email: str, declared: Membership | None, now: datetime) -> Origin:
    ignore = IgnoreRules.of(config.policy)
    if ignore.user(email) or ignore.workspace(workspace):
        return Origin.IGNORED
    if declared is None:
        return Origin.OUT_OF_BAND
    if declared.expires is not None and declared.expires <= now:
        return Origin.EXPIRED
    return Origin.DECLARED


def _environments(config: Config, names: Iterable[str]) -> dict[str, str | None]:
    """Each instance's environment: the config's, else the one its name ends in."""
    known = {name: ws.environment for name, ws in config.desired.workspaces.items()}
    candidates = config.environments or DEFAULT_ENVIRONMENTS
    patterns = [(env, _name_pattern(config.workspace_name_format, env)) for env in candidates]
    out: dict[str, str | None] = {}
    for name in names:
        environment = known.get(name)
        if environment is None:
            environment = next((env for env, pattern in patterns if pattern and pattern.match(name)), None)
        out[name] = environment
    return out


def _name_pattern(fmt: str, environment: str) -> re.Pattern[str] | None:
    """A regex for the instance names of ``environment`` under ``fmt``; None if ``fmt`` is odd."""
    if fmt.count("{workspace}") != 1 or fmt.count("{environment}") != 1:
        return None
    parts = re.split(r"(\{workspace\}|\{environment\})", fmt)
    body = "".join(
        ".+" if p == "{workspace}" else re.escape(environment) if p == "{environment}" else re.escape(p)
        for p in parts
    )
    return re.compile(f"^{body}$", re.DOTALL)


def _instances(
    config: Config, names: Iterable[str], environment_of: dict[str, str | None]
) -> tuple[Instance, ...]:
    """The matrix columns: production first, then the config's environment order, then by name."""
    rank = {env: i for i, env in enumerate(config.environments or DEFAULT_ENVIRONMENTS)}

    def key(instance: Instance) -> tuple[bool, int, str, str]:
        env = instance.environment
        return (
            not instance.production,
            rank.get(env, len(rank)) if env else len(rank) + 1,
            env or "",
            instance.name,
        )

    return tuple(
        sorted(
            (
                Instance(n, environment_of.get(n), is_production_environment(environment_of.get(n)))
                for n in names
            ),
            key=key,
        )
    )


def _run(entry: AuditEntry) -> Run:
    return Run(
        entry.time,
        entry.commit,
        entry.line,
        entry.plan_digest,
        entry.result,
        entry.pull_request,
        entry.approvers,
        entry.merged_by,
    )


def _membership_history(entries: Iterable[AuditEntry]) -> dict[tuple[str, str], _Event]:
    """The last recorded grant or revocation of each membership."""
    last: dict[tuple[str, str], _Event] = {}
    for entry in entries:
        for change in entry.applied:
            if change.type != MEMBERSHIP or change.action not in ("create", "delete"):
                continue
            key = split_membership_key(change.key, entry.workspaces)
            last[key] = _Event(change.action == "create", _run(entry))
    return last


def _provenance(
    entries: Sequence[AuditEntry] | None, event: _Event | None, in_first_record: bool
) -> tuple[Provenance, Run | None]:
    if entries is None:
        return Provenance.NO_LOG, None
    if event is not None:
        return (Provenance.GRANTED, event.run) if event.granted else (Provenance.NOT_BY_APPLY, None)
    if not entries or in_first_record:
        return Provenance.BEFORE_LOG, None
    return Provenance.NOT_BY_APPLY, None


def _admins(config: Config, current: State, entries: Sequence[AuditEntry] | None) -> tuple[Admin, ...]:
    """Every admin on the server, with the apply that made them admin when the log knows it."""
    last: dict[str, _Event] = {}
    for entry in entries or ():
        roles = dict(entry.roles)
        for change in entry.applied:
            if change.type == USER and change.action in ("create", "update"):
                last[change.key] = _Event(roles.get(change.key) == ADMIN, _run(entry))
    first_roles = dict(entries[0].roles) if entries else {}
    admins: list[Admin] = []
    for user in sorted(current.users.values(), key=lambda u: u.email):
        if user.role != ADMIN:
            continue
        wanted = config.desired.users.get(user.email)
        provenance, run = _provenance(entries, last.get(user.email), first_roles.get(user.email) == ADMIN)
        admins.append(
            Admin(
                email=user.email,
                status=user.status,
                declared=wanted is not None and wanted.role == ADMIN,
                provenance=provenance,
                since=run,
            )
        )
    return tuple(admins)


def _changes(entries: Iterable[AuditEntry], since: datetime) -> tuple[Change, ...]:
    """Every change applied in the period, oldest run first, in the run's order."""
    return tuple(
        _change(entry, change, _run(entry))
        for entry in entries
        if entry.time >= since
        for change in entry.applied
    )


def _change(entry: AuditEntry, change: AppliedChange, run: Run) -> Change:
    """One applied change with its subject: from the record's ``subject``, else from its key."""
    workspace, user, target = _subject_from_key(entry, change)
    return Change(
        run,
        change.action,
        change.type,
        change.key,
        workspace=change.field("workspace") or workspace,
        user=change.field("user") or user,
        target=change.field("target") or target,
        role_before=change.field("role_before"),
        role_after=change.field("role_after"),
        prefix_before=change.field("prefix_before"),
        prefix_after=change.field("prefix_after"),
    )


def _subject_from_key(entry: AuditEntry, change: AppliedChange) -> tuple[str | None, str | None, str | None]:
    """(instance, user, target) as a change's key says them, for records without a subject."""
    if change.type == MEMBERSHIP:
        workspace, user = split_membership_key(change.key, entry.workspaces)
        return workspace, user, None
    if change.type == USER:
        return None, change.key, None
    if change.type == WORKSPACE:
        return change.key, None, None
    # A setting's or key's key is "<instance> <url|provider|name ...>": instance names hold no space.
    workspace, _, rest = change.key.partition(" ")
    return workspace, None, rest or None
