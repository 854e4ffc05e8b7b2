"""``provisioner review``: the periodic access review, read-only.

Thin: parse options, load the config, call ``provisioner.service.review``
and write the requested format. Works with a developer's key; changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import click

from provisioner.api.pacing import Pace
from provisioner.cli.options import config_option, endpoint_options, parallelism_option
from provisioner.config import load_configs
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ProvisionerError
from provisioner.escape import terminal
from provisioner.review import RENDERERS
from provisioner.service.review import review_org


def parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """``--since``: a date (``2026-01-01``, midnight UTC) or an ISO 8601 moment (UTC unless it says)."""
    if value is None:
        return None
    raw = value.strip()
    try:
        if len(raw) == 10:
            return datetime.combine(datetime.strptime(raw, "%Y-%m-%d").date(), time(0), tzinfo=UTC)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter(
            f"'{terminal(raw[:40])}' is not a date; write YYYY-MM-DD (e.g. 2026-01-01) or an ISO 8601 moment"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@click.command("review")
@config_option
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="The audit log of earlier applies: when and from which commit each grant was made.",
)
@click.option(
    "--since",
    default=None,
    callback=parse_since,
    metavar="DATE",
    help="List the changes from this date on (YYYY-MM-DD, UTC). Default: 90 days ago.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(RENDERERS)),
    default="html",
    show_default=True,
    help="html for people, csv for spreadsheets, json for programs, markdown for an attestation checklist.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="FILE",
    help="Write the report to FILE instead of stdout.",
)
@endpoint_options
@parallelism_option
def review(
    configs: tuple[str, ...],
    audit_log: str | None,
    since: datetime | None,
    fmt: str,
    output: str | None,
    api_url: str | None,
    sandbox: str | None,
    pace: Pace,
    parallelism: int,
) -> None:
    """Write an access review of the organization as it is now: admins, production
    access with when and why it was granted, the access matrix, expiring grants
    and the changes of the period. Read-only; works with a developer's key.
    """
    if len(configs) != 1:
        raise click.UsageError("review covers one organization: give one -c")
    (config,) = load_configs(list(configs), allowances=OperatorAllowances.from_environ(api_url=api_url))
    result = review_org(
        config,
        audit_log=audit_log,
        since=since,
        api_url=api_url,
        sandbox=sandbox,
        parallelism=parallelism,
        pace=pace,
    )
    report = result.review
    if result.audit_log_missing:
        click.echo(
            f"Warning: the audit log {terminal(str(audit_log))} does not exist; the review goes on "
            "without history, and says so.",
            err=True,
        )
    if result.audit_log_without_organization:
        click.echo(
            f"Note: {terminal(str(audit_log))} records no apply of {terminal(result.organization)}; "
            "every grant reads 'before the audit log'.",
            err=True,
        )
    text = RENDERERS[fmt](report)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as error:
        raise ProvisionerError(f"cannot write the review to {terminal(output)}: {error.strerror}") from None
    click.echo(
        f"Wrote the {fmt} review of {terminal(report.summary.organization)} to {terminal(output)}.", err=True
    )
