"""End to end: the reader and the applier against the real sandbox on loopback."""

from __future__ import annotations

from pathlib import Path

from provisioner.api.client import ApiClient
from provisioner.api.reader import read_state, read_state_and_identity
from provisioner.apply.executor import apply_plan
from provisioner.model import Membership, User, Workspace
from provisioner.plan.model import Action, Change, Plan, ResourceType
from provisioner.sandbox import seed, start_sandbox

U, W, M = ResourceType.USER, ResourceType.WORKSPACE, ResourceType.MEMBERSHIP


def test_read_apply_read(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    seed(
        db,
        users=[("bob@example.com", "developer", "active"), ("dave@example.com", "developer", "active")],
        workspaces=["app-production"],
        memberships=[("app-production", "bob@example.com"), ("app-production", "dave@example.com")],
        org_name="Acme",
    )
    sandbox = start_sandbox(db, org_name="Acme")
    try:
        with ApiClient(sandbox.base_url, sandbox.token) as client:
            current, identity = read_state_and_identity(client, parallelism=4)
            assert identity.organization.name == "Acme"
            assert set(current.users) == {"admin@example.com", "bob@example.com", "dave@example.com"}
            assert set(current.memberships) == {
                ("app-production", "bob@example.com"),
                ("app-production", "dave@example.com"),
            }
            dave, bob = current.users["dave@example.com"], current.users["bob@example.com"]
            assert dave.etag and dave.id
            changes = (
                Change(Action.CREATE, U, "carol@example.com", None, User("carol@example.com", "developer")),
                Change(Action.UPDATE, U, "dave@example.com", dave, User("dave@example.com", "admin")),
                Change(Action.CREATE, W, "app-staging", None, Workspace("app-staging")),
                Change(
                    Action.CREATE,
                    M,
                    "app-staging/carol@example.com",
                    None,
                    Membership("app-staging", "carol@example.com"),
                ),
                Change(
                    Action.DELETE,
                    M,
                    "app-production/bob@example.com",
                    current.memberships[("app-production", "bob@example.com")],
                    None,
                    cascade=True,
                ),
                Change(Action.DELETE, U, "bob@example.com", bob, None),
            )
            plan = Plan("Acme", changes, state_fingerprint="e2e")
            report = apply_plan(plan, client, current=current, parallelism=4)
            assert report.ok, report

            after = read_state(client)
            assert {e: u.role for e, u in after.users.items()} == {
                "admin@example.com": "admin",
                "carol@example.com": "developer",
                "dave@example.com": "admin",
            }
            assert after.users["carol@example.com"].status == "invited"
            assert set(after.workspaces) == {"app-production", "app-staging"}
            assert set(after.memberships) == {
                ("app-production", "dave@example.com"),
                ("app-staging", "carol@example.com"),
            }

            # Applying the same plan again: creates replay (same Idempotency-Key)
            # or conflict, deletes find nothing; the 412 on dave's stale ETag is
            # re-read and found already as desired. Nothing fails.
            again = apply_plan(plan, client, current=current, parallelism=4)
            assert again.ok, again
            assert read_state(client) == after
    finally:
        sandbox.stop()


def test_pacing_keeps_429s_rare(tmp_path: Path) -> None:
    statuses: list[int] = []
    db = tmp_path / "sandbox.db"
    seed(db, workspaces=[f"ws-{i}" for i in range(30)])
    sandbox = start_sandbox(
        db, rate_limit=20, response_hook=lambda method, path, status, headers, body: statuses.append(status)
    )
    try:
        with ApiClient(sandbox.base_url, sandbox.token) as client:
            for _ in range(2):
                state = read_state(client, parallelism=8)
            assert len(state.workspaces) == 30
    finally:
        sandbox.stop()
    assert len(statuses) >= 60
    assert statuses.count(429) / len(statuses) < 0.01, statuses.count(429)
