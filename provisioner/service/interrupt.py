"""Ctrl-C and SIGTERM during an apply: stop starting changes, then abort if asked twice.

The first SIGINT or SIGTERM requests a stop (``StopRequest``): the changes in
flight finish, nothing new starts, and the run reports and records what was
applied, what failed and what was not started. A second signal aborts: the
applier abandons the changes in flight at once (their outcome is unknown; the
next plan shows it). It raises ``KeyboardInterrupt`` only where the applier
waits for changes in flight (``StopRequest.abort``), never in the middle of its
bookkeeping, where an interrupted step could lose a change that reached the
server.

Exit codes follow the shell's convention: 128 + the signal's number (130 for
SIGINT, 143 for SIGTERM).

Signal handlers can only be installed from the main thread; called from any
other thread (a program using the service layer), ``stop_on_signals`` leaves
the signals alone and the caller stops the run through ``StopRequest``.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from provisioner.apply.executor import StopRequest

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_code_for(reason: str | None) -> int:
    """128 + the signal's number for a signal name such as ``SIGINT``; 130 otherwise."""
    try:
        return 128 + int(signal.Signals[reason or ""])
    except KeyError:
        return 128 + int(signal.SIGINT)


@contextmanager
def stop_on_signals(stop: StopRequest, stream: TextIO | None = None) -> Iterator[None]:
    """While inside, the first SIGINT/SIGTERM requests ``stop``; the second aborts."""
    out = stream or sys.stderr

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            stop.abort()  # raises KeyboardInterrupt where the run waits, else at its next safe point
            return
        stop.request(name)
        out.write(
            f"\n{name}: stopping. The changes in flight finish; no new change starts. "
            "Send it again to abort at once.\n"
        )
        out.flush()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
