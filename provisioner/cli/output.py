"""Small helpers for what the CLI writes: errors, outcomes, colour, progress.

Decisions worth knowing:

* ``echo_error`` is the one way an error reaches stderr: ``cli.main`` uses it
  for an error that ends a command, ``show_outcome`` for the error of one
  organization of several. Error messages quote config keys, names and server
  text, all untrusted: the message passes through ``escape.log_text`` (no
  control character or escape sequence, and no line of it can start a GitHub
  Actions workflow command, since CI copies stderr to its log).
* This module is imported with ``cli.main``, before any command: it imports
  nothing heavy (types only for checking).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO, TypeVar

import click

from provisioner.errors import ProvisionerError
from provisioner.escape import log_text, terminal

if TYPE_CHECKING:
    from provisioner.apply.report import ChangeResult
    from provisioner.model import Config
    from provisioner.service.runner import Outcome, Result

R = TypeVar("R", bound="Result")


def safe_message(text: str) -> str:
    """Message text made safe for a terminal and a CI log (see the module docstring)."""
    return log_text(text)


def echo_error(error: ProvisionerError | str) -> None:
    """The one format of an error on stderr: ``Error: <message>``, escaped."""
    click.echo(f"Error: {safe_message(str(error))}", err=True)


def show_outcome(outcome: Outcome[R], show: Callable[[Config, R], None]) -> None:
    """One organization's outcome: what it made (when anything), then its error (when one)."""
    if outcome.result is not None:
        show(outcome.config, outcome.result)
    if outcome.error is not None:
        echo_error(outcome.error)


def echo_text(text: str, *, err: bool = False) -> None:
    """Rendered output as it is: a newline added only where the text lacks one."""
    if text:
        click.echo(text, nl=not text.endswith("\n"), err=err)


def use_color(stream: TextIO | None = None) -> bool:
    """``--color always``/``never`` when given; else colour only on a terminal, never with NO_COLOR."""
    ctx = click.get_current_context(silent=True)
    choice = (ctx.find_root().obj or {}).get("color", "auto") if ctx is not None else "auto"
    if choice != "auto":
        return bool(choice == "always")  # an explicit flag outranks NO_COLOR, as no-color.org asks
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
        if result.message:
            # An applied change's note can be a step left to the operator (a Zoom
            # app's new webhook URL), so it is shown too.
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
