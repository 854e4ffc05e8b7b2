"""One organization's run, in phases that never mix: read, diff, guard; then apply.

This is the seam between the pieces: config gives the desired state, the API
reader the current state, the diff a ``Plan``, the guards a verdict. The CLI
then hands that ``Plan``, and only that, to ``provisioner.apply.executor.apply_plan``.
Nothing here prints; the CLI renders the results.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from provisioner.api.client import ApiClient
from provisioner.api.reader import read_state_and_identity
from provisioner.errors import StalePlanError, UnsafePlanError
from provisioner.model import Config, Identity, State
from provisioner.plan.diff import diff
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.plan.guards import check_guards
from provisioner.plan.model import Action, Plan, ResourceType


@dataclass(frozen=True)
class PlannedOrganization:
    """What one organization's plan was made from, and the plan itself."""

    config: Config
    identity: Identity
    current: State
    plan: Plan


def read_and_diff(
    config: Config, client: ApiClient, *, now: datetime, parallelism: int = 8
) -> PlannedOrganization:
    """Read the current state and diff it against the config. Makes no change.

    The plan states its endpoint (``client.base_url``) and the organization's
    region (the config's, else the one the API reports), so that a plan read
    from elsewhere than the region's endpoint says so. ``client.endpoint`` never holds the key.
    """
    current, identity = read_state_and_identity(client, parallelism=parallelism)
    plan = diff(
        current,
        config.desired,
        config.policy,
        now=now,
        organization=identity.organization.name,
        config_digest=config.digest,
    )
    region = config.organization.region or identity.organization.region or ""
    plan = replace(plan, endpoint=client.endpoint, region=region)
    return PlannedOrganization(config, identity, current, plan)


def guard(planned: PlannedOrganization, *, force: bool, for_apply: bool) -> None:
    """Check every guard; raise ``UnsafePlanError`` naming all violations."""
    check_guards(
        planned.plan,
        current=planned.current,
        identity=planned.identity,
        policy=planned.config.policy,
        expected_organization=planned.config.organization.name,
        force=force,
        for_apply=for_apply,
    )
    _check_workspace_limit(planned)


def _check_workspace_limit(planned: PlannedOrganization) -> None:
    limit = planned.identity.organization.workspace_limit
    creates = sum(
        1 for c in planned.plan.changes if c.type is ResourceType.WORKSPACE and c.action is Action.CREATE
    )
    total = len(planned.current.workspaces) + creates
    if creates and total > limit:
        raise UnsafePlanError(
            f"the plan would bring the organization to {total} workspaces, over its limit of "
            f"{limit}: {len(planned.current.workspaces)} exist and {creates} would be created. "
            "Workspaces cannot be deleted through the API; declare fewer, or ask support to "
            "delete unused ones"
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
