"""Replay a plan's changes onto a state, in memory.

Used to know what an apply left behind (for the audit record that ``drift``
reads) without reading the organization again. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from provisioner.model import Membership, State, User, Workspace
from provisioner.plan.model import Action, Change, ResourceType


def replay(state: State, changes: Iterable[Change]) -> State:
    """The state after ``changes`` (in the order given) were made to ``state``."""
    users = dict(state.users)
    workspaces = dict(state.workspaces)
    memberships = dict(state.memberships)
    for change in changes:
        if change.type is ResourceType.USER:
            if change.action is Action.DELETE:
                email = change.key
                users.pop(email, None)
                for key in [k for k in memberships if k[1] == email]:
                    del memberships[key]
            else:
                assert isinstance(change.after, User)
                users[change.key] = change.after
        elif change.type is ResourceType.WORKSPACE:
            assert isinstance(change.after, Workspace)
            workspaces[change.after.name] = change.after
        else:
            target = change.after if change.action is Action.CREATE else change.before
            assert isinstance(target, Membership)
            if change.action is Action.CREATE:
                memberships[target.key] = target
            else:
                memberships.pop(target.key, None)
    return State.build(list(users.values()), list(workspaces.values()), list(memberships.values()))
