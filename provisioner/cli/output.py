"""Small helpers for what the CLI writes: errors, colour, progress.

Decisions worth knowing:

* ``echo_error`` is the one way an error reaches stderr (``cli.main`` uses it
  for errors that end a command, the commands for errors of one organization).
  Error messages quote config keys, names and server text, all untrusted: the
  message passes through ``escape.terminal_lines`` (no control character or
  escape sequence) and ``escape.neutralize_workflow_commands`` (no line of it
  can start a GitHub Actions workflow command, since CI copies stderr to its log).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO

import click

from provisioner.apply.executor import ChangeResult
from provisioner.errors import ProvisionerError
from provisioner.escape import neutralize_workflow_commands, terminal, terminal_lines


def safe_message(text: str) -> str:
    """Message text made safe for a terminal and a CI log (see the module docstring)."""
    return neutralize_workflow_commands(terminal_lines(text))


def echo_error(error: ProvisionerError | str) -> None:
    """The one format of an error on stderr: ``Error: <message>``, escaped."""
    click.echo(f"Error: {safe_message(str(error))}", err=True)


def use_color(stream: TextIO | None = None) -> bool:
    """``--color always``/``never`` when given; else colour only on a terminal, never with NO_COLOR."""
    ctx = click.get_current_context(silent=True)
    choice = (ctx.find_root().obj or {}).get("color", "auto") if ctx is not None else "auto"
    if choice != "auto":
        return choice == "always"  # an explicit flag outranks NO_COLOR, as no-color.org asks
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") is not None:
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """Apply progress on stderr: a bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        # Called from the applier's worker threads.
        self._lock = threading.Lock()

    def __call__(self, result: ChangeResult) -> None:
        with self._lock:
            self._show(result)

    def _show(self, result: ChangeResult) -> None:
        self.done += 1
        change = result.change
        line = f"{result.status}: {change.action.value} {change.type.value} {terminal(change.key)}"
        if result.message and result.status != "applied":
            line += f" ({terminal(result.message)})"
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} ")
            if result.status != "applied":
                self.stream.write("\n" + line + "\n")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
