"""Helpers for the reliability suite: hooked sandboxes, a scripted/forwarding
HTTP server on 127.0.0.1, the CLI in a subprocess, and sandbox state snapshots.

Imported as ``rel_support`` (tests/reliability is put on sys.path by pytest,
like tests/api's ``api_test_server``).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

from provisioner.sandbox import RunningSandbox, start_sandbox
from tests.e2e.conftest import TOKEN_ENV, Api, org_config

SENTINEL = "SENTINEL-7f3a9c-DO-NOT-LEAK"
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})

# Fast retries for CLI subprocesses (see CLIENT_LIMIT_ENV in provisioner/cli/reconcile.py).
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
    env.update(extra or {})
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "provisioner", *args]


def run_cli(cwd: Path, token: str, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv(*args), cwd=cwd, env=cli_env(token, env), capture_output=True,
                          text=True, timeout=timeout)


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


# --- a scripted / forwarding HTTP server ----------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # answer nothing until the server stops (a read timeout)


# decide(seen) -> Reply to answer it here, or None to forward it upstream.
Decide = Callable[[Seen], "Reply | None"]
# rewrite(seen, status, headers, body) -> body, for forwarded responses.
Rewrite = Callable[[Seen, int, dict, bytes], bytes]


class LocalServer:
    """An HTTP(S) server on 127.0.0.1 that records every request it receives.

    Each request is answered by ``decide`` (a ``Reply``) or, when it returns
    None and ``upstream`` is set, forwarded to ``upstream`` (host, port) with
    its headers untouched, the response optionally rewritten by ``rewrite``.
    Without either it answers 404.
    """

    def __init__(self, decide: Decide | None = None, *, upstream: tuple[str, int] | None = None,
                 rewrite: Rewrite | None = None, tls: ssl.SSLContext | None = None):
        self.decide = decide
        self.upstream = upstream
        self.rewrite = rewrite
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers), body)
                with server._lock:
                    server.seen.append(seen)
                reply = server.decide(seen) if server.decide else None
                if reply is None and server.upstream is not None:
                    status, headers, payload = server._forward(seen)
                    if server.rewrite is not None:
                        payload = server.rewrite(seen, status, headers, payload)
                    self._send(status, headers, payload)
                    return
                reply = reply or Reply(404, {"detail": "nothing here"})
                if reply.hang:
                    server.release.wait(30)
                    self.close_connection = True
                    return
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                headers = dict(reply.headers)
                if payload:
                    headers.setdefault("Content-Type", "application/json")
                self._send(reply.status, headers, payload)

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_CONNECT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.base_url = self.url + "/api/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def _forward(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        assert self.upstream is not None
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in seen.headers.items() if k.lower() != "connection"}
            conn.request(seen.method, seen.path, body=seen.body or None, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def requests_with(self, method: str, path_part: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and path_part in s.path]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upstream_of(sandbox: RunningSandbox) -> tuple[str, int]:
    host, port = sandbox.url.removeprefix("http://").split(":")
    return host, int(port)


# --- point 2, shared with benchmarks/soak.py ---------------------------------------

CRASH_SEED = dict(
    users=[("alice@acme.com", "admin", "active"), ("bob@acme.com", "developer", "active"),
           ("carol@acme.com", "developer", "active")],
    workspaces=["app", "legacy"],
    memberships=[("app", "alice@acme.com"), ("app", "bob@acme.com"),
                 ("legacy", "bob@acme.com"), ("legacy", "carol@acme.com")],
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


def apply_under_faults(workdir: Path, fault_seed: int, body: str, *, fail_rate: float = 0.3,
                       max_runs: int = 2, hook: Callable[..., None] | None = None) -> FaultRun:
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
            codes.append(run_cli(workdir, token, "apply", "-c", config, "--auto-approve",
                                 "--audit-log", str(workdir / "audit.jsonl"), env=env).returncode)
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
