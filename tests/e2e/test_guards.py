"""Each guard blocks at plan time, and apply then changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.sandbox import create_token, seed
from tests.e2e.conftest import Api, Cli, org_config

TEAM = """
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
  - {email: carol@acme.com, role: developer}
  - {email: dave@acme.com, role: developer}
workspaces:
  - name: app
    members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]
"""


def setup_team(sandbox, cli: Cli, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "team.yaml"
    path.write_text(org_config(sandbox.base_url, TEAM))
    result = cli("apply", "-c", str(path), "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr


def attempt(sandbox, cli: Cli, tmp_path: Path, body: str, *extra: str, name: str | None = None):  # noqa: ANN001
    path = tmp_path / "next.yaml"
    path.write_text(org_config(sandbox.base_url, body, name=name))
    plan = cli("plan", "-c", str(path), *extra)
    apply = cli("apply", "-c", str(path), "--auto-approve", *extra)
    return plan, apply


def snapshot(api: Api) -> tuple:
    return ({e: u["role"] for e, u in api.users().items()}, frozenset(api.workspaces()), frozenset(api.memberships()))


@pytest.mark.parametrize(
    ("case", "body", "words"),
    [
        (
            "own user removed",
            """
            users:
              - {email: alice@acme.com, role: admin}
              - {email: bob@acme.com, role: developer}
              - {email: carol@acme.com, role: developer}
              - {email: dave@acme.com, role: developer}
            workspaces:
              - name: app
                members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]
            """,
            ["admin@example.com"],
        ),
        (
            "own user demoted",
            TEAM.replace("{email: admin@example.com, role: admin}", "{email: admin@example.com, role: developer}"),
            ["admin@example.com"],
        ),
        (
            "protected user touched",
            TEAM.replace("{email: bob@acme.com, role: developer}", "{email: bob@acme.com, role: admin}")
            + "policy: {protected_users: [bob@acme.com]}\n",
            ["bob@acme.com", "protected"],
        ),
        (
            "too many removals",
            TEAM.replace("members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]", "members: [alice@acme.com]"),
            ["--force", "max_removals"],
        ),
    ],
)
def test_guard_blocks_and_nothing_changes(sandbox, cli: Cli, api: Api, tmp_path: Path, case: str, body: str, words: list[str]) -> None:  # noqa: ANN001
    setup_team(sandbox, cli, tmp_path)
    before = snapshot(api)
    plan, apply = attempt(sandbox, cli, tmp_path, body)
    assert plan.returncode == 1, (case, plan.stdout, plan.stderr)
    assert apply.returncode == 1, (case, apply.stdout, apply.stderr)
    for word in words:
        assert word in plan.stderr, (case, word, plan.stderr)
    assert "Traceback" not in plan.stderr + apply.stderr
    assert snapshot(api) == before


def test_force_lets_many_removals_through_but_no_other_guard(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    setup_team(sandbox, cli, tmp_path)
    fewer = TEAM.replace("members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]", "members: [alice@acme.com]")
    plan, apply = attempt(sandbox, cli, tmp_path, fewer, "--force")
    assert plan.returncode == 0, plan.stderr
    assert apply.returncode == 0, apply.stderr
    assert api.memberships() == {("app", "alice@acme.com")}
    # --force does not let the key's own user be demoted.
    demote = fewer.replace("{email: admin@example.com, role: admin}", "{email: admin@example.com, role: developer}")
    plan, apply = attempt(sandbox, cli, tmp_path, demote, "--force")
    assert plan.returncode == 1 and apply.returncode == 1
    assert api.users()["admin@example.com"]["role"] == "admin"


def test_min_admins_blocks_a_demotion(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    # Invited admins cannot administer yet; seed alice as an active admin.
    seed(sandbox.db_path, users=[("alice@acme.com", "admin", "active")], workspaces=[], memberships=[])
    before = snapshot(api)
    body = "users:\n  - {email: admin@example.com, role: admin}\n  - {email: alice@acme.com, role: developer}\n"
    plan, apply = attempt(sandbox, cli, tmp_path, body + "policy: {min_admins: 2}\n")
    assert plan.returncode == 1 and apply.returncode == 1
    assert "min_admins" in plan.stderr and "2" in plan.stderr
    assert snapshot(api) == before
    allowed, _ = attempt(sandbox, cli, tmp_path, body + "policy: {min_admins: 1}\n")
    assert allowed.returncode == 0, allowed.stderr


def test_organization_name_must_match(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    plan, apply = attempt(sandbox, cli, tmp_path, TEAM, name="someone-else")
    assert plan.returncode == 1 and "someone-else" in plan.stderr
    assert apply.returncode == 1
    assert set(api.users()) == {"admin@example.com"}


def test_apply_needs_an_admin_key_but_plan_works_with_a_developer_key(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    setup_team(sandbox, cli, tmp_path)
    before = snapshot(api)
    dev_key = create_token(sandbox.db_path, "bob@acme.com")
    path = tmp_path / "more.yaml"
    path.write_text(org_config(sandbox.base_url, TEAM + "  - name: extra\n    members: [bob@acme.com]\n"))
    plan = cli("plan", "-c", str(path), "--detailed-exitcode", token=dev_key)
    assert plan.returncode == 2, plan.stderr
    apply = cli("apply", "-c", str(path), "--auto-approve", token=dev_key)
    assert apply.returncode == 1
    assert "admin" in apply.stderr
    assert snapshot(api) == before
