"""Which changes of a plan grant power, so every renderer can call them out.

A reviewer must not have to find a new admin among a thousand lines. Three
kinds of change grant power:

* a new admin: a user invited with the ``admin`` role;
* a promotion: an existing user's role changed to ``admin``;
* production access: a grant on a workspace instance whose environment is
  production (``model.PRODUCTION_ENVIRONMENTS``, compared case-insensitively).

Decisions worth knowing:

* The environment of an instance comes from the desired state (the caller's
  ``environments`` mapping); an instance the plan creates brings its own, so
  a renderer without the mapping still sees the production instances it creates.
* The classification is data (``PowerGrants``); the renderers make sentences.
"""

from __future__ import annotations

from collections.abc import Mapping

from provisioner.frozen import frozen
from provisioner.model import ADMIN, Membership, User, Workspace, is_production_environment
from provisioner.plan.model import Action, Change, Plan, ResourceType


def plan_environments(plan: Plan, environments: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """``environments`` plus the environment of every instance the plan creates."""
    known: dict[str, str | None] = dict(environments or {})
    for change in plan.changes:
        if change.type is ResourceType.WORKSPACE and isinstance(change.after, Workspace):
            known.setdefault(change.key, change.after.environment)
    return known


@frozen(slots=True)
class PowerGrants:
    """The changes of a plan that grant power, in plan order, by kind."""

    new_admins: tuple[Change, ...] = ()
    promotions: tuple[Change, ...] = ()
    production_access: tuple[Change, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every power-granting change: new admins, then promotions, then production access."""
        return self.new_admins + self.promotions + self.production_access

    @property
    def total(self) -> int:
        return len(self.new_admins) + len(self.promotions) + len(self.production_access)

    def counts(self) -> str:
        """``1 new admin, 1 promotion, 2 production access grants`` (kinds with none left out)."""
        parts = [
            _plural(len(self.new_admins), "new admin", "new admins"),
            _plural(len(self.promotions), "promotion", "promotions"),
            _plural(len(self.production_access), "production access grant", "production access grants"),
        ]
        return ", ".join(part for part in parts if part)


def _plural(n: int, one: str, many: str) -> str:
    return "" if n == 0 else f"{n:,} {one if n == 1 else many}"


def power_grants(plan: Plan, environments: Mapping[str, str | None] | None = None) -> PowerGrants:
    """Classify the plan's power-granting changes (see the module docstring)."""
    known = plan_environments(plan, environments)
    new_admins: list[Change] = []
    promotions: list[Change] = []
    production: list[Change] = []
    for change in plan.changes:
        if change.type is ResourceType.USER and isinstance(change.after, User):
            if change.after.role != ADMIN:
                continue
            if change.action is Action.CREATE:
                new_admins.append(change)
            elif isinstance(change.before, User) and change.before.role != ADMIN:
                promotions.append(change)
        elif (
            change.type is ResourceType.MEMBERSHIP
            and change.action is Action.CREATE
            and isinstance(change.after, Membership)
            and is_production_environment(known.get(change.after.workspace))
        ):
            production.append(change)
    return PowerGrants(tuple(new_admins), tuple(promotions), tuple(production))
