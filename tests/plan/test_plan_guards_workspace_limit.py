"""The workspace limit is a guard like the others: reported with every other violation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from provisioner.errors import UnsafePlanError
from provisioner.model import Identity, Organization, Policy, RemovalLimit, State, User, Workspace
from provisioner.plan.diff import diff
from provisioner.plan.guards import check_guards

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SMALL = Organization(id="o1", name="acme", region="us-east-1", workspace_limit=2)
ADMIN_KEY = Identity(user_id="u1", email="alice@acme.com", role="admin", organization=SMALL)
ALICE = User("alice@acme.com", "admin", id="id-alice")
LENIENT = Policy(max_removals=RemovalLimit(percent=100))


def _refusal(current: State, desired: State, identity: Identity = ADMIN_KEY) -> str:
    plan = diff(current, desired, LENIENT, now=NOW)
    with pytest.raises(UnsafePlanError) as caught:
        check_guards(plan, current=current, identity=identity, policy=LENIENT, expected_organization="acme")
    return str(caught.value)


def test_creating_workspaces_beyond_the_limit_is_refused_with_the_numbers() -> None:
    current = State.build([ALICE], [Workspace("a", id="w-a")])
    desired = State.build([ALICE], [Workspace("a"), Workspace("b"), Workspace("c")])
    message = _refusal(current, desired)
    assert "1 problem" in message
    assert "3 workspaces, over its limit of 2: 1 exist and 2 would be created" in message


def test_the_limit_is_listed_with_the_other_violations() -> None:
    current = State.build([ALICE], [])
    desired = State.build([], [Workspace("a"), Workspace("b"), Workspace("c")])  # removes the key's own user
    message = _refusal(current, desired)
    assert "3 problems" in message  # and min_admins
    assert "the owner of the API key in use" in message
    assert "over its limit of 2" in message


def test_exactly_at_the_limit_passes() -> None:
    current = State.build([ALICE], [Workspace("a", id="w-a")])
    desired = State.build([ALICE], [Workspace("a"), Workspace("b")])
    plan = diff(current, desired, LENIENT, now=NOW)
    check_guards(plan, current=current, identity=ADMIN_KEY, policy=LENIENT, expected_organization="acme")
