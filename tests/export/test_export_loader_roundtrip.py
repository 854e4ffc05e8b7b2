"""Round trip through the real loader and diff: export, load, plan -> no changes.

This is the promise ``provisioner export`` makes: adopting an existing
organization with the exported file changes nothing. (The end-to-end version
through the sandbox server and the CLI lives with the CLI's tests.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from provisioner.audit import Declared
from provisioner.config import load_config
from provisioner.export import export_config
from provisioner.model import (
    ADMIN,
    DEVELOPER,
    INVITED,
    ApiKey,
    Identity,
    Membership,
    Organization,
    State,
    User,
    Workspace,
)
from provisioner.plan.diff import diff
from provisioner.secrets.names import api_key_slug, default_name
from tests.export.export_strategies import Org, organizations

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def load_exported(text: str, directory: Path):  # -> Config
    path = directory / "access.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


# tmp_path is shared by the examples; each one overwrites the same file.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(org=organizations())
def test_loading_the_export_and_planning_shows_no_changes(org: Org, tmp_path: Path) -> None:
    text = export_config(org.identity, org.current, workspace_name_format=org.workspace_name_format)
    config = load_exported(text, tmp_path)
    plan = diff(org.current, config.desired, config.policy, now=NOW)
    assert plan.changes == (), text
    # Not merely "no changes": the desired side is exactly the organization.
    assert set(config.desired.users) == set(org.current.users)
    assert set(config.desired.workspaces) == set(org.current.workspaces)
    assert set(config.desired.memberships) == set(org.current.memberships)


def test_a_typical_organization_loads_with_its_settings(tmp_path: Path) -> None:
    organization = Organization(id="org_7", name="acme", region="eu-central-1")
    identity = Identity("u_1", "alice@acme.com", ADMIN, organization)
    users = [
        User("alice@acme.com", ADMIN),
        User("bob@acme.com", DEVELOPER),
        User("carol@acme.com", DEVELOPER, INVITED),
        User("svc-ci@acme.com", DEVELOPER),
    ]
    grants = {
        "notetaker-development": ["alice@acme.com", "bob@acme.com"],
        "notetaker-production": ["alice@acme.com", "svc-ci@acme.com"],
        "recorder-development": ["alice@acme.com", "bob@acme.com", "carol@acme.com"],
        "recorder-production": ["alice@acme.com"],
        "alice-playground": ["alice@acme.com", "bob@acme.com"],
    }
    current = State.build(
        users,
        [Workspace(name) for name in grants],
        [Membership(ws, email) for ws, emails in grants.items() for email in emails],
    )
    text = export_config(identity, current, token_env="ACME_RECALL_KEY")
    config = load_exported(text, tmp_path)

    assert config.organization.name == "acme"
    assert config.organization.region == "eu-central-1"
    assert config.organization.token_env == "ACME_RECALL_KEY"
    assert config.environments == ("development", "production")
    assert diff(current, config.desired, config.policy, now=NOW).changes == ()
    # The shape a reviewer sees: lifted environment access, a group, a pending marker.
    assert 'development:\n    members: ["@development-team"]' in text
    assert "  development-team: [alice@acme.com, bob@acme.com]" in text
    assert "  - {email: carol@acme.com, role: developer}  # pending invitation" in text


# Fixed organizations for the cases a random draw may miss: (name, format,
# {workspace: [members]}, {email: (role, status)}).
CASES = [
    (
        "base name taken by a plain workspace",
        "{workspace}-{environment}",
        {"notetaker": ["a@x.io"], "notetaker-production": ["a@x.io"], "notetaker-staging": []},
        {"a@x.io": (ADMIN, "active")},
    ),
    (
        "environment first, dotted",
        "{environment}.{workspace}",
        {"production.api": ["a@x.io", "b@x.io"], "staging.api": ["a@x.io", "b@x.io"]},
        {"a@x.io": (ADMIN, "active"), "b@x.io": (DEVELOPER, INVITED)},
    ),
    (
        "no admin at all",
        "{workspace}-{environment}",
        {"yes": ["b@x.io"], "null": ["b@x.io"], "2026": []},
        {"b@x.io": (DEVELOPER, "active")},
    ),
    ("an empty organization", "{workspace}-{environment}", {}, {}),
]


def test_fixed_organizations_round_trip(tmp_path: Path) -> None:
    identity = Identity("u_1", "a@x.io", ADMIN, Organization("org_1", "x", "us-west-2"))
    for name, fmt, grants, users in CASES:
        current = State.build(
            [User(email, role, status) for email, (role, status) in users.items()],
            [Workspace(ws) for ws in grants],
            [Membership(ws, email) for ws, emails in grants.items() for email in emails],
        )
        text = export_config(identity, current, workspace_name_format=fmt)
        config = load_exported(text, tmp_path)
        assert diff(current, config.desired, config.policy, now=NOW).changes == (), name
        assert set(config.desired.memberships) == set(current.memberships), name


def test_what_only_the_config_said_comes_back_from_the_audit_trail(tmp_path: Path) -> None:
    """Service accounts and rotate_every (kept by the audit record's ``declared``) survive
    the export, also when rotate_every differs between the environments of one workspace."""
    organization = Organization(id="org_7", name="acme", region="eu-central-1")
    identity = Identity("u_1", "alice@acme.com", ADMIN, organization)
    instances = ("notetaker-staging", "notetaker-production")
    current = State.build(
        [User("alice@acme.com", ADMIN), User("svc@acme.com", DEVELOPER)],
        [Workspace(name) for name in instances],
        [Membership(name, "svc@acme.com") for name in instances],
        api_keys=[
            # Made by the tool: the server recorded where each secret went.
            ApiKey(
                ws, name, "svc@acme.com", id=f"{ws}/{name}", sink_name=default_name(ws, api_key_slug(name))
            )
            for ws in instances
            for name in ("ci", "bot")
        ],
    )
    declared = Declared(
        service_accounts=frozenset({"svc@acme.com"}),
        key_rotation_s={
            ("notetaker-staging", "ci"): 30 * 86400,
            ("notetaker-production", "ci"): 90 * 86400,  # differs: two entries
            ("notetaker-staging", "bot"): 36 * 3600,
            ("notetaker-production", "bot"): 36 * 3600,
        },
    )
    text = export_config(identity, current, declared=declared)
    config = load_exported(text, tmp_path)
    assert diff(current, config.desired, config.policy, now=NOW).changes == (), text
    assert Declared.of(config.desired) == declared, text
    assert text.count("- name: bot") == 1 and text.count("- name: ci") == 2, text
    assert "rotate_every: 36h" in text and "rotate_every: 30d" in text and "rotate_every: 90d" in text, text
