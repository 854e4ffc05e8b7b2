"""Safety checks on a plan, kept apart from the diff and from apply (octoDNS style).

``check_guards`` collects every violation and raises one ``UnsafePlanError``
listing them all, so a user fixes everything in one round. Each message names
the number, the limit and what to do.

Decisions worth knowing:

* ``min_admins`` counts only ``active`` admins: a pending invitation cannot
  administer anything yet. Promoting an active user counts; promoting an
  invited user or inviting an admin does not. The guard refuses a plan that
  leaves fewer than ``min_admins`` *and* lowers the count; an organization that
  is already below the minimum is not blocked by plans that do not make it
  worse (they could not fix it through this guard anyway).
* Protected users: any change to an existing protected user (removal,
  demotion, any role change) is refused. Inviting one who is absent, and
  membership changes of protected users, are allowed.
* ``max_removals`` counts the removals a person named: users removed, and
  memberships removed directly. Memberships that go with their removed user
  (``cascade``) are shown in the plan but not counted: offboarding one person
  is one removal, however many workspaces they had.
* The limit is measured against the existing objects: the current users and
  memberships left after ignore filtering.
* A percentage (``"25%"``) allows ``floor(existing * percent / 100)``
  removals, and applies only from ``REMOVAL_FLOOR`` (10) existing objects on,
  as octoDNS does with its 10 existing records: below that, a percentage of a
  handful is zero or one, and would refuse every ordinary change. So an
  organization with fewer than 10 users and memberships is not limited by a
  percentage at all; ``min_admins``, protected users and the key's own user
  still guard it. An absolute count (``max_removals: 3``) applies at every
  size, ``0`` included. ``force`` overrides ``max_removals`` and the recently used production
  API key check (a removal that breaks a key the plan names), and nothing else.
* The organization's workspace limit (``/me/``'s ``workspace_limit``) is a
  guard like the others: a plan that would create workspaces beyond it is
  refused before any change, with every other violation, rather than failing
  half-way at the API (workspaces cannot be deleted through it).
"""

from __future__ import annotations

from provisioner.errors import UnsafePlanError
from provisioner.escape import terminal
from provisioner.model import ADMIN, Identity, Policy, State, User
from provisioner.plan.diff import active_admins, filter_ignored, users_after
from provisioner.plan.model import Action, Change, Plan, ResourceType
from provisioner.resources.api_key import KEY_IMPACT
from provisioner.resources.registry import REGISTRY

# Below this many existing objects a percentage max_removals does not apply (see above).
REMOVAL_FLOOR = 10


def _describe_user_change(change: Change) -> str:
    """What a user change does, as a verb phrase naming the user."""
    if change.action is Action.DELETE:
        return f"removes {change.key}"
    if change.action is Action.CREATE:
        return f"invites {change.key}"
    assert isinstance(change.before, User) and isinstance(change.after, User)
    roles = f"({change.before.role} -> {change.after.role})"
    if change.before.role == ADMIN and change.after.role != ADMIN:
        return f"demotes {change.key} {roles}"
    return f"changes the role of {change.key} {roles}"


def _own_user_violations(plan: Plan, identity: Identity) -> list[str]:
    me = identity.email.lower()
    problems: list[str] = []
    for change in plan.changes:
        if change.type is not ResourceType.USER or change.key != me:
            continue
        demotes = (
            change.action is Action.UPDATE and isinstance(change.after, User) and change.after.role != ADMIN
        )
        if change.action is Action.DELETE or demotes:
            problems.append(
                f"the plan {_describe_user_change(change)}, the owner of the API key in use; "
                f"a key never removes or demotes its own user. Keep {me} as an admin in the "
                f"configuration, or run with another admin's key."
            )
    return problems


def _protected_user_violations(plan: Plan, policy: Policy) -> list[str]:
    protected = {email.lower() for email in policy.protected_users}
    return [
        f"the plan {_describe_user_change(change)}, which is in policy.protected_users; "
        f"no change of any kind (removal, demotion or any role change) is made to a protected "
        f"user. Restore {change.key} in the configuration as it is in the organization, or "
        f"remove it from policy.protected_users first."
        for change in plan.changes
        # Inviting a protected user who is not there yet takes nothing away.
        if change.type is ResourceType.USER and change.action is not Action.CREATE and change.key in protected
    ]


def _min_admins_violations(plan: Plan, current: State, policy: Policy) -> list[str]:
    before = active_admins(current.users.values())
    after = active_admins(users_after(current, plan.changes).values())
    if after >= policy.min_admins or after >= before:
        return []
    return [
        f"after this plan {after} active admin{'s' if after != 1 else ''} would remain "
        f"(now {before}), fewer than policy.min_admins {policy.min_admins}; keep or promote "
        f"active admins in the configuration, or lower policy.min_admins."
    ]


def _max_removals_violations(plan: Plan, current: State, policy: Policy) -> list[str]:
    named = [
        c
        for c in plan.changes
        if c.action is Action.DELETE and c.type in (ResourceType.USER, ResourceType.MEMBERSHIP)
    ]
    removals = sum(1 for c in named if not c.cascade)
    if removals == 0:
        return []
    visible = filter_ignored(current, policy)
    existing = len(visible.users) + len(visible.memberships)
    limit = policy.max_removals
    if limit.count is None and existing < REMOVAL_FLOOR:
        return []  # a percentage of a handful means nothing (see the module docstring)
    allowed = limit.allowed(existing)
    if removals <= allowed:
        return []
    cascaded = len(named) - removals
    users = sum(1 for c in named if c.type is ResourceType.USER)
    what = " and ".join(
        _count(n, word) for n, word in ((users, "user"), (removals - users, "membership")) if n
    )
    if cascaded:
        what += f"; {_count(cascaded, 'membership')} removed with their users not counted"
    rule = "" if limit.count is not None else f"; a percentage applies from {REMOVAL_FLOOR} on"
    return [
        f"{removals} removals ({what}) exceed max_removals {limit} (allowed: {allowed} of "
        f"{existing} existing users and memberships{rule}); review the plan, then re-run with "
        f"--force, or raise policy.max_removals"
    ]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _organization_violations(identity: Identity, expected_organization: str | None) -> list[str]:
    actual = identity.organization.name
    if expected_organization is None or expected_organization == actual:
        return []
    return [
        f"the configuration is for organization {expected_organization!r} (organization.name) "
        f"but the API key belongs to organization {actual!r}; use {expected_organization!r}'s "
        f"key (see organization.token_env), or correct organization.name."
    ]


def _apply_role_violations(identity: Identity, for_apply: bool) -> list[str]:
    if not for_apply or identity.role == ADMIN:
        return []
    return [
        f"apply needs an admin's key; this key belongs to {identity.role} {identity.email}. "
        f"Run apply with an admin's key (plan works with a developer key)."
    ]


def _workspace_limit_violations(plan: Plan, current: State, identity: Identity) -> list[str]:
    limit = identity.organization.workspace_limit
    creates = sum(1 for c in plan.changes if c.type is ResourceType.WORKSPACE and c.action is Action.CREATE)
    total = len(current.workspaces) + creates
    if not creates or total <= limit:
        return []
    return [
        f"the plan would bring the organization to {total} workspaces, over its limit of "
        f"{limit}: {len(current.workspaces)} exist and {creates} would be created. "
        "Workspaces cannot be deleted through the API; declare fewer, or ask support to "
        "delete unused ones."
    ]


def _recent_production_key_violations(plan: Plan, policy: Policy) -> list[str]:
    """A removal, demotion or revocation that breaks a production API key used recently."""
    out = []
    for warning in plan.warnings:
        if warning.code != KEY_IMPACT or not warning.params.get("recent_production"):
            continue
        user = terminal(str(warning.params["user"]))
        out.append(
            f"{warning.params['verb']} {user} breaks the production API key(s) "
            f"{terminal(str(warning.params['recent_production']))}, used within the last "
            f"{policy.recent_use_days} days (policy.api_keys.recent_use_days). Move each key to a "
            "service account first: declare one under users with service_account: true, give it "
            "access, declare the key under the workspace's api_keys with that owner and apply (the "
            "rotation makes a key for it and delivers it), switch the consumers to the new key, and "
            f"only then remove {user}; or pass --force"
        )
    return out


def secrets_made(plan: Plan) -> list[Change]:
    """The changes whose apply makes a secret the server shows once (a webhook's signing secret)."""
    return [c for c in plan.changes if REGISTRY[c.type].makes_secret(c)]


def _secret_sink_violations(plan: Plan, secret_sink: bool | None) -> list[str]:
    if secret_sink is not False:
        return []
    made = secrets_made(plan)
    if not made:
        return []
    n = len(made)
    return [
        f"{n} change{'s' if n != 1 else ''} make{'s' if n == 1 else ''} a secret the server shows only "
        f"once (e.g. {terminal(REGISTRY[made[0].type].text_key(made[0].after))}), and no secret sink "
        "was given: apply with --secrets-dir DIR (one 0600 file per secret) or --secrets-command CMD "
        "(the secret on its stdin, e.g. 'gh secret set {name}')"
    ]


def check_guards(
    plan: Plan,
    *,
    current: State,
    identity: Identity,
    policy: Policy,
    expected_organization: str | None,
    force: bool = False,
    for_apply: bool = False,
    secret_sink: bool | None = None,
) -> None:
    """Raise ``UnsafePlanError`` listing every violation, or return if the plan is safe.

    ``current`` is the state the plan was made from; ``expected_organization``
    the config's ``organization.name`` (``None``: not checked). ``force``
    overrides ``max_removals`` only. ``for_apply`` additionally requires an
    admin's key. ``secret_sink`` says whether the operator gave a sink for
    the secrets the server makes (``None``: not known yet, as in ``plan``):
    without one, a plan that makes such secrets is refused before any change,
    since the server shows each of them only once.
    """
    problems = [
        *_organization_violations(identity, expected_organization),
        *_apply_role_violations(identity, for_apply),
        *_own_user_violations(plan, identity),
        *_protected_user_violations(plan, policy),
        *_min_admins_violations(plan, current, policy),
        *([] if force else _max_removals_violations(plan, current, policy)),
        *([] if force else _recent_production_key_violations(plan, policy)),
        *_workspace_limit_violations(plan, current, identity),
        *_secret_sink_violations(plan, secret_sink),
    ]
    if problems:
        n = len(problems)
        head = f"refusing the plan for {identity.organization.name}: {n} problem{'s' if n != 1 else ''}"
        raise UnsafePlanError(head + ":\n" + "\n".join(f"  - {p}" for p in problems))
