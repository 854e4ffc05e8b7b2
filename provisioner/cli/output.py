"""Small helpers for what the CLI writes: errors, outcomes, colour, progress.

Decisions worth knowing:

* ``echo_error`` is the one way an error reaches stderr: ``cli.main`` uses it
  for an error that ends a command, ``show_outcome`` for the error of one
  organization of several. Error messages quote config keys, names and server
  text, all untrusted: the message passes through ``escape.log_text`` (no
  control character or escape sequence, and no line of it can start a GitHub
  Actions workflow command, since CI copies stderr to its log).
* **Redaction happens here, once per destination.** Every text this module
  writes passes through the invocation's ``Redactor`` (``run_redactor``),
  which the service teaches every secret the run knows: the API key, the
  config's secret values, each secret a sink was handed. A message quoting a
  failed ``--secrets-command``'s stderr, a server's answer or an exception is
  redacted whatever it quotes, and no call site has to remember to. The log
  handler (``cli.main.SafeFormatter``) and the audit record use the same one.
* This module is imported with ``cli.main``, before any command: it imports
  nothing heavy (types only for checking).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, TextIO, TypeVar

import click

from provisioner.errors import ProvisionerError
from provisioner.escape import log_text, terminal
from provisioner.redaction import Redactor

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from provisioner.apply.report import ChangeResult
    from provisioner.model import Config
    from provisioner.service.runner import Outcome, Result

R = TypeVar("R", bound="Result")


def run_redactor() -> Redactor:
    """This invocation's redactor, kept on click's root context; an empty one outside a command."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Redactor()
    root = ctx.find_root()
    root.ensure_object(dict)
    redactor = root.obj.get("redactor")
    if not isinstance(redactor, Redactor):
        redactor = root.obj["redactor"] = Redactor()
    return redactor


def safe_message(text: str, redactor: Redactor | None = None) -> str:
    """Message text made safe for a terminal and a CI log (see the module docstring)."""
    return log_text((redactor or run_redactor())(text))


def echo_error(error: ProvisionerError | str, redactor: Redactor | None = None) -> None:
    """The one format of an error on stderr: ``Error: <message>``, redacted and escaped.

    ``redactor``: the invocation's, for an error shown after its context ended.
    """
    click.echo(f"Error: {safe_message(str(error), redactor)}", err=True)


def show_outcome(outcome: Outcome[R], show: Callable[[Config, R], None]) -> None:
    """One organization's outcome: what it made (when anything), then its error (when one)."""
    if outcome.result is not None:
        show(outcome.config, outcome.result)
    if outcome.error is not None:
        echo_error(outcome.error)


def echo_text(text: str, *, err: bool = False) -> None:
    """Rendered output as it is (redacted): a newline added only where the text lacks one."""
    if text:
        text = run_redactor()(text)
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
    """Apply progress on stderr: click's progress bar on a terminal, plain lines otherwise.

    On a terminal the bar shows the count, the rate and the time left, and how
    many changes failed; in a CI log (no terminal) each applied or failed change
    is one plain line, with no carriage return or escape code. Skipped changes
    are never listed here: the apply report (``render.apply_report``) lists
    every change that was not applied, once, with its reason. ``close`` ends
    the bar's line; results arrive from the applier's worker threads.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        redactor: Redactor | None = None,
    ) -> None:
        self.redact = redactor or run_redactor()
        self.total = total
        # Taken now: the callbacks run in worker threads, which see no click context.
        self.redact = redactor or run_redactor()
        self.done = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._bar: ExitStack | None = None
        self._update: Callable[[int], None] | None = None
        if self.tty and total:
            bar: ProgressBar[int] = click.progressbar(
                length=total,
                label="Applying",
                file=self.stream,
                width=30,
                show_eta=False,  # computed here from the same rate as shown (click's needs 1 s of history)
                show_percent=False,
                show_pos=True,
                item_show_func=lambda _item: self.status(),
            )
            self._bar = ExitStack()
            self._bar.enter_context(bar)
            self._update = bar.update

    def status(self) -> str:
        """``2.5 changes/s, ETA 2s`` (and ``, 1 failed``): what the bar shows after the count."""
        elapsed = self._clock() - self._started
        parts = []
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:.1f} changes/s")
            if self.done < self.total:
                parts.append(f"ETA {format_seconds((self.total - self.done) / rate)}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)

    def __call__(self, result: ChangeResult) -> None:
        with self._lock:
            self.done += 1
            self.failed += result.status == "failed"
            if self._update is not None:
                self._update(1)
            elif result.status != "skipped":
                self.stream.write(self._line(result) + "\n")
                self.stream.flush()

    def close(self) -> None:
        """End the bar's line (once); plain lines need nothing."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = self._update = None

    def _line(self, result: ChangeResult) -> str:
        change = result.change
        line = f"{result.status}: {change.action.value} {change.type.value} {terminal(change.key)}"
        if result.message:
            # An applied change's note can be a step left to the operator (a Zoom
            # app's new webhook URL), so it is shown too.
            line += f" ({terminal(self.redact(result.message))})"
        return line


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``: a time left, to the second under an hour."""
    whole = max(int(round(seconds)), 0)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
