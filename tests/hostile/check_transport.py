"""Checks of the hostile corpus: transport (promise 3) and secrets (promise 6).

See tests/hostile/test_hostile_corpus.py. Kinds:

* ``transport-url`` -- a URL the key must not follow, given ``via`` the config's
  ``api_url``, ``--api-url``, or a ``next`` link from the server. ``url`` may
  hold ``{api}`` (the real server's port) and ``{decoy}`` (the port of a
  loopback listener posing as the attacker's host). The run must fail with
  ``expect`` in its error, and the decoy must receive nothing.
* ``transport-config`` -- a ``config`` that names where the key goes or which
  secret is sent. ``plan`` must refuse it with an error located at each of
  ``at`` (``line:col``) saying ``expect``, before any connection is attempted.
* ``transport-redaction`` -- the server answers every request with ``status``
  and a ``body`` (JSON) or ``raw`` text that echoes the key (``{key}``, or a
  slice ``{key:3:20}``). Neither the key nor any 12 characters of it may
  appear in stdout or stderr, at any verbosity.
* ``transport-bad-key`` -- the key itself holds a character a header cannot
  carry (``key``). The run must refuse it cleanly (no traceback), print no
  12 characters of it, and send nothing.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from provisioner.cli.main import cli
from provisioner.sandbox import start_sandbox
from tests.local_server import LocalServer, Reply, Seen
from tests.support import TOKEN_ENV, org_config

KEY = "RCL-live-7Q2wX9vB4nM8kL3pZ6tY1rE5uI0oA"  # 37 characters, all of them secret
FRAGMENT = 12
BODY = "users:\n  - {email: admin@example.com, role: admin}\n"


def _fragments(key: str) -> set[str]:
    return {key[i : i + FRAGMENT] for i in range(len(key) - FRAGMENT + 1)}


def assert_no_key(key: str, *texts: str) -> None:
    """Neither ``key`` nor any run of 12 of its characters is in ``texts``."""
    for text in texts:
        assert key not in text, "the whole key was printed"
        leaked = [f for f in _fragments(key) if f in text]
        assert not leaked, f"{len(leaked)} fragments of the key were printed, e.g. {leaked[0]!r}"


def _with_key(template: str, key: str) -> str:
    """``{key}`` or a slice ``{key:A:B}`` of the key, in ``template``."""

    def piece(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return key
        start, end = (int(g) if g else None for g in match.group(1, 2))
        return key[start:end]

    return re.sub(r"\{key(?::(-?\d*):(-?\d*))?\}", piece, template)


def _run_subprocess(
    cwd: Path, key: str, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env.update({TOKEN_ENV: key, "NO_COLOR": "1", "PROVISIONER_MAX_RETRIES": "0", **(extra_env or {})})
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    """The CLI in-process (so the test's network guard and counters see every connect)."""
    clean = {k: None for k in os.environ if k.startswith(("PROVISIONER_", "RECALL_"))}
    result = CliRunner().invoke(cli, args, env={**clean, "PROVISIONER_MAX_RETRIES": "0", **env})
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    return result


# --- transport-url ------------------------------------------------------------------


def _inject_next(template: str, decoy: int) -> Callable[[Seen, int, dict, bytes], bytes]:
    """A rewrite that gives the first page of the users listing a hostile ``next``.

    ``{api}`` in ``template`` is the port the request came in on (the proxy's).
    """

    def rewrite(seen: Seen, status: int, headers: dict, body: bytes) -> bytes:
        if seen.method == "GET" and seen.path.startswith("/api/v1/users/") and "page=" not in seen.path:
            page = json.loads(body)
            page["next"] = template.format(api=seen.headers["Host"].rsplit(":", 1)[1], decoy=decoy)
            return json.dumps(page).encode()
        return body

    return rewrite


def check_url(case: dict[str, Any], tmp_path: Path) -> None:
    via = case["via"]
    assert via in ("config", "cli", "next"), via
    with (
        start_sandbox(tmp_path / "org.db", token=KEY) as sandbox,
        LocalServer(lambda seen: Reply(200, {"results": [], "next": None})) as decoy,
    ):
        port = int(sandbox.url.rsplit(":", 1)[1])
        url = case["url"].format(api=port, decoy=decoy.port)
        config = tmp_path / "org.yaml"
        args = ["plan", "-c", str(config)]
        if via == "config":
            config.write_text(org_config(f"'{url}'", BODY))  # single quotes: backslashes stay
            result = _invoke(args, {TOKEN_ENV: KEY})
            assert f"{config}:3:" in result.stderr, result.stderr  # located at api_url
        elif via == "cli":
            config.write_text(org_config(sandbox.base_url, BODY))
            result = _invoke([*args, "--api-url", url], {TOKEN_ENV: KEY})
        else:
            host, api_port = sandbox.url.removeprefix("http://").split(":")
            rewrite = _inject_next(case["url"], decoy.port)
            with LocalServer(None, upstream=(host, int(api_port)), rewrite=rewrite) as proxy:
                config.write_text(org_config(proxy.base_url, BODY))
                result = _invoke(args, {TOKEN_ENV: KEY})
                assert proxy.requests_with("GET", "/api/v1/users/"), "the real server was not asked"
        assert decoy.seen == [], "the key went to the other host"
    assert result.exit_code == 1, result.output
    for word in case["expect"]:
        assert word in result.stderr, (word, result.stderr)
    assert_no_key(KEY, result.output)


# --- transport-config ---------------------------------------------------------------


def check_config(case: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(case["config"])
    attempts: list[object] = []
    with pytest.MonkeyPatch.context() as patch:
        real_getaddrinfo = socket.getaddrinfo
        patch.setattr(socket, "getaddrinfo", lambda *a, **k: attempts.append(a) or real_getaddrinfo(*a, **k))
        patch.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr))
        env = {TOKEN_ENV: KEY, "RECALL_API_KEY": KEY, "GITHUB_TOKEN": KEY, **case.get("env", {})}
        results = [_invoke([command, "-c", str(config)], env) for command in ("validate", "plan")]
    assert attempts == [], "a connection was attempted"
    for result in results:
        assert result.exit_code == 1, result.output
        for at in case["at"]:
            assert f"{config}:{at}:" in result.stderr, (at, result.stderr)
        for word in case["expect"]:
            assert word in result.stderr, (word, result.stderr)
        assert_no_key(KEY, result.output)


# --- transport-redaction --------------------------------------------------------------


# A config secret's value, for cases where the endpoint echoes it (``secret: true``).
SECRET = "dg-live-Zx81Qw27Ty64Ui09Op35As"
SECRET_BODY = BODY + (
    "workspaces:\n  - name: app\n    transcription:\n      deepgram:\n        api_key: {env: HOSTILE_SECRET}\n"
)


def _with_secrets(text: str) -> str:
    return _with_key(text.replace("{secret}", SECRET), KEY)


def check_redaction(case: dict[str, Any], tmp_path: Path) -> None:
    if "raw" in case:
        reply = Reply(case["status"], raw=_with_secrets(case["raw"]).encode())
    else:
        body = {k: _with_secrets(v) if isinstance(v, str) else v for k, v in case["body"].items()}
        reply = Reply(case["status"], body)
    env = {"HOSTILE_SECRET": SECRET} if case.get("secret") else {}
    with LocalServer(lambda seen: reply) as server:
        config = tmp_path / "org.yaml"
        config.write_text(org_config(server.base_url, SECRET_BODY if env else BODY))
        for verbosity in ([], ["-v"], ["-vv"]):
            result = _run_subprocess(tmp_path, KEY, *verbosity, "plan", "-c", str(config), extra_env=env)
            assert result.returncode == 1, (result.stdout, result.stderr)
            assert_no_key(KEY, result.stdout, result.stderr)
            assert_no_key(SECRET, result.stdout, result.stderr)
            for word in case["expect"]:
                assert word in result.stderr, (word, result.stderr)
        assert server.seen and all(s.headers.get("Authorization") == f"Token {KEY}" for s in server.seen)


# --- transport-bad-key ------------------------------------------------------------------


def check_bad_key(case: dict[str, Any], tmp_path: Path) -> None:
    key = case["key"]
    with LocalServer(lambda seen: Reply(200, {})) as server:
        config = tmp_path / "org.yaml"
        config.write_text(org_config(server.base_url, BODY))
        for verbosity in ([], ["-vv"]):
            result = _run_subprocess(tmp_path, key, *verbosity, "plan", "-c", str(config))
            assert result.returncode == 1, (result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, result.stderr
            assert_no_key(key, result.stdout, result.stderr)
            for word in case["expect"]:
                assert word in result.stderr, (word, result.stderr)
        assert server.seen == [], "a key a header cannot carry was sent"


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "transport-url": check_url,
    "transport-config": check_config,
    "transport-redaction": check_redaction,
    "transport-bad-key": check_bad_key,
}
