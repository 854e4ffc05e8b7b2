"""Point 5: a listing that cannot be read completely aborts the plan: exit 1,
zero changes shown, nothing written. A partial listing must never look like
deletions (or invites)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from provisioner.sandbox import seed
from tests.local_server import LocalServer, Reply, Seen
from tests.reliability.rel_support import run_cli, upstream_of, write_config

USERS = [(f"user{i:03d}@acme.com", "developer", "active") for i in range(150)]  # two pages of 100
BODY = "users:\n  - {email: admin@example.com, role: admin}\n" + "".join(
    f"  - {{email: {email}, role: developer}}\n" for email, _, _ in USERS
)
CHANGE_LINE = re.compile(r"^\s*[+~-] ", re.MULTILINE)


def _second_page(seen: Seen) -> bool:
    return seen.method == "GET" and seen.path.startswith("/api/v1/users/") and "cursor=" in seen.path


def _first_page(seen: Seen) -> bool:
    return seen.method == "GET" and seen.path.startswith("/api/v1/users/?") and "cursor=" not in seen.path


def _next_link(make):  # noqa: ANN001, ANN202
    """A rewrite that replaces the first users page's ``next`` with ``make(seen, next)``."""

    def rewrite(seen: Seen, status: int, headers: dict, body: bytes) -> bytes:
        if not _first_page(seen) or status != 200:
            return body
        page = json.loads(body)
        assert page["next"], "the listing should have a second page"
        page["next"] = make(seen, page["next"])
        return json.dumps(page).encode()

    return rewrite


@pytest.fixture
def decoy() -> LocalServer:
    with LocalServer(lambda seen: Reply(200, {"results": [], "next": None})) as server:
        yield server


CASES = {
    "persistent-500": (
        lambda seen: Reply(500, {"code": "server_error", "detail": "boom"}) if _second_page(seen) else None,
        None,
    ),
    "next-to-another-server": (None, "decoy"),
    "next-loops": (None, _next_link(lambda seen, nxt: seen.path)),
    "next-leaves-base-path": (None, _next_link(lambda seen, nxt: nxt.replace("/api/v1/", "/api/v2/"))),
    "next-not-a-url": (None, _next_link(lambda seen, nxt: 123)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_partial_listing_aborts_the_plan_with_zero_changes(
    hooked_sandbox, tmp_path: Path, decoy: LocalServer, case: str
) -> None:  # noqa: ANN001
    db = tmp_path / "partial.db"
    seed(db, users=USERS)
    sandbox, _ = hooked_sandbox(db_path=db)
    decide, rewrite = CASES[case]
    if rewrite == "decoy":
        rewrite = _next_link(lambda seen, nxt: decoy.base_url + "/users/?" + nxt.split("?", 1)[1])
    with LocalServer(decide, upstream=upstream_of(sandbox), rewrite=rewrite) as proxy:
        config = write_config(tmp_path / "org.yaml", proxy.base_url, BODY)
        plan = run_cli(tmp_path, sandbox.token, "plan", "-c", config, env={"PROVISIONER_BACKOFF_MAX": "0"})
        apply = run_cli(
            tmp_path,
            sandbox.token,
            "apply",
            "-c",
            config,
            "--auto-approve",
            "--force",
            env={"PROVISIONER_BACKOFF_MAX": "0"},
        )
    for result in (plan, apply):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Plan:" not in result.stdout and not CHANGE_LINE.search(result.stdout), result.stdout
        assert "Error:" in result.stderr and "Traceback" not in result.stderr
    assert "users" in plan.stderr
    assert decoy.seen == []  # the key never went to the other server
    by_route = sandbox.stats()["by_route"]
    assert not [r for r in by_route if r.split()[0] in ("POST", "PATCH", "DELETE")], by_route


def test_the_fixture_really_paginates(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    db = tmp_path / "ok.db"
    seed(db, users=USERS)
    sandbox, _ = hooked_sandbox(db_path=db)
    with LocalServer(None, upstream=upstream_of(sandbox)) as proxy:
        config = write_config(tmp_path / "org.yaml", proxy.base_url, BODY)
        plan = run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--detailed-exitcode")
        assert [s for s in proxy.seen if _second_page(s)]
    assert plan.returncode == 0, plan.stdout + plan.stderr
