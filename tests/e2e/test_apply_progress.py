"""Apply's progress through the one output seam (``cli.output.Progress``), in both modes (issue 23).

On a terminal: click's progress bar with the count, the rate and the time
left. Otherwise (a pipe, a CI log): one plain line per change, no carriage
return and no escape code. The terminal case runs the real CLI with stderr on
a pseudo-terminal and reads the screen as a terminal would draw it (pyte).
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pyte

from provisioner.apply.report import ChangeResult
from provisioner.cli.output import Progress, format_seconds
from provisioner.plan.model import Action, Change, ResourceType
from tests.support import Cli

USERS = [f"user{i:02d}@example.com" for i in range(12)]
ORG = (
    "version: 1\norganization:\n  name: sandbox\n  region: us-east-1\nusers:\n"
    "  - {email: admin@example.com, role: admin}\n"
    + "".join(f"  - {{email: {email}, role: developer}}\n" for email in USERS)
)
ARGS = ("apply", "-c", "org.yaml", "--sandbox", "sandbox.db", "--auto-approve", "--parallelism", "2")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _result(email: str, status: str = "applied") -> ChangeResult:
    change = Change(action=Action.CREATE, type=ResourceType.USER, key=email, before=None, after=None)
    return ChangeResult(change, status, None if status == "applied" else "not started")  # type: ignore[arg-type]


def test_on_a_terminal_the_bar_shows_count_rate_and_time_left() -> None:
    stream, clock = _Terminal(), _Clock()
    progress = Progress(total=10, stream=stream, clock=clock)
    clock.now += 2.0
    for email in USERS[:4]:
        progress(_result(email))
    assert progress.status() == "2.0 changes/s, ETA 3s"
    progress(_result(USERS[4], "failed"))
    assert "1 failed" in progress.status()
    shown = stream.getvalue()
    assert "Applying" in shown and "4/10" in shown and "2.0 changes/s, ETA 3s" in shown
    assert "applied: create user" not in shown  # the bar, not lines
    progress.close()
    progress.close()  # once is enough; twice does nothing


def test_without_a_terminal_each_change_is_a_plain_line_and_skipped_ones_are_left_to_the_report() -> None:
    stream = io.StringIO()
    progress = Progress(total=3, stream=stream)
    progress(_result(USERS[0]))
    progress(_result(USERS[1], "failed"))
    progress(_result(USERS[2], "skipped"))
    progress.close()
    assert stream.getvalue() == (
        f"applied: create user {USERS[0]}\nfailed: create user {USERS[1]} (not started)\n"
    )


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0, 3.4, 65, 3725)] == ["0s", "3s", "1m 05s", "1h 02m"]


def test_apply_without_a_terminal_writes_plain_lines(tmp_path: Path) -> None:
    (tmp_path / "org.yaml").write_text(ORG)
    result = Cli(tmp_path, "unused")(*ARGS)
    assert result.returncode == 0, result.stderr
    for email in USERS:
        assert f"applied: create user {email}\n" in result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr and "changes/s" not in result.stderr


def test_apply_on_a_terminal_draws_clicks_bar_with_the_rate(tmp_path: Path) -> None:
    (tmp_path / "org.yaml").write_text(ORG)
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env.update(NO_COLOR="1", COLUMNS="100", LINES="40")
    chunks: list[bytes] = []

    def drain() -> None:  # until the child closes the terminal (EIO)
        try:
            while data := os.read(controller, 4096):
                chunks.append(data)
        except OSError:
            pass

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", *ARGS],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
        os.close(terminal)
        out, _ = process.communicate(timeout=120)
        reader.join(timeout=30)
    finally:
        os.close(controller)
    raw = b"".join(chunks).decode()
    assert process.returncode == 0, raw
    assert f"Applied {len(USERS)}, failed 0, skipped 0." in out

    screen = pyte.Screen(100, 40)
    pyte.Stream(screen).feed(raw)
    bar = next(line for line in screen.display if "Applying" in line)
    assert f"{len(USERS)}/{len(USERS)}" in bar and "[" + "#" * 30 + "]" in bar
    assert "changes/s" in bar
    assert "applied: create user" not in raw  # the bar replaces the lines
