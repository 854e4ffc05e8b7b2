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
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisioner.model import (
    ADMIN,
    Config,
    Identity,
    Membership,
    State,
    is_production_environment,  # one definition of "production"
)
from provisioner.resources.base import IgnoreRules
from provisioner.review.audit_history import AuditEntry, split_membership_key
from provisioner.review.model import (
    Admin,
    Change,
    Grant,
    Instance,
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


@dataclass(frozen=True, slots=True)
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
) -> Review:
    """The review of ``current`` against ``config`` and the audit log, as of ``now``.

    ``audit_records`` is ``None`` when no audit log was given (every history
    then reads "no audit log"); records of other organizations are ignored.
    ``since`` starts the period whose changes are listed.
    """
    organization = identity.organization.name
    entries = (
        None
        if audit_records is None
        else sorted((e for e in audit_records if e.organization == organization), key=lambda e: e.line)
    )
    environment_of = _environments(config, current.workspaces)
    instances = _instances(config, current.workspaces, environment_of)
    order = {instance.name: i for i, instance in enumerate(instances)}
    memberships = _membership_history(entries or ())
    first_left = entries[0].memberships if entries else frozenset()

    grants: list[Grant] = []
    for workspace, email in current.memberships:
        user = current.users.get(email)
        declared = config.desired.memberships.get((workspace, email))
        environment = environment_of.get(workspace)
        provenance, run = _provenance(
            entries, memberships.get((workspace, email)), (workspace, email) in first_left
        )
        grants.append(
            Grant(
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
        )
    grants.sort(key=lambda g: (order.get(g.workspace, len(order)), g.user))

    admins = _admins(config, current, entries)
    changes = _changes(entries or (), since)
    expiring = tuple(
        g
        for g in sorted(grants, key=lambda g: (g.expires or now, g.user, g.workspace))
        if g.origin is Origin.DECLARED and g.expires is not None and g.expires <= now + EXPIRY_WINDOW
    )
    past = tuple(g for g in grants if g.origin is Origin.EXPIRED)
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
    )
    return Review(
        summary=summary,
        admins=admins,
        users=tuple(sorted(current.users)),
        instances=instances,
        grants=tuple(grants),
        expiring=expiring,
        past_expiry=past,
        changes=changes,
        expiry_window_days=EXPIRY_WINDOW.days,
        api_keys=_keys(config, current, environment_of),
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
    return Run(entry.time, entry.commit, entry.line, entry.plan_digest, entry.result)


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
    out: list[Change] = []
    for entry in entries:
        if entry.time < since:
            continue
        run = _run(entry)
        for change in entry.applied:
            workspace: str | None = None
            user: str | None = None
            if change.type == MEMBERSHIP:
                workspace, user = split_membership_key(change.key, entry.workspaces)
            elif change.type == USER:
                user = change.key
            out.append(Change(run, change.action, change.type, change.key, workspace, user))
    return tuple(out)
