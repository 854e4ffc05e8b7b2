"""What a newcomer sees when the endpoint is wrong: fast, plain messages, no traceback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError

from provisioner.api.client import ApiClient
from provisioner.errors import TransportError
from provisioner.sandbox import start_sandbox
from tests.support import Cli, org_config

BODY = "users:\n  - {email: admin@example.com, role: admin}\n"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: nothing listens there


def test_connection_refused_fails_fast_and_names_host_and_port(tmp_path: Path) -> None:
    port = _closed_port()
    # The 2 s budget is the client's, timed in-process: a CLI subprocess would
    # add interpreter start-up, which a loaded CI machine makes unpredictable.
    started = time.monotonic()
    with ApiClient(f"http://127.0.0.1:{port}/api/v1", "k" * 32) as client:
        try:
            client.get("/me/")
        except TransportError as error:
            message = str(error)
        else:
            raise AssertionError("a refused connection must fail")
    elapsed = time.monotonic() - started
    assert message.startswith(f"cannot connect to 127.0.0.1:{port} (connection refused)")
    assert elapsed < 2, f"took {elapsed:.1f} s"

    # Through the CLI: the same plain message, no traceback, no urllib3 text.
    config = tmp_path / "org.yaml"
    config.write_text(org_config(f"http://127.0.0.1:{port}/api/v1", BODY))
    result = Cli(tmp_path, "k" * 32)("plan", "-c", str(config))
    assert result.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in result.stderr
    assert "Traceback" not in result.stderr and "urllib3" not in result.stderr


@responses.activate
def test_an_unknown_host_is_named_plainly() -> None:
    url = "https://nowhere.invalid/api/v1/me/"
    cause = NameResolutionError("nowhere.invalid", None, socket.gaierror("Name or service not known"))  # type: ignore[arg-type]
    responses.add(responses.GET, url, body=requests.ConnectionError(MaxRetryError(None, url, cause)))  # type: ignore[arg-type]
    with ApiClient("https://nowhere.invalid/api/v1", "k" * 32, max_retries=0) as client:
        try:
            client.get("/me/")
        except TransportError as error:
            assert str(error).startswith("cannot connect to nowhere.invalid:443 (host not found)")
        else:
            raise AssertionError("an unknown host must fail")


def test_a_base_url_without_api_v1_is_named(tmp_path: Path) -> None:
    # Not the contract-checked fixture: the paths asked for here are off the contract on purpose.
    sandbox = start_sandbox(tmp_path / "s.db")
    try:
        root = sandbox.base_url.removesuffix("/api/v1")
        config = tmp_path / "org.yaml"
        config.write_text(org_config(root, BODY))
        result = Cli(tmp_path, sandbox.token)("plan", "-c", str(config))
    finally:
        sandbox.stop()
    assert result.returncode == 1
    assert "is not an API base URL" in result.stderr and "Did you forget /api/v1?" in result.stderr
    assert "removed meanwhile" not in result.stderr
