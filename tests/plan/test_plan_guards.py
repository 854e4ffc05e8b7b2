"""Guards: each rule blocks with a message naming the number, the limit and what to do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from provisioner.errors import UnsafePlanError
from provisioner.model import Identity, Membership, Organization, Policy, RemovalLimit, State, User, Workspace
from provisioner.plan.diff import diff
from provisioner.plan.guards import check_guards
from provisioner.plan.model import Plan

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACME = Organization(id="o1", name="acme", region="us-east-1")
ADMIN_KEY = Identity(user_id="u1", email="alice@acme.com", role="admin", organization=ACME)
DEV_KEY = Identity(user_id="u2", email="bob@acme.com", role="developer", organization=ACME)


def _users(*specs: str) -> list[User]:
    """``"alice:admin"`` -> an active user; ``"dan:admin:invited"`` -> an invited one."""
    out = []
    for spec in specs:
        name, role, *status = spec.split(":")
        out.append(User(f"{name}@acme.com", role, *(status or []), id=f"id-{name}"))
    return out


TEAM = _users("alice:admin", "bob:developer", "carol:admin", "dave:developer")
LENIENT = Policy(max_removals=RemovalLimit(percent=100))


def _check(
    current: State,
    desired: State,
    *,
    policy: Policy = LENIENT,
    identity: Identity = ADMIN_KEY,
    expected_organization: str | None = "acme",
    force: bool = False,
    for_apply: bool = False,
) -> Plan:
    plan = diff(current, desired, policy, now=NOW)
    check_guards(
        plan,
        current=current,
        identity=identity,
        policy=policy,
        expected_organization=expected_organization,
        force=force,
        for_apply=for_apply,
    )
    return plan


def _refusal(**kwargs: object) -> str:
    with pytest.raises(UnsafePlanError) as caught:
        _check(**kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def test_a_safe_plan_passes() -> None:
    plan = _check(State.build(TEAM), State.build([*TEAM, *_users("erin:developer")]), for_apply=True)
    assert plan.summary.create == 1


def test_own_user_is_never_removed() -> None:
    message = _refusal(current=State.build(TEAM), desired=State.build(TEAM[1:]))
    assert "removes alice@acme.com, the owner of the API key in use" in message
    assert "Keep alice@acme.com as an admin in the configuration" in message


def test_own_user_is_never_demoted() -> None:
    message = _refusal(
        current=State.build(TEAM),
        desired=State.build(_users("alice:developer", *["bob:developer", "carol:admin", "dave:developer"])),
    )
    assert "demotes alice@acme.com (admin -> developer), the owner of the API key" in message


@pytest.mark.parametrize(
    "desired_carol, verb",
    [
        (None, "removes carol@acme.com"),
        ("carol:developer", "demotes carol@acme.com (admin -> developer)"),
    ],
)
def test_protected_users_are_never_removed_or_demoted(desired_carol: str | None, verb: str) -> None:
    desired = _users(
        "alice:admin", "bob:developer", "dave:developer", *([desired_carol] if desired_carol else [])
    )
    message = _refusal(
        current=State.build(TEAM),
        desired=State.build(desired),
        policy=Policy(protected_users=frozenset({"carol@acme.com"}), max_removals=RemovalLimit(percent=100)),
    )
    assert f"the plan {verb}, which is in policy.protected_users" in message
    assert "remove it from policy.protected_users first" in message


def test_protected_users_refuse_any_role_change_even_a_promotion() -> None:
    message = _refusal(
        current=State.build(TEAM),
        desired=State.build(_users("alice:admin", "bob:admin", "carol:admin", "dave:developer")),
        policy=Policy(protected_users=frozenset({"bob@acme.com"})),
    )
    assert "changes the role of bob@acme.com (developer -> admin)" in message
    assert "no change of any kind (removal, demotion or any role change)" in message


def test_min_admins_counts_active_admins_only() -> None:
    # dan is an invited admin: he does not count, so demoting carol leaves 1 < 2.
    current = State.build([*TEAM, *_users("dan:admin:invited")])
    desired = State.build(
        _users("alice:admin", "bob:developer", "carol:developer", "dave:developer", "dan:admin")
    )
    message = _refusal(current=current, desired=desired, policy=Policy(min_admins=2))
    assert "after this plan 1 active admin would remain (now 2), fewer than policy.min_admins 2" in message
    assert "keep or promote active admins" in message


def test_min_admins_counts_promotions_of_active_users() -> None:
    desired = State.build(_users("alice:admin", "bob:admin", "carol:developer", "dave:developer"))
    plan = _check(State.build(TEAM), desired, policy=Policy(min_admins=2))
    assert plan.summary.update == 2


def _team_in(*spaces: str) -> tuple[list[Workspace], list[Membership]]:
    """Every TEAM member in each of ``spaces``."""
    workspaces = [Workspace(w, id=f"id-{w}") for w in spaces]
    return workspaces, [Membership(w, u.email, id=f"m-{w}-{u.email}") for w in spaces for u in TEAM]


def test_max_removals_counts_direct_membership_removals_and_names_number_limit_and_flag() -> None:
    workspaces, memberships = _team_in("w1", "w2")
    current = State.build(TEAM, workspaces, memberships)  # 4 users + 8 memberships = 12 objects
    desired = State.build(TEAM, workspaces, memberships[:4])  # revokes all 4 of w2
    message = _refusal(current=current, desired=desired, policy=Policy())
    assert (
        "4 removals (4 memberships) exceed max_removals 25% (allowed: 3 of 12 existing users and "
        "memberships; a percentage applies from 10 on); review the plan, then re-run with --force, "
        "or raise policy.max_removals"
    ) in message


def test_offboarding_a_user_is_one_removal_however_many_workspaces_they_had() -> None:
    workspaces, memberships = _team_in("w1", "w2")
    current = State.build(TEAM, workspaces, memberships)
    keep = [m for m in memberships if m.user not in ("bob@acme.com", "dave@acme.com")]
    # bob and dave go, each with 2 cascaded memberships: 2 removals of 3 allowed.
    plan = _check(current, State.build([TEAM[0], TEAM[2]], workspaces, keep), policy=Policy())
    assert plan.summary.delete == 6 and sum(c.cascade for c in plan.changes) == 4


def test_a_refusal_shows_cascaded_memberships_but_does_not_count_them() -> None:
    workspaces, memberships = _team_in("w1", "w2")
    current = State.build(TEAM, workspaces, memberships)
    # bob and dave go (4 cascaded memberships), and carol loses w1 and w2 directly.
    keep = [m for m in memberships if m.user == "alice@acme.com"]
    desired = State.build([TEAM[0], TEAM[2]], workspaces, keep)
    message = _refusal(current=current, desired=desired, policy=Policy())
    assert (
        "4 removals (2 users and 2 memberships; 4 memberships removed with their users not counted)"
        in message
    )


def test_below_ten_existing_objects_a_percentage_does_not_apply() -> None:
    workspaces, memberships = _team_in("w1")
    current = State.build(TEAM, workspaces, memberships[:3])  # 4 users + 3 memberships = 7 objects
    plan = _check(current, State.build(TEAM[:1], workspaces, memberships[:1]), policy=Policy())
    assert plan.summary.delete == 5  # 3 users (2 cascades) and no limit below the floor
    # At the floor the percentage applies: 10 objects allow 2 removals.
    spaces, _ = _team_in("w1", "w9")
    ten = State.build(TEAM, spaces, memberships + _team_in("w9")[1][:2])  # 4 + 4 + 2
    alice_only = State.build(
        TEAM[:1], spaces, [Membership("w1", "alice@acme.com"), Membership("w9", "alice@acme.com")]
    )
    message = _refusal(current=ten, desired=alice_only, policy=Policy())
    assert "3 removals (3 users; 4 memberships removed with their users not counted)" in message
    assert "(allowed: 2 of 10 existing users and memberships;" in message


def test_an_absolute_max_removals_applies_to_a_tiny_org_and_counts_ignored_objects_out() -> None:
    current = State.build(_users("alice:admin", "bob:developer", "x:admin"))
    desired = State.build(_users("alice:admin"))
    message = _refusal(
        current=current,
        desired=desired,
        policy=Policy(max_removals=RemovalLimit(count=0), ignore_users=("x@*",)),
    )
    assert (
        "1 removals (1 user) exceed max_removals 0 (allowed: 0 of 2 existing users and memberships);"
        in message
    )
    assert "a percentage applies" not in message


def test_force_overrides_max_removals() -> None:
    plan = _check(State.build(TEAM), State.build(TEAM[:1]), policy=Policy(), force=True)
    assert plan.summary.delete == 3


def test_force_overrides_nothing_else_and_all_violations_are_listed() -> None:
    message = _refusal(
        current=State.build(TEAM),
        desired=State.build(_users("bob:developer")),
        policy=Policy(min_admins=1),
        identity=DEV_KEY,
        expected_organization="globex",
        force=True,
        for_apply=True,
    )
    assert message.startswith("refusing the plan for acme: 3 problems:")
    assert "configuration is for organization 'globex'" in message
    assert "apply needs an admin's key; this key belongs to developer bob@acme.com" in message
    assert "after this plan 0 active admins would remain (now 2)" in message
    assert "max_removals" not in message


def test_organization_must_match_the_key() -> None:
    message = _refusal(current=State.build(TEAM), desired=State.build(TEAM), expected_organization="globex")
    assert "the API key belongs to organization 'acme'" in message
    assert "use 'globex''s key (see organization.token_env), or correct organization.name" in message


def test_organization_is_not_checked_without_a_name() -> None:
    plan = _check(State.build(TEAM), State.build(TEAM), expected_organization=None)
    assert plan.empty


def test_plan_works_with_a_developer_key_but_apply_does_not() -> None:
    assert _check(State.build(TEAM), State.build(TEAM), identity=DEV_KEY).empty
    message = _refusal(current=State.build(TEAM), desired=State.build(TEAM), identity=DEV_KEY, for_apply=True)
    assert "Run apply with an admin's key" in message


def test_inviting_an_absent_protected_user_is_allowed() -> None:
    plan = _check(
        State.build(TEAM),
        State.build([*TEAM, *_users("erin:admin")]),
        policy=Policy(protected_users=frozenset({"erin@acme.com"})),
    )
    assert [c.key for c in plan.changes] == ["erin@acme.com"]
