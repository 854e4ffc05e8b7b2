"""Adoption round trip over real HTTP: random sandbox organizations are exported,
and a plan against each export shows no changes."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provisioner.api.client import ApiClient
from provisioner.api.reader import read_state_and_identity
from provisioner.config import load_config
from provisioner.export import export_config
from provisioner.sandbox import seed, start_sandbox
from provisioner.service.plan import read_and_diff

ENVIRONMENTS = ("development", "staging", "production")
PEOPLE = [f"user{i}@acme.example" for i in range(8)]
BASES = ["notetaker", "recorder", "billing"]
PLAIN = ["playground", "legacy-tools"]


@st.composite
def organizations(draw: st.DrawFn) -> dict:
    users = draw(st.lists(st.sampled_from(PEOPLE), unique=True, max_size=len(PEOPLE)))
    roles = {u: draw(st.sampled_from(["admin", "developer"])) for u in users}
    statuses = {u: draw(st.sampled_from(["active", "invited"])) for u in users}
    instances = [
        f"{b}-{e}"
        for b in draw(st.lists(st.sampled_from(BASES), unique=True))
        for e in draw(st.lists(st.sampled_from(ENVIRONMENTS), unique=True, min_size=1))
    ]
    instances += draw(st.lists(st.sampled_from(PLAIN), unique=True))
    everyone = ["admin@example.com", *users]
    pairs = [(w, u) for w in instances for u in everyone]
    # Shared teams make per-environment folding and groups come up often.
    team = draw(st.lists(st.sampled_from(everyone), unique=True, max_size=4))
    members = {(w, u) for w in instances for u in team if draw(st.booleans()) or w.endswith("development")}
    members |= set(draw(st.lists(st.sampled_from(pairs), unique=True, max_size=12))) if pairs else set()
    return {
        "users": [(u, roles[u], statuses[u]) for u in users],
        "workspaces": instances,
        "memberships": sorted(members),
    }


# One organization that surely has all three: per-environment folding, a shared
# member set that becomes a group, and a pending invitation.
FOLDING_GROUPS_PENDING = {
    "users": [
        ("user0@acme.example", "developer", "active"),
        ("user1@acme.example", "admin", "invited"),
        ("user2@acme.example", "developer", "active"),
    ],
    "workspaces": [
        "notetaker-development",
        "notetaker-production",
        "recorder-development",
        "recorder-production",
        "playground",
    ],
    "memberships": [
        *[
            (w, u)
            for w in ("notetaker-development", "recorder-development")
            for u in ("user0@acme.example", "user2@acme.example")
        ],
        ("notetaker-production", "user1@acme.example"),
        *[("playground", u) for u in ("user0@acme.example", "user2@acme.example")],
    ],
}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(org=organizations())
@example(org=FOLDING_GROUPS_PENDING)
def test_export_of_a_sandbox_organization_plans_no_changes(org: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "org.db"
        seed(db, users=org["users"], workspaces=org["workspaces"], memberships=org["memberships"])
        with start_sandbox(db) as sandbox, ApiClient(sandbox.base_url, sandbox.token) as client:
            current, identity = read_state_and_identity(client)
            text = export_config(
                identity,
                current,
                environments=ENVIRONMENTS,
                api_url=sandbox.base_url,
                token_env="EXPORT_RECALL_KEY",
            )
            assert "# pending invitation" in text or all(s == "active" for _, _, s in org["users"])
            if org is FOLDING_GROUPS_PENDING:
                assert "environments: [development, production]" in text  # folded
                assert "groups:" in text and "# pending invitation" in text
            path = Path(tmp) / "exported.yaml"
            path.write_text(text)
            config = load_config(path)
            planned = read_and_diff(config, client, now=datetime.now(UTC))
            assert planned.plan.changes == (), text
            # Exporting again gives the same bytes.
            again, identity2 = read_state_and_identity(client)
            assert (
                export_config(
                    identity2,
                    again,
                    environments=ENVIRONMENTS,
                    api_url=sandbox.base_url,
                    token_env="EXPORT_RECALL_KEY",
                )
                == text
            )
