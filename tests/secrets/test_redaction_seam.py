"""Issue 21, part 5: each output destination redacts through the invocation's one ``Redactor``.

The end-to-end reproduction is
``tests/e2e/test_sink_boundaries.py::test_a_failing_commands_output_is_redacted_of_every_secret_the_run_knows``;
these check each seam alone: the terminal (``echo_text``, ``echo_error``,
``Progress``), the log handler and the audit writer's messages, and that a
secret learned mid-run is redacted from then on, whoever builds the message.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import click
from click.testing import CliRunner

from provisioner.apply.report import FAILED, ApplyReport, ChangeResult
from provisioner.audit import AuditRecord, append_record
from provisioner.cli.logformat import SafeFormatter
from provisioner.cli.output import Progress, echo_error, echo_text, run_redactor
from provisioner.model import State, Webhook
from provisioner.plan.model import Action, Change, ResourceType
from provisioner.redaction import Redactor
from provisioner.secrets.sink import GeneratedSecret, RememberingSink

KEY = "recall-admin-key-0123456789abcdef0123"
DELIVERED = "whsec_delivered0123456789abcdefghijk"


def failed(message: str) -> ChangeResult:
    hook = Webhook("app", "https://hooks.example.invalid/x", ("bot.done",))
    change = Change(Action.CREATE, ResourceType.WEBHOOK, "app https://hooks.example.invalid/x", None, hook)
    return ChangeResult(change, FAILED, message)


def test_the_terminal_functions_use_the_invocations_redactor() -> None:
    @click.command()
    def command() -> None:
        run_redactor().learn(KEY)
        echo_text(f"report: {KEY}")
        echo_error(f"cannot deliver: its stderr: {KEY[4:30]}")

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and KEY[4:30] not in result.output
    assert "report: ***" in result.output and "its stderr: ***" in result.output


def test_progress_lines_from_worker_threads_are_redacted() -> None:
    redactor = Redactor([KEY])
    stream = io.StringIO()
    progress = Progress(total=1, stream=stream, redactor=redactor)
    redactor.learn(DELIVERED)  # learned after the progress was made: still redacted
    progress(failed(f"command failed; its stderr: {KEY} {DELIVERED}"))
    shown = stream.getvalue()
    assert KEY not in shown and DELIVERED not in shown and "*** ***" in shown


def test_log_lines_are_redacted() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s", Redactor([KEY]))
    record = logging.LogRecord("provisioner.apply", logging.INFO, __file__, 1, "applied %s", (KEY,), None)
    assert formatter.format(record) == "INFO applied ***"


def test_the_audit_record_is_written_with_its_messages_redacted(tmp_path: Path) -> None:
    report = ApplyReport.from_results([failed(f"its stderr: {KEY} and {KEY[6:26]}")])
    record = AuditRecord(
        time=datetime(2026, 6, 1, tzinfo=UTC),
        tool_version="t",
        organization="Acme",
        config_digest="c",
        state_fingerprint="s",
        report=report,
        left_behind=State.build(),
        commit=None,
    )
    target = tmp_path / "audit.jsonl"
    append_record(record, str(target), stdout=io.StringIO(), redact=Redactor([KEY]))
    written = target.read_text()
    assert KEY not in written and KEY[6:26] not in written
    assert json.loads(written)["failed"][0]["message"] == "its stderr: *** and ***"


def test_a_delivered_secret_is_learned_before_the_sink_sees_it() -> None:
    redactor = Redactor()

    class Failing:
        def describe(self) -> str:
            return "command leaky"

        def deliver(self, secret: GeneratedSecret) -> str:
            # By now the run knows it: the message this sink's failure makes is redacted downstream.
            assert redactor(secret.value) == "***"
            return "nowhere"

    secret = GeneratedSecret("Acme", "app", None, "webhook x", "webhook-1", DELIVERED)
    assert RememberingSink(Failing(), redactor.learn).deliver(secret) == "nowhere"
    assert redactor(f"later: {DELIVERED}") == "later: ***"
