"""What an apply did, as text: the apply-report registry (one format so far).

``Applied 12, failed 1, skipped 3.``, then one line per change that failed
or was not applied, with its reason. Keys and server messages are untrusted:
each passes through ``escape.terminal`` (``describe`` does so for the key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from provisioner.apply.report import ApplyReport, describe
from provisioner.escape import terminal


def render_report(report: ApplyReport) -> str:
    """``Applied 12, failed 1, skipped 3.`` followed by one line per failed or skipped change."""
    lines = [f"Applied {len(report.applied)}, failed {len(report.failed)}, skipped {len(report.skipped)}."]
    if report.interrupted:
        lines[0] += f" Interrupted ({report.interrupted}): no change started after it."
    for result in report.failed + report.skipped:
        message = terminal(result.message or "no reason given")
        lines.append(f"  {result.status}: {describe(result.change)}: {message}")
    return "\n".join(lines)


ApplyRenderer = Callable[[ApplyReport], str]

APPLY_RENDERERS: Mapping[str, ApplyRenderer] = {"text": render_report}
