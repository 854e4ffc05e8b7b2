"""``provisioner review``: the periodic access review, read-only.

Thin: load the config, read the organization as ``plan`` does (through
``read_organization``, the one adapter to the reading layer), read the audit
log, then hand everything to ``provisioner.review.build.build_review`` and
write the requested format. Works with a developer's key; changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

import click

from provisioner.api.reader import read_state_and_identity
from provisioner.audit import config_commit
from provisioner.cli.options import config_option, endpoint_options, parallelism_option
from provisioner.config import load_configs
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ProvisionerError
from provisioner.escape import terminal
from provisioner.model import Config, Identity, State
from provisioner.review import RENDERERS
from provisioner.review.audit_history import read_audit_log
from provisioner.review.build import DEFAULT_PERIOD, build_review
from provisioner.service.connection import connect


@dataclass(frozen=True)
class OrganizationRead:
    """What one read of the organization gives a review."""

    current: State
    identity: Identity
    endpoint: str


def read_organization(
    config: Config, *, api_url: str | None, sandbox: str | None, parallelism: int
) -> OrganizationRead:
    """Read the organization's current state and the key's identity. Makes no change.

    The one place ``review`` touches the reading layer: re-point it here when
    that layer moves.
    """
    with connect(config.organization, api_url=api_url, sandbox=sandbox) as (_endpoint, client):
        current, identity = read_state_and_identity(client, parallelism=parallelism)
        return OrganizationRead(current, identity, client.endpoint)


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
    parallelism: int,
) -> None:
    """Write an access review of the organization as it is now: admins, production
    access with when and why it was granted, the access matrix, expiring grants
    and the changes of the period. Read-only; works with a developer's key.
    """
    if len(configs) != 1:
        raise click.UsageError("review covers one organization: give one -c")
    (config,) = load_configs(list(configs), allowances=OperatorAllowances.from_environ(api_url=api_url))
    records = read_audit_log(audit_log) if audit_log else None
    read = read_organization(config, api_url=api_url, sandbox=sandbox, parallelism=parallelism)
    now = datetime.now(UTC)
    report = build_review(
        config,
        read.current,
        read.identity,
        records,
        now,
        since if since is not None else now - DEFAULT_PERIOD,
        endpoint=read.endpoint,
        config_commit=config_commit(config),
        audit_log=audit_log,
    )
    name = read.identity.organization.name
    if records is not None and not any(r.organization == name for r in records):
        click.echo(
            f"Note: {terminal(str(audit_log))} records no apply of {terminal(name)}; "
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
