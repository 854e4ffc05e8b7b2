"""An HTTP(S) server on 127.0.0.1 for tests: it records every request, and
answers from a test's ``decide`` function, from a script, or by forwarding to
the sandbox (optionally rewriting the answer).

Used where the behaviour under test lives below `responses`: urllib3's retries
and waits, connection drops, redirects, proxies, TLS.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    drop: bool = False  # close the connection without answering
    raw: bytes | None = None  # the body as is, instead of ``body`` as JSON


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

    def __init__(
        self,
        decide: Decide | None = None,
        *,
        upstream: tuple[str, int] | None = None,
        rewrite: Rewrite | None = None,
        tls: ssl.SSLContext | None = None,
    ):
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
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.hang:
                    server.release.wait(30)
                    self.close_connection = True
                    return
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                if reply.raw is not None:
                    payload = reply.raw
                headers = dict(reply.headers)
                if payload:
                    headers.setdefault("Content-Type", "application/json")
                self._send(reply.status, headers, payload)

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "date",
                        "server",
                    ):
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
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
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

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ScriptedServer(LocalServer):
    """Answers each request with the next ``Reply`` of ``script``, in order."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        super().__init__(self._next)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            return self.script.pop(0) if self.script else Reply(500, {"detail": "script ran out"})
