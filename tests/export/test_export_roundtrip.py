"""Round trip: random organization -> export_config -> read back -> the same organization.

The reader here is a small reference implementation of the version-1
semantics from the config format's description (groups nest; an instance's
members are its environment's members plus its own). It checks the text
export writes, independently of the real loader; the round trip through
``provisioner.config.load_config`` and the diff lives in
``test_export_loader_roundtrip.py``.
"""

from __future__ import annotations

from random import Random

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.export import export_config
from provisioner.model import INVITED, State
from tests.export.export_strategies import Org, organizations


def _resolve(items: list, groups: dict[str, list], seen: tuple[str, ...] = ()) -> set[str]:
    out: set[str] = set()
    for item in items:
        assert isinstance(item, str), f"export writes members as strings, got {item!r}"
        if item.startswith("@"):
            name = item[1:]
            assert name not in seen, f"group cycle through {name}"
            out |= _resolve(groups[name], groups, seen + (name,))
        else:
            out.add(item)
    return out


def expand(doc: dict) -> tuple[dict[str, str], set[str], set[tuple[str, str]]]:
    """(users by email -> role, workspace names, (workspace, email) memberships)."""
    assert doc["version"] == 1
    users = {u["email"]: u["role"] for u in doc["users"]}
    assert len(users) == len(doc["users"]), "duplicate users"
    groups = doc.get("groups") or {}
    envs = doc.get("environments") or {}
    fmt = doc["workspace_name_format"]
    workspaces: set[str] = set()
    memberships: set[tuple[str, str]] = set()
    entry_names = [w["name"] for w in doc.get("workspaces") or []]
    assert len(entry_names) == len(set(entry_names)), "duplicate workspace entries"
    for entry in doc.get("workspaces") or []:
        if "environments" in entry:
            own = entry.get("members") or {}
            assert set(own) <= set(entry["environments"])
            instances = {
                fmt.format(workspace=entry["name"], environment=env): (
                    _resolve(envs[env].get("members") or [], groups) | _resolve(own.get(env) or [], groups)
                )
                for env in entry["environments"]
            }
        else:
            instances = {entry["name"]: _resolve(entry.get("members") or [], groups)}
        for name, members in instances.items():
            assert name not in workspaces, f"{name} declared twice"
            workspaces.add(name)
            memberships |= {(name, email) for email in members}
    return users, workspaces, memberships


@settings(max_examples=200, deadline=None)
@given(organizations(odd_names=True))
def test_the_exported_text_declares_exactly_the_organization(org: Org) -> None:
    text = export_config(org.identity, org.current, workspace_name_format=org.workspace_name_format)
    users, workspaces, memberships = expand(yaml.safe_load(text))
    current = org.current
    assert users == {u.email: u.role for u in current.users.values()}
    assert workspaces == set(current.workspaces)
    assert memberships == set(current.memberships)
    # Every member reference names a declared user or group.
    assert {email for _, email in memberships} <= set(users)


@settings(max_examples=100, deadline=None)
@given(organizations())
def test_pending_invitations_and_only_they_are_marked(org: Org) -> None:
    text = export_config(org.identity, org.current, workspace_name_format=org.workspace_name_format)
    marked = {
        yaml.safe_load(line.split("#")[0].strip()[2:])["email"]
        for line in text.splitlines()
        if line.endswith("# pending invitation")
    }
    assert marked == {u.email for u in org.current.users.values() if u.status == INVITED}


@settings(max_examples=100, deadline=None)
@given(organizations(odd_names=True), st.randoms(use_true_random=False))
def test_export_is_byte_identical_whatever_the_read_order(org: Org, rnd: Random) -> None:
    # The reader may return objects in any order (pagination, server sort);
    # the file must not change because of it.
    current = org.current
    users, workspaces, memberships = (
        list(current.users.values()),
        list(current.workspaces.values()),
        list(current.memberships.values()),
    )
    for objects in (users, workspaces, memberships):
        rnd.shuffle(objects)
    shuffled = State.build(users, workspaces, memberships)
    kwargs = {"workspace_name_format": org.workspace_name_format}
    first = export_config(org.identity, current, **kwargs)
    assert export_config(org.identity, shuffled, **kwargs) == first
