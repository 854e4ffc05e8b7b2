"""Diff details the table cannot show (before/after values, pass-through fields) and properties."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.model import ACTIVE, INVITED, Membership, Policy, State, User, Workspace
from provisioner.plan.diff import diff, filter_ignored
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.plan.model import Action, ResourceType, describe_warning, phase_of
from provisioner.render.plan_json import render_json
from tests.plan.plan_testkit import apply_in_memory

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_user_update_keeps_server_identity_and_status() -> None:
    current = State.build([User("bob@acme.com", "developer", INVITED, id="u2", etag='"7"')])
    desired = State.build([User("bob@acme.com", "admin")])
    (change,) = diff(current, desired, Policy(), now=NOW).changes
    assert change.before == current.users["bob@acme.com"]
    assert change.after == User("bob@acme.com", "admin", INVITED, id="u2", etag='"7"')


def test_membership_create_carries_expiry_and_reason_and_delete_carries_server_id() -> None:
    until = datetime(2026, 12, 31, tzinfo=UTC)
    current = State.build(
        [User("bob@acme.com", "developer", id="u1")],
        [Workspace("p", id="w1"), Workspace("s", id="w2")],
        [Membership("s", "bob@acme.com", id="m9", etag='"3"')],
    )
    desired = State.build(
        [User("bob@acme.com", "developer")],
        [Workspace("p"), Workspace("s")],
        [Membership("p", "bob@acme.com", expires=until, reason="INC-4711")],
    )
    grant, revoke = diff(current, desired, Policy(), now=NOW).changes
    assert (grant.action, grant.before, grant.after) == (
        Action.CREATE,
        None,
        desired.memberships[("p", "bob@acme.com")],
    )
    assert (grant.reason, grant.expires) == ("INC-4711", until)
    assert (revoke.action, revoke.before, revoke.after) == (
        Action.DELETE,
        current.memberships[("s", "bob@acme.com")],
        None,
    )


def test_plan_carries_organization_digest_and_fingerprint_of_unfiltered_current() -> None:
    current = State.build([User("x@bots.io", "admin", id="u1")])
    plan = diff(
        current,
        State(),
        Policy(ignore_users=("*@bots.io",)),
        now=NOW,
        organization="acme",
        config_digest="abc",
    )
    assert plan.empty
    assert (plan.organization, plan.config_digest) == ("acme", "abc")
    assert plan.state_fingerprint == state_fingerprint(current)


def test_fingerprint_changes_with_any_server_side_detail() -> None:
    base = State.build([User("a@x.io", "admin", id="u1", etag='"1"')])
    variants = [
        State.build([User("a@x.io", "admin", id="u1", etag='"2"')]),
        State.build([User("a@x.io", "admin", id="u9", etag='"1"')]),
        State.build([User("a@x.io", "admin", INVITED, id="u1", etag='"1"')]),
        State.build([User("a@x.io", "developer", id="u1", etag='"1"')]),
        State.build([User("a@x.io", "admin", id="u1", etag='"1"')], [Workspace("w", id="w1")]),
    ]
    fingerprints = {state_fingerprint(s) for s in variants}
    assert state_fingerprint(base) not in fingerprints
    assert len(fingerprints) == len(variants)
    assert len(state_fingerprint(base)) == 64


def test_ignore_globs_are_case_insensitive_for_emails_only() -> None:
    policy = Policy(ignore_users=("*@BOTS.io",), ignore_workspaces=("tmp-*",))
    state = State.build(
        [User("ci@bots.io", "developer"), User("ci@bots.iox", "developer")],
        [Workspace("tmp-1"), Workspace("TMP-1")],
        [
            Membership("TMP-1", "ci@bots.io"),
            Membership("TMP-1", "ci@bots.iox"),
            Membership("tmp-1", "ci@bots.iox"),
        ],
    )
    seen = filter_ignored(state, policy)
    assert set(seen.users) == {"ci@bots.iox"}
    assert set(seen.workspaces) == {"TMP-1"}
    # A membership goes when its user or its workspace is ignored.
    assert set(seen.memberships) == {("TMP-1", "ci@bots.iox")}


def test_filter_ignored_keys_users_and_memberships_by_lowercased_email() -> None:
    state = State.build(
        [User("Bob@Acme.com", "developer")], [Workspace("w")], [Membership("w", "Bob@Acme.com")]
    )
    seen = filter_ignored(state, Policy())
    assert set(seen.users) == {"bob@acme.com"}
    assert set(seen.memberships) == {("w", "bob@acme.com")}


# --- properties -------------------------------------------------------------

EMAILS = ["a@acme.com", "b@acme.com", "c@acme.com", "d@acme.com", "e@acme.com", "x@bots.io"]
WORKSPACES = ["app-production", "app-staging", "web-production", "tmp-1"]
EXPIRIES = [None, None, NOW - timedelta(days=1), NOW, NOW + timedelta(days=1), NOW + timedelta(days=30)]
POLICIES = [
    Policy(),
    Policy(ignore_users=("*@bots.io",)),
    Policy(ignore_workspaces=("tmp-*",)),
    Policy(ignore_users=("*@bots.io",), ignore_workspaces=("tmp-*",)),
]


@st.composite
def states(draw: st.DrawFn, *, server: bool, expiries: list[datetime | None] = EXPIRIES) -> State:
    """A random state. ``server``: ids, ETags and statuses (current side); else expiries (desired)."""
    emails = draw(st.lists(st.sampled_from(EMAILS), unique=True))
    names = draw(st.lists(st.sampled_from(WORKSPACES), unique=True))
    users = [
        User(
            e,
            draw(st.sampled_from(["admin", "developer"])),
            draw(st.sampled_from([ACTIVE, INVITED])) if server else ACTIVE,
            id=f"u-{e}" if server else None,
            etag=draw(st.sampled_from(['"1"', '"2"'])) if server else None,
        )
        for e in emails
    ]
    workspaces = [Workspace(n, id=f"w-{n}" if server else None) for n in names]
    pairs = [(w, e) for w in names for e in emails]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    memberships = [
        Membership(w, e, id=f"m-{w}-{e}")
        if server
        else Membership(
            w, e, expires=draw(st.sampled_from(expiries)), reason=draw(st.sampled_from([None, "INC-1"]))
        )
        for w, e in chosen
    ]
    return State.build(users, workspaces, memberships)


def _view(state: State) -> tuple[dict[str, str], set[str], set[tuple[str, str]]]:
    """What the diff manages: roles by email, workspace names, membership keys."""
    return (
        {e: u.role for e, u in state.users.items()},
        set(state.workspaces),
        set(state.memberships),
    )


@settings(max_examples=300, deadline=None)
@given(states(server=True), states(server=False), st.sampled_from(POLICIES))
def test_applying_the_plan_yields_desired(current: State, desired: State, policy: Policy) -> None:
    plan = diff(current, desired, policy, now=NOW)
    result = apply_in_memory(current, plan)

    cur, des, res = (filter_ignored(s, policy) for s in (current, desired, result))
    undeclared = set(cur.workspaces) - set(des.workspaces)
    live = {k for k, m in des.memberships.items() if m.expires is None or m.expires > NOW}
    removed = set(cur.users) - set(des.users)

    roles, names, keys = _view(res)
    assert roles == {e: u.role for e, u in des.users.items()}
    assert names == set(des.workspaces) | undeclared  # never deleted
    assert {k for k in keys if k[0] not in undeclared} == live
    # Memberships on undeclared workspaces are unmanaged: only the server's
    # cascade of a removed user touches them.
    assert {k for k in keys if k[0] in undeclared} == {
        k for k in cur.memberships if k[0] in undeclared and k[1] not in removed
    }

    # Ignored objects are untouched (but for the server's cascade of a removed user).
    def ignored(s: State) -> tuple[dict[str, User], set[str], set[tuple[str, str]]]:
        seen = filter_ignored(s, policy)
        return (
            {e: u for e, u in s.users.items() if e not in seen.users},
            {n for n in s.workspaces if n not in seen.workspaces},
            {k for k in s.memberships if k not in seen.memberships and k[1] not in removed},
        )

    assert ignored(result) == ignored(current)
    # And a second plan is empty.
    assert diff(result, desired, policy, now=NOW).changes == ()


@settings(max_examples=200, deadline=None)
@given(states(server=False, expiries=[None, NOW + timedelta(days=30)]), st.sampled_from(POLICIES))
def test_diff_of_a_state_with_itself_is_empty(state: State, policy: Policy) -> None:
    plan = diff(state, state, policy, now=NOW)
    assert plan.changes == ()
    # The one warning left: an organization below policy.min_admins hears of it on every plan.
    admins = sum(1 for u in state.users.values() if u.role == "admin" and u.status == "active")
    expected = (
        ()
        if admins >= policy.min_admins
        else (
            f"the organization has {admins} active admin{'s' if admins != 1 else ''}, fewer than "
            f"policy.min_admins {policy.min_admins} (after this plan: {admins}); promote active users to "
            "admin in the configuration (invited admins count once they accept), or lower policy.min_admins.",
        )
    )
    assert tuple(describe_warning(w) for w in plan.warnings) == expected
    assert all(w.code == "below-min-admins" for w in plan.warnings)


@settings(max_examples=200, deadline=None)
@given(
    states(server=True), states(server=False), st.sampled_from(POLICIES), st.randoms(use_true_random=False)
)
def test_diff_is_deterministic(current: State, desired: State, policy: Policy, rnd: random.Random) -> None:
    def shuffled(s: State) -> State:
        parts = [list(s.users.values()), list(s.workspaces.values()), list(s.memberships.values())]
        for part in parts:
            rnd.shuffle(part)
        return State.build(*parts)

    first = diff(current, desired, policy, now=NOW, organization="acme", config_digest="d")
    second = diff(
        shuffled(current), shuffled(desired), policy, now=NOW, organization="acme", config_digest="d"
    )
    assert first == second
    assert render_json(first, tool_version="1.0") == render_json(second, tool_version="1.0")
    order = [list(ResourceType).index(c.type) for c in first.changes]
    sort_keys = [(int(phase_of(c)), t, c.key) for c, t in zip(first.changes, order)]
    assert sort_keys == sorted(sort_keys)
