"""Running the sandbox: the threaded Werkzeug server, in the foreground or a background thread."""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from provisioner.sandbox import store
from provisioner.sandbox.app import API_PREFIX, ResponseHook, SandboxApp
from provisioner.sandbox.knobs import FaultInjector, RateLimiter
from provisioner.sandbox.store import SandboxError


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log (it would swamp test and benchmark output)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def check_host(host: str, public: bool = False) -> None:
    """Refuse to listen beyond loopback unless ``public`` says so."""
    if public:
        return
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SandboxError(
            f"refusing to listen on {host!r}: the sandbox has no real security; "
            "use a loopback address such as 127.0.0.1, or pass --public to expose it"
        )


@dataclass(frozen=True)
class Prepared:
    """A db ready to serve: the store, the admin's key, and whether it was generated."""

    db: store.Store
    token: str
    generated: bool


def prepare(
    db_path: str | os.PathLike,
    *,
    token: str | None,
    admin_email: str,
    org_name: str,
    region: str,
) -> Prepared:
    """Open (creating if new) the db and make sure the admin owns a key.

    A new db gets the organization and an ACTIVE admin. Without ``token``
    a new key is minted for the admin (on a new db or an existing one).
    """
    db = store.Store(db_path)
    generated = token is None
    key = token if token is not None else store.new_key()
    with db.transaction(write=True) as conn:
        store.ensure_org(conn, org_name=org_name, region=region, admin_email=admin_email)
        admin = store.admin_for_keys(conn, admin_email)
        store.add_token(conn, admin["id"], key)
    return Prepared(db, key, generated)


def build_app(
    db: store.Store,
    *,
    latency_ms: int = 0,
    rate_limit: float | None = None,
    fail_rate: float = 0.0,
    seed: int | None = None,
    response_hook: ResponseHook | None = None,
) -> SandboxApp:
    """The WSGI app with the requested knobs."""
    return SandboxApp(
        db,
        latency_ms=latency_ms,
        rate_limiter=RateLimiter(rate_limit) if rate_limit else None,
        faults=FaultInjector(fail_rate, seed) if fail_rate > 0 else None,
        response_hook=response_hook,
    )


def make_wsgi_server(host: str, port: int, app: SandboxApp) -> BaseWSGIServer:
    """Werkzeug's threaded server (a thread per connection)."""
    return make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread. Use as a context manager, or call ``stop()``."""

    base_url: str  # http://127.0.0.1:PORT/api/v1
    url: str  # http://127.0.0.1:PORT
    token: str  # the admin's key
    db_path: str
    app: SandboxApp = field(repr=False)
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stats(self) -> dict[str, Any]:
        """``GET /api/v1/_sandbox/stats`` (read in-process: no request, nothing counted)."""
        return self.app.stats.snapshot()

    def reset_stats(self) -> None:
        """``POST /api/v1/_sandbox/stats/reset``, in-process."""
        self.app.stats.reset()

    def stop(self) -> None:
        """Stop serving, wait for the server thread, close the db. Safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        self.app.store.close()

    def __enter__(self) -> "RunningSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    db_path: str | os.PathLike,
    *,
    token: str | None = None,
    admin_email: str = "admin@example.com",
    org_name: str = "sandbox",
    region: str = "us-east-1",
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: int = 0,
    rate_limit: float | None = None,
    fail_rate: float = 0.0,
    seed: int | None = None,
    response_hook: ResponseHook | None = None,
) -> RunningSandbox:
    """Serve the sandbox from ``db_path`` in a background daemon thread.

    ``port=0`` picks a free ephemeral port. ``token`` is the admin's key; when
    None a new key is minted for the admin (also on an existing db).
    ``response_hook(method, path, status, headers, body)`` sees every response
    served. Only loopback hosts are accepted.
    """
    check_host(host)
    prepared = prepare(db_path, token=token, admin_email=admin_email, org_name=org_name, region=region)
    app = build_app(
        prepared.db,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        seed=seed,
        response_hook=response_hook,
    )
    server = make_wsgi_server(host, port, app)
    url = f"http://{host}:{server.server_port}"
    # A short poll interval so that stop() returns promptly (tests start hundreds).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox:{server.server_port}", daemon=True)
    thread.start()
    return RunningSandbox(
        base_url=url + API_PREFIX,
        url=url,
        token=prepared.token,
        db_path=os.fspath(db_path),
        app=app,
        _server=server,
        _thread=thread,
    )


def create_token(db_path: str | os.PathLike, email: str) -> str:
    """Mint and return a new key for the existing user ``email``."""
    db = store.Store(db_path)
    try:
        key = store.new_key()
        with db.transaction(write=True) as conn:
            user = store.user_by_email(conn, email)
            if user is None:
                raise SandboxError(f"no user {email.lower()!r} in {os.fspath(db_path)}; invite them first")
            store.add_token(conn, user["id"], key)
        return key
    finally:
        db.close()


def seed(
    db_path: str | os.PathLike,
    *,
    users: Iterable[tuple[str, str, str]] = (),
    workspaces: Iterable[str] = (),
    memberships: Iterable[tuple[str, str]] = (),
    admin_email: str = "admin@example.com",
    org_name: str = "sandbox",
    region: str = "us-east-1",
) -> None:
    """Bulk-load a db in one transaction (creating the organization first if new).

    ``users`` are (email, role, status); ``memberships`` (workspace name,
    email). Memberships naming an unknown workspace or email are skipped.
    Meant for benchmarks: 10,000 users and 100,000 memberships take seconds.
    """
    db = store.Store(db_path)
    try:
        with db.transaction(write=True) as conn:
            store.ensure_org(conn, org_name=org_name, region=region, admin_email=admin_email)
            store.bulk_seed(conn, users=users, workspaces=workspaces, memberships=memberships)
    finally:
        db.close()


def fetch_stats(url: str) -> dict[str, Any]:
    """The stats of a sandbox at root ``url`` over HTTP (for out-of-process servers)."""
    with urllib.request.urlopen(f"{url}{API_PREFIX}/_sandbox/stats", timeout=10) as response:
        return json.loads(response.read())
