"""``plan``: one organization's run in phases that never mix: read, diff, guard.

This is the seam between the pieces: config gives the desired state, the API
reader the current state, the diff a ``Plan``, the guards a verdict. ``apply``
(``provisioner.service.apply``) reuses these phases and then hands that
``Plan``, and only that, to ``provisioner.apply.executor.apply_plan``. Nothing
here prints; the CLI renders the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from provisioner import __version__, collector
from provisioner.api.client import ApiClient
from provisioner.api.pacing import AUTO_PACE, Pace
from provisioner.api.reader import read_state, read_state_and_identity
from provisioner.api.snapshot import ReadReport, SnapshotCache, read_with_snapshot
from provisioner.config.against_base import production_of
from provisioner.config.cache import ConfigCache
from provisioner.endpoint import Endpoint
from provisioner.errors import StalePlanError
from provisioner.frozen import frozen
from provisioner.model import ADMIN, Config, Credential, Identity, Organization, SecretRef, SecretUse, State
from provisioner.plan.diff import diff
from provisioner.plan.digest import PlanTarget
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.plan.guards import check_guards
from provisioner.plan.model import TEXT, Plan, PlanWarning
from provisioner.plan.planfile import SavedPlan, load_plan, save_plan
from provisioner.resources.base import RECALL_V2
from provisioner.secrets.refs import SecretValues, available, resolve
from provisioner.service.connection import connect_config
from provisioner.service.runner import Outcome, Run, run_organizations, utcnow


@frozen
class PlannedOrganization:
    """What one organization's plan was made from, and the plan itself."""

    config: Config
    identity: Identity
    current: State
    plan: Plan
    # The values of the secrets this plan writes (repr shows none): read by
    # ``with_secret_values`` for an apply; a plan itself holds none.
    secrets: SecretValues = field(default_factory=SecretValues)
    # How ``current`` was read: in full, or from a snapshot (and the change feed).
    read: ReadReport = field(default_factory=lambda: ReadReport("full"))

    @property
    def target(self) -> PlanTarget:
        """The organization the plan is for, as the API named it."""
        return PlanTarget.of(self.identity.organization)

    @property
    def environments(self) -> dict[str, str | None]:
        """Workspace instance name -> environment, so renderers can put production first."""
        return {name: ws.environment for name, ws in self.config.desired.workspaces.items()}

    @property
    def changed(self) -> bool:
        return not self.plan.empty


RELABELLED = (
    "is production in the base config and not in this one: it keeps every production call-out and "
    "guard in this plan. Relabelling production is a decision for review: say so in the pull request"
)


def written_uses(config: Config, plan: Plan) -> tuple[SecretUse, ...]:
    """The config's secret references whose values ``plan`` sends (a credential's written secrets)."""
    wanted: set[tuple[str, SecretRef]] = set()
    for change in plan.changes:
        after = change.after
        if isinstance(after, Credential):
            refs = dict(after.secrets)
            wanted.update((after.workspace, refs[name]) for name in after.write if name in refs)
    return tuple(u for u in config.secret_uses if (u.workspace, u.ref) in wanted)


def with_secret_values(
    planned: PlannedOrganization, clients: Iterable[ApiClient | None]
) -> PlannedOrganization:
    """``planned`` with the values of the secrets its plan writes (every missing one reported at once).

    Only an apply reads management-contract values, and only those it sends:
    a plan is complete without them. Called before any change; each client
    redacts each value from every message from then on.
    """
    values = resolve(written_uses(planned.config, planned.plan), base=planned.config.secret_base)
    for client in clients:
        if client is not None:
            client.redact_also(values.values())
    return replace(planned, secrets=planned.secrets.merged(values))


def compared_by_value(use: SecretUse) -> bool:
    """Whether a secret is one Recall.ai's real API returns (a Zoom app's, a Google login's).

    Those are compared by value, as the API reads them back; every other
    secret compares by the source its server recorded, without a value.
    """
    return use.what.startswith(("Zoom app ", "Google login "))


def real_api_secrets(config: Config) -> SecretValues:
    """The values of the secrets Recall.ai's real API returns (all missing ones reported at once)."""
    return resolve([u for u in config.secret_uses if compared_by_value(u)], base=config.secret_base)


def read_and_diff(
    config: Config,
    client: ApiClient | None,
    *,
    now: datetime,
    parallelism: int = 8,
    endpoint: Endpoint | None = None,
    cache: SnapshotCache | None = None,
    secrets: SecretValues | None = None,
    workspace_clients: Mapping[str, ApiClient] | None = None,
) -> PlannedOrganization:
    """Read the current state and diff it against the config. Makes no change; uses no secret value.

    Whatever config secret values this job happens to hold are redacted from
    every message (a hostile endpoint that once received one may echo it);
    a missing one is no error: the plan is complete without them.

    With ``cache``, the state comes from its snapshot and the change feed where
    they can be trusted (``provisioner.api.snapshot``): the same state, fewer requests.

    The plan states its endpoint (``client.base_url``) and the organization's
    region (the config's, else the one the API reports), so that a plan read
    from elsewhere than the region's endpoint says so. ``client.endpoint`` never holds the key.
    An embedded sandbox (``endpoint``) is named by its label instead: its port changes every run.

    ``workspace_clients`` (one per instance with its own key) read the
    ``RECALL_V2`` types. ``client`` is None for an integrations-only config
    (``Config.integrations_only``): then nothing but the v2 API is read.
    Recall.ai's real API returns its secrets, so those (and only those) are
    compared by value: ``secrets`` holds them (read here when not given).
    """
    values = secrets if secrets is not None else real_api_secrets(config)
    held = available(config.secret_uses, base=config.secret_base)
    clients = dict(workspace_clients or {})
    for each in [client, *clients.values()]:
        if each is not None:
            each.redact_also((*values.values(), *held.values()))
    how = ReadReport("full")
    if client is None:
        current, identity = read_integrations(config, clients, parallelism)
    elif cache is None or clients:
        current, identity = read_state_and_identity(
            client, parallelism=parallelism, workspace_clients=clients
        )
    else:
        current, identity, how = read_with_snapshot(client, cache, parallelism=parallelism)
    address = (
        client.endpoint if client is not None else next(iter(clients.values())).endpoint if clients else ""
    )
    # No user is managed without the management API: no admin count to keep either.
    policy = replace(config.policy, min_admins=0) if client is None else config.policy
    key_clock = client.server_now() if client is not None else None
    with collector.paused():  # pure data: two states in, a plan out
        plan = diff(
            current,
            config.desired,
            policy,
            now=now,
            organization=identity.organization.name,
            config_digest=config.digest,
            secrets=values,
            key_clock=key_clock,
        )
    region = config.organization.region or identity.organization.region or ""
    shown = endpoint.label if endpoint is not None and endpoint.embedded else address
    relabels = tuple(
        PlanWarning(TEXT, None, name, {"text": f"{name} {RELABELLED}"}) for name in config.relabelled
    )
    plan = replace(
        plan,
        endpoint=shown,
        region=region,
        production=tuple(sorted(production_of(config.desired))),
        policy_changes=config.policy_changes,
        warnings=relabels + plan.warnings,
    )
    return PlannedOrganization(config, identity, current, plan, values, read=how)


INTEGRATIONS_ONLY = "(integrations only)"


def read_integrations(
    config: Config, clients: Mapping[str, ApiClient], parallelism: int
) -> tuple[State, Identity]:
    """The current state of an integrations-only config, from the v2 API alone.

    Its workspace instances exist (the dashboard makes them, and each key
    reaches its own), so they are taken as declared; the rest is read with
    each instance's key. There is no ``/me/`` on the v2 API: the identity is
    the config's organization, and no user.
    """
    state = read_state(None, parallelism=parallelism, workspace_clients=clients, families=(RECALL_V2,))
    declared = [replace(w, manages=()) for w in config.desired.workspaces.values()]
    state = replace(state, workspaces=MappingProxyType({w.name: w for w in declared}))
    organization = Organization(
        id="", name=config.organization.name or INTEGRATIONS_ONLY, region=config.organization.region or ""
    )
    return state, Identity(user_id="", email="", role=ADMIN, organization=organization)


def guard(
    planned: PlannedOrganization, *, force: bool, for_apply: bool, secret_sink: bool | None = None
) -> None:
    """Check every guard; raise ``UnsafePlanError`` naming all violations.

    ``secret_sink``: whether the operator gave a sink for server-made secrets
    (``None`` when not known, as in ``plan``).
    """
    check_guards(
        planned.plan,
        current=planned.current,
        identity=planned.identity,
        policy=planned.config.policy,
        expected_organization=planned.config.organization.name,
        force=force,
        for_apply=for_apply,
        secret_sink=secret_sink,
    )


def check_not_stale(saved: Plan, fresh: PlannedOrganization) -> None:
    """Refuse a saved plan whose organization changed since it was made."""
    if saved.state_fingerprint != state_fingerprint(fresh.current):
        raise StalePlanError(
            f"the saved plan for {saved.organization} is stale: the organization changed since "
            "the plan was made. Run `provisioner plan --out PLANFILE` again, review it, "
            "and apply the new plan"
        )
    if saved.config_digest and saved.config_digest != fresh.config.digest:
        raise StalePlanError(
            "the saved plan was made from a different config than the one given with -c. "
            "Plan again with the current config, or apply with the config the plan was made from"
        )


@frozen
class PlanOptions:
    """The options of one ``plan`` run, shared by every organization it covers.

    ``out`` saves the plan (one organization only: the caller checks).
    ``cache_dir`` keeps state snapshots there (None: read in full, keep none);
    ``refresh`` reads in full all the same and saves a new snapshot.
    """

    api_url: str | None = None
    sandbox: str | None = None
    parallelism: int = 8
    force: bool = False
    out: str | None = None
    cache_dir: str | None = None
    refresh: bool = False
    pace: Pace = AUTO_PACE  # pacing to Recall.ai's published limits (``--pace``)

    def cache(self, endpoint: str) -> SnapshotCache | None:
        """The snapshot cache these options ask for, if any, for snapshots of ``endpoint``."""
        if self.cache_dir is None:
            return None
        return SnapshotCache(
            Path(self.cache_dir), refresh=self.refresh, tool_version=__version__, endpoint=endpoint
        )


@frozen
class PlanResult:
    """One organization planned; ``saved_digest`` when the plan was saved to ``PlanOptions.out``."""

    planned: PlannedOrganization
    saved_digest: str | None = None

    @property
    def changed(self) -> bool:
        return self.planned.changed


def config_cache(cache_dir: str | None, *, refresh: bool = False) -> ConfigCache | None:
    """The loaded configs kept beside the state snapshots in ``cache_dir`` (None: no cache).

    For ``plan`` only: ``apply`` loads its config from the files, always.
    """
    if cache_dir is None:
        return None
    return ConfigCache(Path(cache_dir), tool_version=__version__, refresh=refresh)


def plan_orgs(
    configs: Sequence[Config],
    options: PlanOptions,
    *,
    report: Callable[[Outcome[PlanResult]], None] | None = None,
) -> Run[PlanResult]:
    """Plan each organization: read, diff, then guard (and save). Changes nothing remotely.

    A plan that a guard refuses is still in its outcome, next to the refusal,
    so that a reviewer sees what was refused; it is not saved.
    """

    def step(config: Config) -> PlanResult:
        with connect_config(
            config, api_url=options.api_url, sandbox=options.sandbox, pace=options.pace
        ) as connection:
            planned = read_and_diff(
                config,
                connection.client,
                now=utcnow(),
                parallelism=options.parallelism,
                workspace_clients=connection.workspace_clients,
                endpoint=connection.endpoint,
                cache=options.cache(connection.endpoint.label),
            )
            return PlanResult(planned)

    def check(result: PlanResult) -> PlanResult:
        guard(result.planned, force=options.force, for_apply=False)
        if options.out is None:
            return result
        planned = result.planned
        digest = save_plan(
            planned.plan,
            options.out,
            target=planned.target,
            tool_version=__version__,
            created_at=utcnow(),
            environments=planned.environments,
        )
        return replace(result, saved_digest=digest)

    return run_organizations(configs, step, check=check, report=report)


def show_plan(path: str) -> SavedPlan:
    """A plan saved by ``plan --out``, read and checked offline (any age), for ``show``."""
    return load_plan(path, tool_version=__version__, now=utcnow(), max_age=None)
