"""Ctrl-C during apply: the first signal stops new changes, the second aborts at once.

The signals are sent by the sandbox itself, from its response hook, at an
exact moment: while it serves the Nth write. No sleeps: the hook decides when,
and the second test's hook holds the in-flight response back until the CLI
has exited, which it can only do if it really abandons that request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from tests.reliability.rel_support import WRITE_METHODS, cli_argv, cli_env, run_cli, write_config

USERS = [f"user{i:02d}@example.com" for i in range(8)]
BODY = "users:\n  - {email: admin@example.com, role: admin}\n" + "".join(
    f"  - {{email: {email}, role: developer}}\n" for email in USERS
)


class WriteLog:
    """The sandbox's log of successful writes: (method, path, email or None)."""

    def __init__(self, on_write: Callable[[int], None]):
        self.writes: list[tuple[str, str, str | None]] = []
        self.on_write = on_write
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, status: int, headers: dict, body: bytes) -> None:
        if method not in WRITE_METHODS or not 200 <= status < 300:
            return
        email = json.loads(body).get("email") if body else None
        with self._lock:
            self.writes.append((method, path, email))
            n = len(self.writes)
        self.on_write(n)


def _start_apply(tmp_path: Path, token: str, config: str, audit: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv("apply", "-c", config, "--auto-approve", "--parallelism", "1", "--audit-log", str(audit)),
        cwd=tmp_path,
        env=cli_env(token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _audit(audit: Path) -> dict:
    lines = audit.read_text().splitlines()
    assert len(lines) == 1, "one audit record per run"
    return json.loads(lines[0])


def test_first_sigint_finishes_in_flight_and_starts_nothing_more(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    sandbox, hooks = hooked_sandbox(latency_ms=5)
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, BODY)
    audit = tmp_path / "audit.jsonl"
    proc: list[subprocess.Popen[str]] = []

    def on_write(n: int) -> None:
        if n == 3:  # while the third invite is being answered
            proc[0].send_signal(signal.SIGINT)

    log = WriteLog(on_write)
    hooks.add(log)
    proc.append(_start_apply(tmp_path, sandbox.token, config, audit))
    out, err = proc[0].communicate(timeout=60)

    assert proc[0].returncode == 130, (out, err)
    assert "SIGINT: stopping" in err and "interrupted by SIGINT" in err
    assert "Traceback" not in err and "Aborted!" not in err
    record = _audit(audit)
    applied = {item["key"] for item in record["applied"]}
    on_server = {email for method, _path, email in log.writes if method == "POST"}
    assert len(log.writes) == 3, "no request may start after the signal"
    assert applied == on_server, "the report must claim exactly what reached the server"
    assert len(record["skipped"]) == len(USERS) - 3 and not record["failed"]
    assert all("not started" in item["message"] for item in record["skipped"])
    assert f"Applied 3, failed 0, skipped {len(USERS) - 3}." in out

    # The next plan shows exactly the rest.
    result = run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--format", "json")
    assert result.returncode == 0, result.stderr
    remaining = {c["key"] for c in json.loads(result.stdout)["changes"]}
    assert remaining == set(USERS) - applied


def test_a_second_signal_aborts_at_once_and_still_writes_what_is_known(
    hooked_sandbox, tmp_path: Path
) -> None:  # noqa: ANN001
    sandbox, hooks = hooked_sandbox()
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, BODY)
    audit = tmp_path / "audit.jsonl"
    proc: list[subprocess.Popen[str]] = []
    held_until_exit = threading.Event()
    exited_while_held: list[bool] = []

    def on_write(n: int) -> None:
        if n == 3:
            proc[0].send_signal(signal.SIGINT)
            proc[0].send_signal(signal.SIGTERM)  # a second, distinct signal: they never coalesce
            # Hold the third response until the CLI has exited. A CLI that
            # waited for its in-flight request would never exit: the test
            # would time out instead of passing.
            try:
                proc[0].wait(timeout=60)
                exited_while_held.append(True)
            except subprocess.TimeoutExpired:
                exited_while_held.append(False)
            finally:
                held_until_exit.set()

    hooks.add(WriteLog(on_write))
    proc.append(_start_apply(tmp_path, sandbox.token, config, audit))
    out, err = proc[0].communicate(timeout=120)
    assert held_until_exit.wait(timeout=90)
    assert exited_while_held == [True], "the CLI waited for the request in flight instead of aborting"

    assert proc[0].returncode == 130, (out, err)
    assert "Traceback" not in err
    record = _audit(audit)
    applied = {item["key"] for item in record["applied"]}
    unknown = {item["key"] for item in record["failed"]}
    assert len(applied) == 2, record["applied"]
    assert [item["message"].startswith("outcome unknown") for item in record["failed"]] == [True]
    assert len(record["skipped"]) == len(USERS) - 3

    # The in-flight invite was committed by the server: the next plan shows the other five.
    result = run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--format", "json")
    remaining = {c["key"] for c in json.loads(result.stdout)["changes"]}
    assert remaining == set(USERS) - applied - unknown
    assert os.path.exists(audit)
