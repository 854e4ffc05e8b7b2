"""Helpers shared by the plan tests: states from data, a pure in-memory apply, golden files."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from provisioner.model import Membership, Policy, RemovalLimit, State, User, Workspace
from provisioner.plan.model import Action, Plan, ResourceType

HERE = Path(__file__).parent
CASES = HERE / "cases"
GOLDEN = HERE / "golden"
UPDATE_GOLDEN = os.environ.get("PROVISIONER_UPDATE_GOLDEN") == "1"


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def state_from_data(data: Mapping[str, Any] | None) -> State:
    """A ``State`` from a case file's ``current``/``desired`` block."""
    data = data or {}
    return State.build(
        [User(**u) for u in data.get("users", [])],
        [Workspace(**w) for w in data.get("workspaces", [])],
        [Membership(**{**m, "expires": parse_time(m.get("expires"))}) for m in data.get("memberships", [])],
    )


def policy_from_data(data: Mapping[str, Any] | None) -> Policy:
    data = dict(data or {})
    if "max_removals" in data:
        data["max_removals"] = RemovalLimit(**data["max_removals"])
    if "protected_users" in data:
        data["protected_users"] = frozenset(data["protected_users"])
    for key in ("ignore_users", "ignore_workspaces"):
        if key in data:
            data[key] = tuple(data[key])
    return Policy(**data)


def apply_in_memory(current: State, plan: Plan) -> State:
    """What the organization looks like after a successful apply of ``plan``. Pure.

    Models the server: removing a user removes their memberships. It is strict
    so that a wrong plan fails loudly: creating what exists, or touching what
    does not, raises ``AssertionError``.
    """
    users = {u.email: u for u in current.users.values()}
    workspaces = dict(current.workspaces)
    memberships = dict(current.memberships)
    removed_users = {c.key for c in plan.changes if c.type is ResourceType.USER and c.action is Action.DELETE}
    for change in plan.changes:
        if change.type is ResourceType.USER:
            if change.action is Action.CREATE:
                assert change.key not in users, change
                assert isinstance(change.after, User)
                users[change.key] = change.after
            elif change.action is Action.UPDATE:
                assert change.key in users, change
                assert isinstance(change.after, User)
                users[change.key] = change.after
            else:
                assert users.pop(change.key, None) is not None, change
                for key in [k for k in memberships if k[1] == change.key]:
                    del memberships[key]  # the server's cascade
        elif change.type is ResourceType.WORKSPACE:
            assert change.action is Action.CREATE and change.key not in workspaces, change
            assert isinstance(change.after, Workspace)
            workspaces[change.key] = change.after
        else:
            if change.action is Action.CREATE:
                assert isinstance(change.after, Membership)
                assert change.after.key not in memberships, change
                assert change.after.workspace in workspaces, change
                memberships[change.after.key] = change.after
            else:
                assert isinstance(change.before, Membership)
                assert change.before.key in memberships, change
                # A cascaded delete costs no API call: its user's removal does it.
                assert change.cascade == (change.before.user in removed_users), change
                del memberships[change.before.key]
    return State(
        users=MappingProxyType(users),
        workspaces=MappingProxyType(workspaces),
        memberships=MappingProxyType(memberships),
    )


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``golden/<name>``; ``PROVISIONER_UPDATE_GOLDEN=1`` rewrites it first."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), (
        f"missing golden file {path}; run PROVISIONER_UPDATE_GOLDEN=1 python -m pytest tests/plan"
    )
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"{name} differs from its golden file; review, then regenerate with PROVISIONER_UPDATE_GOLDEN=1 python -m pytest tests/plan"
    )
