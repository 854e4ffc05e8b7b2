"""Point 7: lockout guards refuse at plan time, and apply then changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioner.cli.main import cli
from provisioner.sandbox import seed
from tests.reliability.rel_support import snapshot, write_config
from tests.support import TOKEN_ENV, Api

TEAM_USERS = [
    ("alice@acme.com", "admin", "active"),
    ("bob@acme.com", "developer", "active"),
    ("carol@acme.com", "developer", "active"),
    ("dave@acme.com", "developer", "active"),
]
# 5 users (with the key's admin) and 6 memberships: 11 objects, over the floor of 10 from
# which a percentage max_removals applies. "web" is never declared: its access is unmanaged.
TEAM_MEMBERS = [("app", e) for e, _, _ in TEAM_USERS] + [("web", "bob@acme.com"), ("web", "carol@acme.com")]


def users_yaml(**roles: str) -> str:
    lines = "".join(f"  - {{email: {e}, role: {r}}}\n" for e, r in roles.items())
    return "users:\n" + lines


TEAM = dict(
    zip(
        ["admin@example.com"] + [e for e, _, _ in TEAM_USERS],
        ["admin", "admin", "developer", "developer", "developer"],
    )
)
APP_ALL = (
    "workspaces:\n  - {name: app, members: [alice@acme.com, bob@acme.com, carol@acme.com, dave@acme.com]}\n"
)

CASES = {
    "own-user-removed": (
        "team",
        users_yaml(**{k: v for k, v in TEAM.items() if k != "admin@example.com"})
        + APP_ALL
        + "policy: {max_removals: 10}\n",
        ["admin@example.com", "own user"],
    ),
    "own-user-demoted": (
        "team",
        users_yaml(**{**TEAM, "admin@example.com": "developer"}) + APP_ALL,
        ["admin@example.com", "demotes"],
    ),
    "below-min-admins": (
        "team",
        users_yaml(**{**TEAM, "alice@acme.com": "developer"}) + APP_ALL + "policy: {min_admins: 2}\n",
        ["min_admins", "2"],
    ),
    "protected-user-touched": (
        "team",
        users_yaml(**{**TEAM, "bob@acme.com": "admin"})
        + APP_ALL
        + "policy: {protected_users: [bob@acme.com]}\n",
        ["bob@acme.com", "protected"],
    ),
    "protected-user-removed": (
        "team",
        users_yaml(**{k: v for k, v in TEAM.items() if k != "carol@acme.com"})
        + "workspaces:\n  - {name: app, members: [alice@acme.com, bob@acme.com, dave@acme.com]}\n"
        + "policy: {protected_users: [carol@acme.com], max_removals: 10}\n",
        ["carol@acme.com", "protected"],
    ),
    "too-many-removals": (
        "team",
        users_yaml(**TEAM) + "workspaces:\n  - {name: app, members: [alice@acme.com]}\n",
        ["max_removals", "--force", "3"],
    ),
    # Below 10 objects a percentage does not apply; an absolute count does, at any size.
    "too-many-removals-tiny-org": (
        "tiny",
        users_yaml(**{"admin@example.com": "admin"})
        + "workspaces:\n  - {name: app, members: []}\n"
        + "policy: {max_removals: 0}\n",
        ["max_removals", "--force"],
    ),
}


def seed_org(db: Path, kind: str) -> None:
    if kind == "team":
        seed(db, users=TEAM_USERS, workspaces=["app", "web"], memberships=TEAM_MEMBERS)
    else:  # two users: the key's admin and bob, with one grant
        seed(
            db,
            users=[("bob@acme.com", "developer", "active")],
            workspaces=["app"],
            memberships=[("app", "bob@acme.com")],
        )


def run(args: list[str], token: str):  # noqa: ANN201
    return CliRunner().invoke(cli, args, env={TOKEN_ENV: token, "NO_COLOR": "1"})


@pytest.mark.parametrize("case", sorted(CASES))
def test_guard_refuses_at_plan_time_and_nothing_changes(hooked_sandbox, tmp_path: Path, case: str) -> None:  # noqa: ANN001
    kind, body, words = CASES[case]
    db = tmp_path / f"{case}.db"
    seed_org(db, kind)
    sandbox, _ = hooked_sandbox(db_path=db)
    api = Api(sandbox.base_url, sandbox.token)
    before = snapshot(api)
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, body)
    sandbox.reset_stats()
    plan = run(["plan", "-c", config], sandbox.token)
    apply = run(["apply", "-c", config, "--auto-approve"], sandbox.token)
    for result in (plan, apply):
        assert result.exit_code == 1, (case, result.output)
        assert isinstance(result.exception, SystemExit)
        for word in words:
            assert word in result.stderr, (case, word, result.stderr)
    routes = sandbox.stats()["by_route"]
    assert not [r for r in routes if r.split()[0] in ("POST", "PATCH", "DELETE")], routes
    assert snapshot(api) == before


def test_force_overrides_only_the_removal_count_in_a_tiny_org(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    db = tmp_path / "tiny.db"
    seed_org(db, "tiny")
    sandbox, _ = hooked_sandbox(db_path=db)
    _, body, _ = CASES["too-many-removals-tiny-org"]
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, body)
    result = run(["apply", "-c", config, "--auto-approve", "--force"], sandbox.token)
    assert result.exit_code == 0, result.output
    assert set(Api(sandbox.base_url, sandbox.token).users()) == {"admin@example.com"}


def test_a_percentage_does_not_hold_a_tiny_org_back(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    db = tmp_path / "tiny.db"
    seed_org(db, "tiny")  # 2 users and 1 membership: below the floor of 10 objects
    sandbox, _ = hooked_sandbox(db_path=db)
    body = users_yaml(**{"admin@example.com": "admin"}) + "workspaces:\n  - {name: app, members: []}\n"
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, body)  # default max_removals: 25%
    result = run(["apply", "-c", config, "--auto-approve"], sandbox.token)
    assert result.exit_code == 0, result.output
    assert set(Api(sandbox.base_url, sandbox.token).users()) == {"admin@example.com"}
