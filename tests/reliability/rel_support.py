"""Helpers for the reliability suite: hooked sandboxes, a scripted/forwarding
the CLI in a subprocess, and sandbox state snapshots.

Imported as ``tests.reliability.rel_support``; what it shares with the other
suites (``Api``, ``org_config``, ``TOKEN_ENV``) comes from ``tests.support``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from provisioner.sandbox import RunningSandbox, start_sandbox
from tests.support import TOKEN_ENV, Api, org_config

SENTINEL = "SENTINEL-7f3a9c-DO-NOT-LEAK"
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})

# Fast retries for CLI subprocesses (see CLIENT_LIMIT_ENV in provisioner/service/connection.py).
FAST_ENV = {"PROVISIONER_BACKOFF_MAX": "0.01", "PROVISIONER_MAX_RETRIES": "3"}


# --- hooks ---------------------------------------------------------------------


class HookChain:
    """A sandbox ``response_hook`` that calls the contract checker and then any
    hooks a test adds (``chain.add(fn)``), in order."""

    def __init__(self, *first: Callable[..., None]):
        self.hooks: list[Callable[..., None]] = list(first)
        self._lock = threading.Lock()

    def add(self, hook: Callable[..., None]) -> None:
        with self._lock:
            self.hooks.append(hook)

    def __call__(self, method: str, path: str, status: int, headers: dict, body: bytes) -> None:
        with self._lock:
            hooks = list(self.hooks)
        for hook in hooks:
            hook(method, path, status, headers, body)


class WriteCounter:
    """Counts successful (2xx) write responses; calls ``on_count(n)`` for each."""

    def __init__(self, on_count: Callable[[int], None] | None = None):
        self.count = 0
        self.on_count = on_count
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, status: int, headers: dict, body: bytes) -> None:
        if method not in WRITE_METHODS or not 200 <= status < 300:
            return
        with self._lock:
            self.count += 1
            n = self.count
        if self.on_count is not None:
            self.on_count(n)


# --- the CLI -----------------------------------------------------------------------


def cli_env(token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env[TOKEN_ENV] = token
    env["NO_COLOR"] = "1"
    env["PROVISIONER_NO_CACHE"] = "1"  # a full read unless a test asks for the snapshot
    env.update(extra or {})
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "provisioner", *args]


def run_cli(
    cwd: Path, token: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_argv(*args), cwd=cwd, env=cli_env(token, env), capture_output=True, text=True, timeout=timeout
    )


def write_config(path: Path, api_url: str, body: str, name: str | None = None) -> str:
    path.write_text(org_config(api_url, body, name=name))
    return str(path)


# --- state -------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The organization as the API lists it, with duplicates kept visible."""

    users: dict[str, str]  # email -> role
    workspaces: frozenset[str]
    memberships: frozenset[tuple[str, str]]
    duplicate_users: tuple[str, ...]
    duplicate_workspaces: tuple[str, ...]
    duplicate_memberships: tuple[tuple[str, str], ...]

    def clean(self) -> bool:
        return not (self.duplicate_users or self.duplicate_workspaces or self.duplicate_memberships)

    def desired_view(self) -> tuple:
        return (self.users, self.workspaces, self.memberships)


def _dups(items: Iterable) -> tuple:
    seen, dups = set(), []
    for item in items:
        if item in seen:
            dups.append(item)
        seen.add(item)
    return tuple(sorted(dups))


def snapshot(api: Api) -> Snapshot:
    users = api.list("/users/")
    spaces = api.list("/workspaces/")
    rows = api.list("/workspace_memberships/")
    by_id_user = {u["id"]: u["email"] for u in users}
    by_id_space = {w["id"]: w["name"] for w in spaces}
    pairs = [(by_id_space[m["workspace_id"]], by_id_user[m["user_id"]]) for m in rows]
    return Snapshot(
        users={u["email"]: u["role"] for u in users},
        workspaces=frozenset(by_id_space.values()),
        memberships=frozenset(pairs),
        duplicate_users=_dups(u["email"] for u in users),
        duplicate_workspaces=_dups(w["name"] for w in spaces),
        duplicate_memberships=_dups(pairs),
    )


def clean_snapshot(db_path: str | os.PathLike, token: str) -> Snapshot:
    """Snapshot a db through a fresh fault-free sandbox (stopped afterwards)."""
    with start_sandbox(db_path, token=token) as clean:
        return snapshot(Api(clean.base_url, clean.token))


def upstream_of(sandbox: RunningSandbox) -> tuple[str, int]:
    host, port = sandbox.url.removeprefix("http://").split(":")
    return host, int(port)


# --- point 2, shared with benchmarks/soak.py ---------------------------------------

CRASH_SEED = dict(
    users=[
        ("alice@acme.com", "admin", "active"),
        ("bob@acme.com", "developer", "active"),
        ("carol@acme.com", "developer", "active"),
    ],
    workspaces=["app", "legacy"],
    memberships=[
        ("app", "alice@acme.com"),
        ("app", "bob@acme.com"),
        ("legacy", "bob@acme.com"),
        ("legacy", "carol@acme.com"),
    ],
)


@dataclass
class FaultRun:
    seed: int
    runs: int
    exit_codes: list[int]
    final: Snapshot
    plan_exit: int
    writes_received: int  # write requests the faulty server received, retries included
    notes: list[str]  # messages of applied changes in the audit log ("already existed", ...)


def apply_under_faults(
    workdir: Path,
    fault_seed: int,
    body: str,
    *,
    fail_rate: float = 0.3,
    max_runs: int = 2,
    hook: Callable[..., None] | None = None,
) -> FaultRun:
    """Seed a db, apply ``body`` through a sandbox failing ``fail_rate`` of requests
    (commit-then-fail included) until an apply exits 0 or ``max_runs`` ran; then
    inspect the db through a fault-free sandbox."""
    from provisioner.sandbox import seed as seed_db

    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "faults.db"
    seed_db(db, **CRASH_SEED)
    env = {"PROVISIONER_BACKOFF_MAX": "0.05"}
    codes: list[int] = []
    with start_sandbox(db, fail_rate=fail_rate, seed=fault_seed, response_hook=hook) as faulty:
        token = faulty.token
        config = write_config(workdir / "org.yaml", faulty.base_url, body)
        while len(codes) < max_runs and (not codes or codes[-1] != 0):
            codes.append(
                run_cli(
                    workdir,
                    token,
                    "apply",
                    "-c",
                    config,
                    "--auto-approve",
                    "--audit-log",
                    str(workdir / "audit.jsonl"),
                    env=env,
                ).returncode
            )
        by_route = faulty.stats()["by_route"]
        writes = sum(n for route, n in by_route.items() if route.split()[0] in WRITE_METHODS)
    with start_sandbox(db, token=token) as clean:
        final = snapshot(Api(clean.base_url, clean.token))
        config = write_config(workdir / "org.yaml", clean.base_url, body)
        plan_exit = run_cli(workdir, token, "plan", "-c", config, "--detailed-exitcode").returncode
    audit = workdir / "audit.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
    notes = [r.get("message", "") for rec in records for r in rec["applied"]]
    return FaultRun(fault_seed, len(codes), codes, final, plan_exit, writes, notes)
