"""``plan``: one organization's run in phases that never mix: read, diff, guard.

This is the seam between the pieces: config gives the desired state, the API
reader the current state, the diff a ``Plan``, the guards a verdict. ``apply``
(``provisioner.service.apply``) reuses these phases and then hands that
``Plan``, and only that, to ``provisioner.apply.executor.apply_plan``. Nothing
here prints; the CLI renders the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from provisioner import __version__
from provisioner.api.client import ApiClient
from provisioner.api.reader import read_state, read_state_and_identity
from provisioner.errors import StalePlanError
from provisioner.model import ADMIN, Config, Identity, Organization, State
from provisioner.plan.diff import diff
from provisioner.plan.digest import PlanTarget
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.plan.guards import check_guards
from provisioner.plan.model import Plan
from provisioner.plan.planfile import SavedPlan, load_plan, save_plan
from provisioner.resources.base import RECALL_V2
from provisioner.secrets.refs import SecretValues, resolve
from provisioner.service.connection import connect_config
from provisioner.service.runner import Outcome, Run, run_organizations, utcnow


@dataclass(frozen=True)
class PlannedOrganization:
    """What one organization's plan was made from, and the plan itself."""

    config: Config
    identity: Identity
    current: State
    plan: Plan
    # The values of the config's secret references (repr shows none): the
    # diff compared them with the API's digests; apply sends the changed ones.
    secrets: SecretValues = field(default_factory=SecretValues)

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


def config_secrets(config: Config) -> SecretValues:
    """Read every secret reference of ``config`` (all missing ones reported at once).

    Called before any request, so that an unset variable stops a run before
    anything is read or changed.
    """
    return resolve(config.secret_uses, base=config.secret_base)


def read_and_diff(
    config: Config,
    client: ApiClient | None,
    *,
    now: datetime,
    parallelism: int = 8,
    secrets: SecretValues | None = None,
    workspace_clients: Mapping[str, ApiClient] | None = None,
) -> PlannedOrganization:
    """Read the current state and diff it against the config. Makes no change.

    ``secrets`` are the values of the config's references (``config_secrets``);
    read here when not given. The client redacts each of them from every
    message from then on.

    The plan states its endpoint (``client.base_url``) and the organization's
    region (the config's, else the one the API reports), so that a plan read
    from elsewhere than the region's endpoint says so. ``client.endpoint`` never holds the key.

    ``workspace_clients`` (one per instance with its own key) read the
    ``RECALL_V2`` types. ``client`` is None for an integrations-only config
    (``Config.integrations_only``): then nothing but the v2 API is read.
    """
    values = secrets if secrets is not None else config_secrets(config)
    clients = dict(workspace_clients or {})
    for each in [client, *clients.values()]:
        if each is not None:
            each.redact_also(values.values())
    if client is None:
        current, identity = read_integrations(config, clients, parallelism)
    else:
        current, identity = read_state_and_identity(
            client, parallelism=parallelism, workspace_clients=clients
        )
    endpoint = (
        client.endpoint if client is not None else next(iter(clients.values())).endpoint if clients else ""
    )
    # No user is managed without the management API: no admin count to keep either.
    policy = replace(config.policy, min_admins=0) if client is None else config.policy
    plan = diff(
        current,
        config.desired,
        policy,
        now=now,
        organization=identity.organization.name,
        config_digest=config.digest,
        secrets=values,
    )
    region = config.organization.region or identity.organization.region or ""
    plan = replace(plan, endpoint=endpoint, region=region)
    return PlannedOrganization(config, identity, current, plan, values)


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


@dataclass(frozen=True)
class PlanOptions:
    """The options of one ``plan`` run, shared by every organization it covers.

    ``out`` saves the plan (one organization only: the caller checks).
    """

    api_url: str | None = None
    sandbox: str | None = None
    parallelism: int = 8
    force: bool = False
    out: str | None = None


@dataclass(frozen=True)
class PlanResult:
    """One organization planned; ``saved_digest`` when the plan was saved to ``PlanOptions.out``."""

    planned: PlannedOrganization
    saved_digest: str | None = None

    @property
    def changed(self) -> bool:
        return self.planned.changed


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
        secrets = config_secrets(config)  # before connecting: an unset reference costs no request
        with connect_config(config, api_url=options.api_url, sandbox=options.sandbox) as connection:
            planned = read_and_diff(
                config,
                connection.client,
                now=utcnow(),
                parallelism=options.parallelism,
                secrets=secrets,
                workspace_clients=connection.workspace_clients,
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
