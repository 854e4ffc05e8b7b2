"""Running the sandbox: the threaded Werkzeug server, in the foreground or a background thread."""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any, cast

from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

from provisioner.frozen import frozen
from provisioner.sandbox import store, v2
from provisioner.sandbox.app import API_PREFIX, MAX_BODY_BYTES, ResponseHook, SandboxApp
from provisioner.sandbox.knobs import FaultInjector, RateLimiter
from provisioner.sandbox.limits import PublishedLimits
from provisioner.sandbox.store import SandboxError

log = logging.getLogger(__name__)

# An idle keep-alive connection is closed after this long without a request.
IDLE_TIMEOUT_S = 60.0
# After refusing a body, up to this much of it is read and discarded so that
# the client, still sending, gets the 413 rather than a connection reset
# (closing a socket with unread input resets it). Beyond this the connection
# is closed: the client is sending far more than any request needs.
DRAIN_LIMIT_BYTES = 8 * MAX_BODY_BYTES
_DRAIN_CHUNK = 64 * 1024


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, with HTTP/1.1 keep-alive and without the per-request access log.

    Werkzeug's own ``run_wsgi`` closes every connection ("Connection: close")
    and then waits up to 10 ms for stray request bytes. A client then pays a
    new TCP connection, and the server a new thread, for every request, which
    made the sandbox the bottleneck of a 1,000-page read. Here a connection
    serves request after request: the request body is bounded by its
    Content-Length (the app can never read into the next request) and
    whatever the app left unread is drained before the answer. Requests with a
    chunked body, and an app that answers nothing (an injected dropped
    connection), close the connection as before.

    Bodies are never read whole into memory beyond the app's limit
    (``MAX_BODY_BYTES``, a 413): a declared length above ``DRAIN_LIMIT_BYTES``
    is not drained but answered and closed, and is not invited with
    ``100 Continue``.
    """

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S  # socket timeout: ends a connection left idle
    # Headers and body go out in separate writes; with Nagle's algorithm the
    # body would wait for the client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` of an answer on the sandbox's clock (``POST /_sandbox/clock``)."""
        offset = float(getattr(getattr(self.server, "app", None), "clock_offset", 0.0) or 0.0)
        moment = (time.time() if timestamp is None else timestamp) + offset
        return email.utils.formatdate(moment, usegmt=True)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def handle_expect_100(self) -> bool:
        # http.server would answer "100 Continue" while parsing the headers,
        # before anyone knows whether the body is wanted; run_wsgi decides.
        return True

    def setup(self) -> None:
        super().setup()
        track = getattr(self.server, "track", None)
        if track is not None:
            track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            track = getattr(self.server, "track", None)
            if track is not None:
                track(self.connection, False)

    def run_wsgi(self) -> None:
        self.environ = environ = self.make_environ()
        expects_continue = self.headers.get("Expect", "").lower().strip() == "100-continue"
        body: LimitedStream | None = None
        drain = True
        if environ.get("wsgi.input_terminated"):  # chunked: no length to bound it by
            self.close_connection = True
        else:
            try:
                length = max(0, int(environ.get("CONTENT_LENGTH") or 0))
            except ValueError:
                length = 0
                self.close_connection = True
            if length > DRAIN_LIMIT_BYTES or (length > MAX_BODY_BYTES and expects_continue):
                # The app refuses it unread. Not worth reading to keep the
                # connection, and a client waiting for "100 Continue" has
                # not sent it: answer, and close.
                drain = False
                self.close_connection = True
            # rfile is a BufferedReader: a binary IO, which typeshed types as BufferedIOBase.
            body = LimitedStream(cast(IO[bytes], self.rfile), length)
            environ["wsgi.input"] = body
        if drain and expects_continue:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # The app replaces wsgi.input with what it read; what is left is read from here.
        unread = body if body is not None else environ["wsgi.input"]
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [(status, headers)]
            return self._refuse_write

        try:
            chunks = self.server.app(environ, start_response)
            try:
                data = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except Exception:
            log.exception("sandbox: %s %s failed", self.command, self.path)
            started[:] = [("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")])]
            data = b'{"detail":"Internal error; see the sandbox log.","code":"server_error"}'
            self.close_connection = True
        if not started:  # the app dropped the connection on purpose
            self.close_connection = True
            return
        if drain:
            # Unread body bytes must not be taken for the next request, and a
            # client still sending must be able to read the answer.
            if not self._drain(unread):
                self.close_connection = True
        status, headers = started[0]
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    @staticmethod
    def _drain(stream: Any) -> bool:
        """Read and discard what is left of a body, at most ``DRAIN_LIMIT_BYTES``; True if it ended."""
        left = DRAIN_LIMIT_BYTES
        try:
            while left > 0:
                chunk = stream.read(min(_DRAIN_CHUNK, left))
                if not chunk:
                    return True
                left -= len(chunk)
        except (OSError, ValueError, HTTPException):  # a broken chunked encoding or a gone client
            return False
        return False

    @staticmethod
    def _refuse_write(data: bytes) -> None:
        raise AssertionError("the sandbox app returns its body; it never calls write()")


class SandboxServer(ThreadedWSGIServer):
    """Werkzeug's threaded server (a thread per connection) that closes its open
    keep-alive connections when it closes, so that a stopped sandbox answers no one.

    It also stops at once: ``socketserver``'s loop notices ``shutdown()`` only at
    its next poll (``poll_interval``, 50 ms for a background sandbox), which every
    command on an embedded sandbox paid at exit. Here ``shutdown()`` wakes the
    loop's ``select`` through a socket pair.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake_read, self._wake_write = socket.socketpair()
        super().__init__(*args, **kwargs)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown()`` (or Ctrl-C in the foreground), then close the server."""
        self._stopped.clear()
        try:
            self._serve_until_stopped(poll_interval)
        except KeyboardInterrupt:
            pass
        finally:
            self._stopping.clear()
            self._stopped.set()
            self.server_close()

    def _serve_until_stopped(self, poll_interval: float) -> None:
        # socketserver's loop, with the wake-up socket beside the listening one.
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select(poll_interval)
                if self._stopping.is_set():
                    break
                woken = {key.fd for key, _ in ready}
                if self.fileno() in woken:
                    # socketserver's own accept-and-handle step (private, so not in typeshed).
                    self._handle_request_noblock()  # type: ignore[attr-defined]
                if self._wake_read.fileno() in woken:  # a stray byte: read it, or select never blocks again
                    self._wake_read.recv(64)
                self.service_actions()

    def shutdown(self) -> None:
        """Stop the serving loop and wait for it; it must be running in another thread."""
        self._stopping.set()
        try:
            self._wake_write.send(b"\0")
        except OSError:  # already closed: the loop has ended
            pass
        self._stopped.wait()

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def server_close(self) -> None:
        super().server_close()
        self._wake_read.close()
        self._wake_write.close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
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


@frozen
class Prepared:
    """A db ready to serve: the store, the admin's key, and whether it was generated."""

    db: store.Store
    token: str
    generated: bool


def prepare(
    db_path: str | os.PathLike[str],
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
    recall_limits: bool | tuple[int, int] = False,
) -> SandboxApp:
    """The WSGI app with the requested knobs.

    ``recall_limits`` enforces Recall.ai's published limits (``sandbox/limits.py``)
    on the v2 endpoints, per workspace, and on the management contract, per
    key: 60 list and 300 other requests a minute when True, or the
    ``(list, other)`` requests a minute given (scaled for tests).
    """
    published = None
    if recall_limits:
        published = PublishedLimits(per_minute=recall_limits if isinstance(recall_limits, tuple) else None)
    return SandboxApp(
        db,
        latency_ms=latency_ms,
        rate_limiter=RateLimiter(rate_limit) if rate_limit else None,
        faults=FaultInjector(fail_rate, seed) if fail_rate > 0 else None,
        response_hook=response_hook,
        published_limits=published,
    )


def make_wsgi_server(host: str, port: int, app: SandboxApp) -> BaseWSGIServer:
    """The threaded server (a thread per keep-alive connection)."""
    return SandboxServer(host, port, app, QuietRequestHandler)


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

    def workspace_key(self, workspace: str, email: str | None = None) -> str:
        """A new v2 key scoped to ``workspace`` (made if new), of ``email`` (default: the admin)."""
        return create_workspace_key(self.db_path, workspace, email)

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

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    db_path: str | os.PathLike[str],
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
    recall_limits: bool | tuple[int, int] = False,
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
        recall_limits=recall_limits,
    )
    server = make_wsgi_server(host, port, app)
    url = f"http://{host}:{server.server_port}"
    # A short poll interval so that stop() returns promptly (tests start hundreds).
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"sandbox:{server.server_port}",
        daemon=True,
    )
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


def create_token(db_path: str | os.PathLike[str], email: str) -> str:
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


def create_workspace_key(db_path: str | os.PathLike[str], workspace: str, email: str | None = None) -> str:
    """Mint a v2 key of ``email`` (default: the organization's first admin) scoped to ``workspace``.

    On the real service both the workspace and the key are made in the
    dashboard; the workspace is made here when it does not exist yet.
    """
    db = store.Store(db_path)
    try:
        with db.transaction(write=True) as conn:
            if email is None:
                user = conn.execute(
                    "SELECT * FROM users WHERE role = 'admin' ORDER BY seq LIMIT 1"
                ).fetchone()
            else:
                user = store.user_by_email(conn, email)
            if user is None:
                raise SandboxError(f"no user {email or 'admin'!r} in {os.fspath(db_path)}; invite them first")
            return v2.workspace_key(conn, user_id=user["id"], workspace=workspace, name=f"{workspace} (v2)")
    finally:
        db.close()


def seed(
    db_path: str | os.PathLike[str],
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
