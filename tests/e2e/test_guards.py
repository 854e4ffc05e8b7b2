"""Each guard blocks at plan time, and apply then changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.sandbox import create_token, seed
from tests.support import QUICKSTART_KEYS, Api, Cli, org_config

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
  - name: web
    members: [bob@acme.com, carol@acme.com]
"""
# 5 users and 6 memberships: 11 objects, over the floor of 10 from which a percentage
# max_removals (default 25%: 2 of 11) applies.


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
    return (
        {e: u["role"] for e, u in api.users().items()},
        frozenset(api.workspaces()),
        frozenset(api.memberships()),
    )


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
            TEAM.replace(
                "{email: admin@example.com, role: admin}", "{email: admin@example.com, role: developer}"
            ),
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
            TEAM.replace(
                "members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]",
                "members: [alice@acme.com]",
            ),
            ["--force", "max_removals"],
        ),
    ],
)
def test_guard_blocks_and_nothing_changes(
    sandbox, cli: Cli, api: Api, tmp_path: Path, case: str, body: str, words: list[str]
) -> None:  # noqa: ANN001
    setup_team(sandbox, cli, tmp_path)
    before = snapshot(api)
    plan, apply = attempt(sandbox, cli, tmp_path, body)
    assert plan.returncode == 1, (case, plan.stdout, plan.stderr)
    assert apply.returncode == 1, (case, apply.stdout, apply.stderr)
    for word in words:
        assert word in plan.stderr, (case, word, plan.stderr)
    assert "Traceback" not in plan.stderr + apply.stderr
    assert snapshot(api) == before


def test_force_lets_many_removals_through_but_no_other_guard(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
    setup_team(sandbox, cli, tmp_path)
    fewer = TEAM.replace(
        "members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]", "members: [alice@acme.com]"
    )
    plan, apply = attempt(sandbox, cli, tmp_path, fewer, "--force")
    assert plan.returncode == 0, plan.stderr
    assert apply.returncode == 0, apply.stderr
    assert api.memberships() == {
        ("app", "alice@acme.com"),
        ("web", "bob@acme.com"),
        ("web", "carol@acme.com"),
    }
    # --force does not let the key's own user be demoted.
    demote = fewer.replace(
        "{email: admin@example.com, role: admin}", "{email: admin@example.com, role: developer}"
    )
    plan, apply = attempt(sandbox, cli, tmp_path, demote, "--force")
    assert plan.returncode == 1 and apply.returncode == 1
    assert api.users()["admin@example.com"]["role"] == "admin"


def test_min_admins_blocks_a_demotion(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    # Invited admins cannot administer yet; seed alice as an active admin.
    seed(sandbox.db_path, users=[("alice@acme.com", "admin", "active")], workspaces=[], memberships=[])
    before = snapshot(api)
    body = (
        "users:\n  - {email: admin@example.com, role: admin}\n  - {email: alice@acme.com, role: developer}\n"
    )
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


def test_apply_needs_an_admin_key_but_plan_works_with_a_developer_key(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
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


QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def test_offboarding_one_user_from_the_quickstart_needs_no_force(cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    """The reproduction: dana's 3 cascaded memberships used to count as 3 more removals."""
    db = str(tmp_path / "quick.db")
    cli.env = QUICKSTART_KEYS
    applied = cli("apply", "-c", str(QUICKSTART), "--sandbox", db, "--auto-approve", "--secrets-dir", "s")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    text = QUICKSTART.read_text()
    offboarded = tmp_path / "offboarded.yaml"
    offboarded.write_text(
        text.replace("  - {email: dana@example.com, role: developer}\n", "")
        .replace('[dana@example.com, eli@example.com, "@ops"]', '[eli@example.com, "@ops"]')
        .replace(
            '      production:\n        - {user: dana@example.com, expires: 2030-01-31, reason: "launch week on-call"}\n',
            "",
        )
        .replace("    members:\n", "")
    )
    plan = cli("plan", "-c", str(offboarded), "--sandbox", db, "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "- user dana@example.com (" in plan.stdout and "and 3 memberships)" in plan.stdout
    assert "Plan: 0 to add, 0 to change, 4 to remove." in plan.stdout
    applied = cli("apply", "-c", str(offboarded), "--sandbox", db, "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "dana@example.com" not in cli("export", "--sandbox", db).stdout


def test_an_organization_below_min_admins_is_warned_on_every_plan(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
    seed(sandbox.db_path, users=[("alice@acme.com", "admin", "invited")], workspaces=[], memberships=[])
    body = "users:\n  - {email: admin@example.com, role: admin}\n  - {email: alice@acme.com, role: admin}\n"
    warning = "the organization has 1 active admin, fewer than policy.min_admins 2 (after this plan: 1)"
    for extra in ("", "  - {email: erin@acme.com, role: developer}\n"):
        path = tmp_path / "org.yaml"
        path.write_text(org_config(sandbox.base_url, body + extra + "policy: {min_admins: 2}\n"))
        for fmt in ("text", "markdown", "json"):
            plan = cli("plan", "-c", str(path), "--format", fmt)
            assert plan.returncode == 0, plan.stdout + plan.stderr
            assert warning in plan.stdout, (extra, fmt, plan.stdout)
