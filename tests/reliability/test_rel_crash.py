"""Point 1: SIGKILL the apply after the i-th committed change, for every i; the next apply converges.

The kill is exact: the sandbox's response hook counts successful write
responses and kills the CLI subprocess when the i-th one has been committed,
before the response reaches the client (so the client never learns of it).
With ``--parallelism 1`` there is one write in flight, so the i-th successful
write is the i-th change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from provisioner.sandbox import seed
from tests.reliability.rel_support import (
    WriteCounter,
    cli_argv,
    cli_env,
    run_cli,
    snapshot,
    write_config,
)
from tests.support import Api

SEED_USERS = [
    ("alice@acme.com", "admin", "active"),
    ("bob@acme.com", "developer", "active"),
    ("carol@acme.com", "developer", "active"),
]
SEED_WORKSPACES = ["app", "legacy"]
SEED_MEMBERSHIPS = [
    ("app", "alice@acme.com"),
    ("app", "bob@acme.com"),
    ("legacy", "bob@acme.com"),
    ("legacy", "carol@acme.com"),
]

# 3 invites, 1 promotion, 2 workspace creates, 4 grants, 2 revocations = 12 changes.
DESIRED_BODY = """
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: admin}
  - {email: carol@acme.com, role: developer}
  - {email: dan@acme.com, role: developer}
  - {email: eve@acme.com, role: developer}
  - {email: frank@acme.com, role: admin}
workspaces:
  - {name: app, members: [alice@acme.com, bob@acme.com, carol@acme.com]}
  - {name: legacy, members: []}
  - {name: new-one, members: [dan@acme.com, eve@acme.com]}
  - {name: new-two, members: [frank@acme.com]}
policy: {max_removals: 10}
"""
DESIRED_USERS = {
    "admin@example.com": "admin",
    "alice@acme.com": "admin",
    "bob@acme.com": "admin",
    "carol@acme.com": "developer",
    "dan@acme.com": "developer",
    "eve@acme.com": "developer",
    "frank@acme.com": "admin",
}
DESIRED_WORKSPACES = frozenset({"app", "legacy", "new-one", "new-two"})
DESIRED_MEMBERSHIPS = frozenset(
    {
        ("app", "alice@acme.com"),
        ("app", "bob@acme.com"),
        ("app", "carol@acme.com"),
        ("new-one", "dan@acme.com"),
        ("new-one", "eve@acme.com"),
        ("new-two", "frank@acme.com"),
    }
)
K = 12


def seeded_db(tmp_path: Path, name: str) -> Path:
    db = tmp_path / f"{name}.db"
    seed(db, users=SEED_USERS, workspaces=SEED_WORKSPACES, memberships=SEED_MEMBERSHIPS)
    return db


def test_the_plan_has_k_changes_of_every_kind(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    sandbox, _ = hooked_sandbox(db_path=seeded_db(tmp_path, "count"))
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, DESIRED_BODY)
    result = run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--format", "json")
    assert result.returncode == 0, result.stderr
    changes = [c for c in json.loads(result.stdout)["changes"] if not c.get("cascade")]
    kinds = {(c["action"], c["type"]) for c in changes}
    assert len(changes) == K
    assert kinds == {
        ("create", "user"),
        ("update", "user"),
        ("create", "workspace"),
        ("create", "membership"),
        ("delete", "membership"),
    }


@pytest.mark.parametrize("i", range(1, K + 1))
def test_kill_after_the_ith_committed_change_then_apply_converges(
    hooked_sandbox, tmp_path: Path, i: int
) -> None:  # noqa: ANN001
    sandbox, hooks = hooked_sandbox(db_path=seeded_db(tmp_path, f"crash-{i}"))
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, DESIRED_BODY)
    api = Api(sandbox.base_url, sandbox.token)
    before = snapshot(api)
    victim: dict[str, subprocess.Popen] = {}

    def kill_at(n: int) -> None:
        if n == i:  # committed, response not yet sent: the client never learns of it
            os.kill(victim["proc"].pid, signal.SIGKILL)

    counter = WriteCounter(kill_at)
    hooks.add(counter)
    proc = subprocess.Popen(
        cli_argv("apply", "-c", config, "--auto-approve", "--parallelism", "1"),
        cwd=tmp_path,
        env=cli_env(sandbox.token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    victim["proc"] = proc
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"apply was not killed at change {i}"
    assert counter.count == i  # exactly i changes were committed before the kill

    crashed = snapshot(api)
    # Nothing outside the plan was removed by the partial run.
    assert set(before.users) <= set(crashed.users)
    assert crashed.clean(), crashed

    again = run_cli(tmp_path, sandbox.token, "apply", "-c", config, "--auto-approve", "--parallelism", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert counter.count == K  # the second run made exactly the remaining changes: no repeats

    after = snapshot(api)
    assert after.clean(), after
    assert after.users == DESIRED_USERS
    assert after.workspaces == DESIRED_WORKSPACES
    assert after.memberships == DESIRED_MEMBERSHIPS
    plan = run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
