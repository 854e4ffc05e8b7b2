"""A pull request's config held to its base: the decisions it cannot make for itself.

The author of a pull request writes the config that CI plans, including the
checks that judge it: ``policy`` (how many removals, how recent a key's use
must be to protect it, ...) and what counts as production (an instance's
environment). ``plan --base PATH`` reads the target branch's config and:

* lists every policy value the pull request changes, as ``(path, before,
  after)``, for the top of the plan and its digest;
* judges the plan by the stricter of the two policies (``stricter``);
* keeps every instance that is production on the base production on the
  head: a relabelled instance keeps its production environment in the
  desired state, so every production call-out and guard still applies, and
  the plan says it was relabelled.

Pure: two loaded configs in, one config out (``Config.policy_changes`` and
``Config.relabelled`` carry the findings to the plan).
"""

from __future__ import annotations

from dataclasses import fields, replace
from types import MappingProxyType

from provisioner.model import Config, Policy, RemovalLimit, State, is_production_environment

# policy field -> its path in the config, for the plan's lines.
_PATHS = {
    "min_admins": "policy.min_admins",
    "max_removals": "policy.max_removals",
    "protected_users": "policy.protected_users",
    "ignore_users": "policy.ignore.users",
    "ignore_workspaces": "policy.ignore.workspaces",
    "ignore_webhooks": "policy.ignore.webhooks",
    "ignore_credentials": "policy.ignore.credentials",
    "production_key_owners": "policy.api_keys.production_owners",
    "unmanaged_keys": "policy.api_keys.unmanaged",
    "rotation_grace_s": "policy.api_keys.rotation_grace",
    "recent_use_days": "policy.api_keys.recent_use_days",
}
_UNMANAGED_ORDER = {"disable": 0, "report": 1, "keep": 2}  # a disable takes keys away: least strict


def _text(value: object) -> str:
    if isinstance(value, (frozenset, tuple)):
        return "[" + ", ".join(sorted(str(v) for v in value)) + "]"
    return str(value)


def policy_changes(base: Policy, head: Policy) -> tuple[tuple[str, str, str], ...]:
    """Every policy value that differs, as ``(path, before, after)``."""
    out = []
    for f in fields(Policy):
        before, after = getattr(base, f.name), getattr(head, f.name)
        if before != after:
            out.append((_PATHS.get(f.name, f"policy.{f.name}"), _text(before), _text(after)))
    return tuple(out)


def _fewer_removals(a: RemovalLimit, b: RemovalLimit) -> RemovalLimit:
    # Compare what each allows of 100 objects, the unit of a percentage.
    return a if a.allowed(100) <= b.allowed(100) else b


def stricter(base: Policy, head: Policy) -> Policy:
    """The policy that refuses whatever either refuses (ignore lists: only what both ignore)."""
    return replace(
        head,
        min_admins=max(base.min_admins, head.min_admins),
        max_removals=_fewer_removals(base.max_removals, head.max_removals),
        protected_users=base.protected_users | head.protected_users,
        ignore_users=tuple(g for g in head.ignore_users if g in base.ignore_users),
        ignore_workspaces=tuple(g for g in head.ignore_workspaces if g in base.ignore_workspaces),
        ignore_webhooks=tuple(g for g in head.ignore_webhooks if g in base.ignore_webhooks),
        ignore_credentials=tuple(g for g in head.ignore_credentials if g in base.ignore_credentials),
        production_key_owners=(
            "service_accounts"
            if "service_accounts" in (base.production_key_owners, head.production_key_owners)
            else head.production_key_owners
        ),
        unmanaged_keys=max(
            base.unmanaged_keys, head.unmanaged_keys, key=lambda v: _UNMANAGED_ORDER.get(v, 2)
        ),
        rotation_grace_s=max(base.rotation_grace_s, head.rotation_grace_s),
        recent_use_days=max(base.recent_use_days, head.recent_use_days),
    )


def production_of(state: State) -> frozenset[str]:
    """The declared instances whose environment is production."""
    return frozenset(n for n, w in state.workspaces.items() if is_production_environment(w.environment))


def hold_to_base(head: Config, base: Config) -> Config:
    """``head`` as it is judged against ``base``: stricter policy, production kept, changes noted."""
    was_production = production_of(base.desired)
    workspaces = dict(head.desired.workspaces)
    relabelled = []
    for name in sorted(was_production & workspaces.keys()):
        if not is_production_environment(workspaces[name].environment):
            relabelled.append(name)
            workspaces[name] = replace(
                workspaces[name], environment=base.desired.workspaces[name].environment
            )
    desired = replace(head.desired, workspaces=MappingProxyType(workspaces))
    return replace(
        head,
        desired=desired,
        policy=stricter(base.policy, head.policy),
        policy_changes=policy_changes(base.policy, head.policy),
        relabelled=tuple(relabelled),
    )
