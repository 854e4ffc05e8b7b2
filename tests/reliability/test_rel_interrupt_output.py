"""What a person reads after Ctrl-C: each change that was not started is listed once (issue 23).

The progress (stderr) and the apply report (stdout) both used to list the
skipped changes, so a terminal showed each one twice. The report is now the
one place that lists what was not applied. The signal is sent by the
sandbox's response hook while it serves the third write: no sleeps.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.reliability.rel_support import cli_argv, cli_env, write_config
from tests.reliability.test_rel_interrupt import BODY, USERS, WriteLog


def test_after_sigint_each_skipped_change_is_listed_once(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    sandbox, hooks = hooked_sandbox(latency_ms=5)
    config = write_config(tmp_path / "org.yaml", sandbox.base_url, BODY)
    proc: list[subprocess.Popen[str]] = []

    def on_write(n: int) -> None:
        if n == 3:
            proc[0].send_signal(signal.SIGINT)

    hooks.add(WriteLog(on_write))
    proc.append(
        subprocess.Popen(
            cli_argv("apply", "-c", config, "--auto-approve", "--parallelism", "1"),
            cwd=tmp_path,
            env=cli_env(sandbox.token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    out, err = proc[0].communicate(timeout=60)

    assert proc[0].returncode == 130, (out, err)
    assert f"Applied 3, failed 0, skipped {len(USERS) - 3}." in out
    # Both streams end up on one terminal: count there.
    screen = out + err
    skipped = USERS[3:]
    for email in skipped:
        assert screen.count(f"skipped: create user {email}") == 1, screen
    # The report on stdout is the one that lists them, with the reason.
    for email in skipped:
        assert f"skipped: create user {email}: not started: the run was interrupted (SIGINT)" in out
