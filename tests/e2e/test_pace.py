"""Plans and applies paced to the published limits, against ``provisioner sandbox serve --recall-limits``.

The limits are scaled so that a run spends a minute's burst in a few requests
and then waits seconds, not minutes. Each test reads the sandbox's own counts
(``/_sandbox/stats``): zero 429s with ``--pace``, and a wall time at least
what the limits imply for the requests made. The bound is the server's:
past its burst of a minute's allowance, one request per 60 / limit seconds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provisioner.sandbox import seed
from tests.support import Api, Cli, org_config

TOKEN = "pace-e2e-admin-key-0123456789"
ADMIN = "admin@example.com"
# Every GET of a collection of the contract: the list class (the test's own count, not the code's).
LIST_ROUTES = frozenset(
    f"GET /api/v1/{name}/"
    for name in (
        "users",
        "workspaces",
        "workspace_memberships",
        "api_keys",
        "webhook_endpoints",
        "credentials",
        "changes",
    )
)
WORKSPACES = 43  # a plan lists each one's memberships: 43 + 5 lists in all
INVITES = 47  # an apply's writes: /me/ + 47 invites = 48 other requests


@contextmanager
def served(db: Path, recall_limits: str) -> Iterator[Api]:
    """``provisioner sandbox serve --recall-limits LIMITS`` on a free loopback port, stopped on exit."""
    command = [sys.executable, "-m", "provisioner", "sandbox", "serve", "--db", str(db), "--port", "0"]
    command += ["--token", TOKEN, "--recall-limits", recall_limits]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        banner = process.stderr.readline()  # "Sandbox API at http://127.0.0.1:PORT/api/v1 (db ...)"
        assert banner.startswith("Sandbox API at "), banner
        threading.Thread(target=process.stderr.read, daemon=True).start()  # never block on a full pipe
        yield Api(banner.split()[3], TOKEN)
    finally:
        process.terminate()
        process.wait(10)


def _stats(api: Api) -> dict:
    status, stats, _ = api.request("GET", "/_sandbox/stats")
    assert status == 200
    return stats


def _lower_bound(stats: dict, lists_per_minute: int, others_per_minute: int) -> float:
    """Seconds the limits imply for these requests: each class past its burst, at its rate."""
    lists = sum(n for route, n in stats["by_route"].items() if route in LIST_ROUTES)
    others = stats["total"] - lists
    return max(
        max(0, lists - lists_per_minute) * 60 / lists_per_minute,
        max(0, others - others_per_minute) * 60 / others_per_minute,
    )


def _timed(cli: Cli, *args: str, **kwargs: object) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = cli(*args, **kwargs)  # type: ignore[arg-type]
    return result, time.monotonic() - started


def _workspaces_org(tmp_path: Path, api_url: str) -> Path:
    """The seeded workspaces' config: a plan with no changes that lists each one's memberships."""
    config = tmp_path / "org.yaml"
    names = "".join(f"  - name: team-{n:02d}\n" for n in range(WORKSPACES))
    config.write_text(
        org_config(api_url, f"users:\n  - {{email: {ADMIN}, role: admin}}\nworkspaces:\n{names}")
    )
    return config


def test_a_paced_plan_gets_no_429_and_takes_what_the_list_limit_implies(tmp_path: Path) -> None:
    lists, others = 45, 600
    seed(tmp_path / "org.db", workspaces=[f"team-{n:02d}" for n in range(WORKSPACES)], admin_email=ADMIN)
    with served(tmp_path / "org.db", f"{lists}/{others}") as api:
        config = _workspaces_org(tmp_path, api.base_url)
        cli = Cli(tmp_path, TOKEN)
        result, wall = _timed(
            cli, "plan", "-c", str(config), "--pace", f"{lists}/{others}", "--detailed-exitcode"
        )
        stats = _stats(api)
    assert result.returncode == 0, result.stderr
    assert "No changes" in result.stdout
    bound = _lower_bound(stats, lists, others)
    assert bound >= 3.0, f"the test must make the list limit bite: {stats}"
    assert stats["throttled"] == 0, stats
    assert wall >= bound, (wall, bound)


def test_an_unpaced_plan_meets_the_limit_and_honours_retry_after(tmp_path: Path) -> None:
    lists, others = 45, 600
    seed(tmp_path / "org.db", workspaces=[f"team-{n:02d}" for n in range(WORKSPACES)], admin_email=ADMIN)
    with served(tmp_path / "org.db", f"{lists}/{others}") as api:
        config = _workspaces_org(tmp_path, api.base_url)
        cli = Cli(tmp_path, TOKEN)
        # Against a sandbox, auto paces nothing on the management contract: the limit answers.
        result = cli("plan", "-c", str(config), "--detailed-exitcode", extra_env={"PROVISIONER_PACE": "auto"})
        stats = _stats(api)
    assert result.returncode == 0, result.stderr
    assert stats["throttled"] >= 1, stats  # retried after Retry-After, and the plan still made


def test_a_paced_apply_gets_no_429_and_takes_what_the_other_limit_implies(tmp_path: Path) -> None:
    lists, others = 600, 45
    seed(tmp_path / "org.db", admin_email=ADMIN)
    with served(tmp_path / "org.db", f"{lists}/{others}") as api:
        config = tmp_path / "org.yaml"
        invited = "".join(f"  - {{email: dev{n:02d}@example.com, role: developer}}\n" for n in range(INVITES))
        config.write_text(org_config(api.base_url, f"users:\n  - {{email: {ADMIN}, role: admin}}\n{invited}"))
        cli = Cli(tmp_path, TOKEN)
        # PROVISIONER_PACE is --pace's variable, as a CI job would set it.
        result, wall = _timed(
            cli,
            "apply",
            "-c",
            str(config),
            "--auto-approve",
            extra_env={"PROVISIONER_PACE": f"{lists}/{others}"},
        )
        stats = _stats(api)
        made = len(api.users())
    assert result.returncode == 0, result.stderr
    assert stats["throttled"] == 0, stats
    assert made == INVITES + 1
    assert stats["by_route"]["POST /api/v1/users/"] == INVITES
    bound = _lower_bound(stats, lists, others)
    assert bound >= 3.0, f"the test must make the other limit bite: {stats}"
    assert wall >= bound, (wall, bound)
