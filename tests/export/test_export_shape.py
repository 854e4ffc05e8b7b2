"""Unit tests of ``export_config``: the structure it chooses and the text it writes.

Most tests parse the output with ``yaml.safe_load`` and compare whole
sections, so they check what a loader would read, not incidental spacing; a
few check exact lines where the text itself is the point (comments, style).
"""

from __future__ import annotations

import pytest
import yaml

from provisioner.export import export_config
from provisioner.model import (
    ADMIN,
    DEVELOPER,
    INVITED,
    Identity,
    Membership,
    Organization,
    State,
    User,
    Workspace,
)

ORG = Organization(id="org_42", name="acme", region="eu-central-1")
IDENTITY = Identity(user_id="u_1", email="alice@acme.com", role=ADMIN, organization=ORG)
ALICE, BOB, CAROL, DAVE = "alice@acme.com", "bob@acme.com", "carol@acme.com", "dave@acme.com"


def state(
    members: dict[str, list[str]],
    users: dict[str, str] | None = None,
    invited: tuple[str, ...] = (),
) -> State:
    """A State from ``{workspace: [emails]}``; users default to developers (alice admin)."""
    emails = sorted({e for ms in members.values() for e in ms} | set(users or {}) | {ALICE})
    roles = {ALICE: ADMIN} | (users or {})
    return State.build(
        [User(e, roles.get(e, DEVELOPER), INVITED if e in invited else "active") for e in emails],
        [Workspace(w) for w in members],
        [Membership(w, e) for w, ms in members.items() for e in ms],
    )


def export(current: State, **kwargs) -> dict:
    return yaml.safe_load(export_config(IDENTITY, current, **kwargs))


def test_instances_of_known_environments_fold_into_one_workspace() -> None:
    doc = export(
        state(
            {
                "notetaker-production": [],
                "notetaker-development": [],
                "notetaker-qa": [],  # not a given environment: stays plain
                "playground": [],
            }
        )
    )
    assert doc["workspaces"] == [
        # only the environments that exist for it, in the given order
        {"name": "notetaker", "environments": ["development", "production"]},
        {"name": "notetaker-qa", "members": []},
        {"name": "playground", "members": []},
    ]
    assert list(doc["environments"]) == ["development", "production"]
    assert doc["workspace_name_format"] == "{workspace}-{environment}"


def test_a_base_name_taken_by_a_plain_workspace_does_not_fold() -> None:
    # Folding would give two entries named "notetaker".
    doc = export(state({"notetaker": [], "notetaker-production": [BOB]}))
    assert doc["workspaces"] == [
        {"name": "notetaker", "members": []},
        {"name": "notetaker-production", "members": [BOB]},
    ]
    assert "environments" not in doc


def test_other_name_formats_and_environment_lists_are_honoured() -> None:
    doc = export(
        state({"prod.notetaker": [BOB], "dev.notetaker": [], "notetaker-production": []}),
        environments=("dev", "prod"),
        workspace_name_format="{environment}.{workspace}",
    )
    assert doc["workspace_name_format"] == "{environment}.{workspace}"
    assert doc["environments"] == {"dev": {"members": []}, "prod": {"members": [BOB]}}
    assert doc["workspaces"] == [
        {"name": "notetaker", "environments": ["dev", "prod"]},
        {"name": "notetaker-production", "members": []},
    ]


def test_access_shared_by_every_instance_of_an_environment_is_lifted() -> None:
    doc = export(
        state(
            {
                "notetaker-production": [ALICE, BOB, CAROL],
                "recorder-production": [ALICE, BOB],
                "notetaker-development": [CAROL],
            }
        )
    )
    assert doc["environments"] == {
        "development": {"members": [CAROL]},  # its only instance: all of it lifts
        "production": {"members": [ALICE, BOB]},
    }
    assert "groups" not in doc  # each set is written once
    assert doc["workspaces"] == [
        {
            "name": "notetaker",
            "environments": ["development", "production"],
            "members": {"production": [CAROL]},
        },
        {"name": "recorder", "environments": ["production"]},
    ]


def test_access_missing_from_one_instance_is_not_lifted() -> None:
    # bob is in every notetaker instance but not in recorder-production; the
    # production environment's members would reach recorder too.
    doc = export(
        state(
            {
                "notetaker-production": [ALICE, BOB],
                "recorder-production": [ALICE],
            }
        )
    )
    assert doc["environments"] == {"production": {"members": [ALICE]}}
    assert doc["workspaces"][0]["members"] == {"production": [BOB]}
    assert "members" not in doc["workspaces"][1]


def test_plain_workspaces_do_not_take_part_in_lifting() -> None:
    doc = export(state({"notetaker-production": [ALICE], "playground": []}))
    assert doc["environments"] == {"production": {"members": [ALICE]}}
    assert doc["workspaces"][1] == {"name": "playground", "members": []}


def test_repeated_member_sets_become_numbered_groups() -> None:
    doc = export(
        state(
            {
                "billing": [BOB, CAROL],
                "search": [BOB, CAROL],
                "ads": [CAROL, DAVE],
                "maps": [CAROL, DAVE],
                "solo-a": [DAVE],  # a single member is never worth a group
                "solo-b": [DAVE],
                "unique": [BOB, DAVE],  # used once
            }
        )
    )
    # Numbered in the order they first appear: workspaces sorted by name.
    assert doc["groups"] == {"group-1": [CAROL, DAVE], "group-2": [BOB, CAROL]}
    assert {w["name"]: w["members"] for w in doc["workspaces"]} == {
        "ads": ["@group-1"],
        "billing": ["@group-2"],
        "maps": ["@group-1"],
        "search": ["@group-2"],
        "solo-a": [DAVE],
        "solo-b": [DAVE],
        "unique": [BOB, DAVE],
    }


def test_a_group_first_used_by_an_environment_is_named_after_it() -> None:
    doc = export(
        state(
            {
                "notetaker-development": [ALICE, BOB],
                "recorder-development": [ALICE, BOB, CAROL],
                "sandbox": [ALICE, BOB],
            }
        )
    )
    assert doc["groups"] == {"development-team": [ALICE, BOB]}
    assert doc["environments"] == {"development": {"members": ["@development-team"]}}
    assert doc["workspaces"] == [
        {"name": "notetaker", "environments": ["development"]},
        {"name": "recorder", "environments": ["development"], "members": {"development": [CAROL]}},
        {"name": "sandbox", "members": ["@development-team"]},
    ]


def test_no_groups_section_without_repeats() -> None:
    doc = export(state({"a": [ALICE, BOB], "b": [ALICE]}))
    assert "groups" not in doc


def test_users_are_sorted_and_pending_invitations_are_marked() -> None:
    text = export_config(
        IDENTITY,
        state({}, users={DAVE: ADMIN, BOB: DEVELOPER, CAROL: DEVELOPER}, invited=(CAROL,)),
    )
    users = text.split("users:\n", 1)[1].split("\n")[:4]
    assert users == [
        "  - {email: alice@acme.com, role: admin}",
        "  - {email: bob@acme.com, role: developer}",
        "  - {email: carol@acme.com, role: developer}  # pending invitation",
        "  - {email: dave@acme.com, role: admin}",
    ]


def test_header_counts_the_organization() -> None:
    current = state({"a-production": [ALICE, BOB], "b": [BOB]}, invited=(BOB,))
    header = export_config(IDENTITY, current).splitlines()[:2]
    assert header == [
        "# Generated by `provisioner export` from organization acme (org_42):",
        "# 2 users (1 pending), 2 workspaces, 3 memberships.",
    ]


def test_organization_section_uses_the_identity_region_or_what_is_given() -> None:
    current = state({})
    assert export(current)["organization"] == {
        "name": "acme",
        "region": "eu-central-1",
        "token_env": "RECALL_API_KEY",
    }
    assert export(current, region="us-west-2", token_env="ACME_KEY")["organization"] == {
        "name": "acme",
        "region": "us-west-2",
        "token_env": "ACME_KEY",
    }
    assert export(current, api_url="http://127.0.0.1:8080/api/v1")["organization"] == {
        "name": "acme",
        "api_url": "http://127.0.0.1:8080/api/v1",
        "token_env": "RECALL_API_KEY",
    }


def test_policy_keeps_min_admins_satisfiable() -> None:
    assert export(state({}))["policy"] == {"min_admins": 1}
    no_admin = State.build([User(BOB, DEVELOPER)])
    assert export(no_admin)["policy"] == {"min_admins": 0}


def test_export_is_deterministic_whatever_the_input_order() -> None:
    members = {
        "notetaker-production": [ALICE, BOB],
        "notetaker-staging": [BOB, CAROL],
        "recorder-production": [ALICE, BOB],
        "x": [BOB, CAROL],
    }
    forward = state(members)
    backward = State.build(
        list(reversed(list(forward.users.values()))),
        list(reversed(list(forward.workspaces.values()))),
        list(reversed(list(forward.memberships.values()))),
    )
    first = export_config(IDENTITY, forward)
    assert export_config(IDENTITY, backward) == first
    assert export_config(IDENTITY, forward) == first


@pytest.mark.parametrize(
    "name",
    [
        *("yes", "null", "123", "1e3", "2026-12-31", "~", ""),  # would read as non-strings
        *("a: b", "x #y", "@at", "-dash", "a,b", "[x]"),  # YAML indicators
        *("tab\there", "line\nbreak", 'quote"back\\slash', "nel\x85"),  # escapes
        *("ünïcode", "emoji-😀"),
    ],
)
def test_any_workspace_name_reads_back_as_the_same_string(name: str) -> None:
    doc = export(State.build([User(ALICE, ADMIN)], [Workspace(name)], [Membership(name, ALICE)]))
    assert doc["workspaces"] == [{"name": name, "members": [ALICE]}]


def test_emails_that_need_quoting_are_quoted() -> None:
    odd = "o'brien,jr@acme.com"
    text = export_config(IDENTITY, State.build([User(odd, ADMIN)], [Workspace("w")], [Membership("w", odd)]))
    assert '{email: "o\'brien,jr@acme.com", role: admin}' in text
    assert yaml.safe_load(text)["workspaces"] == [{"name": "w", "members": [odd]}]


def test_long_member_lists_are_written_one_per_line() -> None:
    many = [f"user-{i:02d}@acme.com" for i in range(8)]
    text = export_config(IDENTITY, state({"big": many}))
    assert "    members:\n" + "".join(f"      - {e}\n" for e in many) in text
    assert yaml.safe_load(text)["workspaces"] == [{"name": "big", "members": many}]


def test_an_inconsistent_state_is_refused() -> None:
    broken = State.build([User(ALICE, ADMIN)], [Workspace("w")], [Membership("w", BOB)])
    with pytest.raises(ValueError, match="w/bob@acme.com names an unknown user"):
        export_config(IDENTITY, broken)


def test_a_format_without_both_placeholders_is_refused() -> None:
    with pytest.raises(ValueError, match="must contain"):
        export_config(IDENTITY, state({}), workspace_name_format="{workspace}")
