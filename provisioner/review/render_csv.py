"""The access review as CSV: one row per user × workspace instance with access.

The columns are those an auditor's spreadsheet expects: who, where, which
environment, since when and from which commit, why and until when, whether
the config declares it, which pull request granted it and who approved and
merged it (as far as CI told apply), and an empty ``decision`` column for the
reviewer.

Decisions worth knowing:

* Every cell passes through ``escape.spreadsheet_cell``: a value starting
  with ``= + - @``, a tab or a carriage return gets a leading ``'``, so an
  email or a reason can never run as a formula when the file is opened.
* Rows follow the report's order (production first), so a filter or a sort
  in the spreadsheet starts from the order the HTML page shows.
* ``\\r\\n`` line ends and a header row, as RFC 4180 and spreadsheets expect.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC

from provisioner.escape import spreadsheet_cell
from provisioner.review import text
from provisioner.review.model import Grant, Origin, Review

COLUMNS: tuple[str, ...] = (
    "organization",
    "user",
    "role",
    "user_status",
    "workspace",
    "environment",
    "production",
    "in_config",
    "origin",
    "granted_at",
    "history",
    "granted_commit",
    "granted_audit_line",
    "granted_pull_request",
    "granted_approvers",
    "granted_merged_by",
    "reason",
    "expires",
    "reviewed_at",
    "decision",
)


def _row(review: Review, g: Grant) -> tuple[str, ...]:
    return (
        review.summary.organization,
        g.user,
        g.role,
        g.status,
        g.workspace,
        g.environment or "",
        "yes" if g.production else "no",
        "yes" if g.origin in (Origin.DECLARED, Origin.EXPIRED) else "no",
        g.origin.value,
        g.since.time.astimezone(UTC).isoformat() if g.since is not None else "",
        text.PROVENANCE_TEXT[g.provenance],
        (g.since.commit or "") if g.since is not None else "",
        str(g.since.line) if g.since is not None else "",
        (g.since.pull_request or "") if g.since is not None else "",
        ", ".join(g.since.approvers) if g.since is not None else "",
        (g.since.merged_by or "") if g.since is not None else "",
        g.reason or "",
        text.expiry(g.expires),
        review.summary.read_at.astimezone(UTC).isoformat(),
        "",
    )


def render_csv(review: Review) -> str:
    """The CSV document for ``review``: a header row, then one row per grant."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for grant in review.grants:
        writer.writerow([spreadsheet_cell(cell) for cell in _row(review, grant)])
    return out.getvalue()
