"""The log formatter of the CLI: every log line redacted and escaped like an error message.

A module of its own so that ``--help`` and ``--version``, which never log,
never import ``logging`` (``cli.main.configure_logging`` imports this lazily).
"""

from __future__ import annotations

import logging

from provisioner.cli.output import safe_message
from provisioner.redaction import Redactor


class SafeFormatter(logging.Formatter):
    """Log lines redacted and escaped like error messages: log arguments include
    names from the config and the API, and stderr is a terminal or a CI log."""

    def __init__(self, fmt: str, redactor: Redactor) -> None:
        super().__init__(fmt)
        # Held here: log records come from worker threads, which see no click context.
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return safe_message(super().format(record), self.redactor)
