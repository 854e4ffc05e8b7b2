"""``provisioner drift``: a read-only check for a schedule. Exit 0 clean, 2 drifted, 1 error."""

from __future__ import annotations

import sys

import click

from provisioner import reconcile
from provisioner.audit import last_applied_state
from provisioner.cli.options import config_option, endpoint_options, parallelism_option
from provisioner.cli.output import echo_error
from provisioner.cli.reconcile import connect, heading, utcnow
from provisioner.config import load_configs
from provisioner.drift import detect_drift
from provisioner.drift_render import render_drift
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ProvisionerError
from provisioner.escape import terminal


@click.command("drift")
@config_option
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="The audit log of earlier applies: separates out-of-band changes from config not applied yet.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@endpoint_options
@parallelism_option
def drift(
    configs: tuple[str, ...],
    audit_log: str | None,
    fmt: str,
    api_url: str | None,
    sandbox: str | None,
    parallelism: int,
) -> None:
    """Check, read-only, whether the organization still matches the config.

    Exit 0: it matches. Exit 2: it drifted. Exit 1: an error.
    """
    loaded = load_configs(list(configs), allowances=OperatorAllowances.from_environ(api_url=api_url))
    many = len(loaded) > 1
    failed = drifted = False
    json_docs: list[str] = []
    for config in loaded:
        try:
            with connect(config, api_url=api_url, sandbox=sandbox) as (_endpoint, client):
                now = utcnow()
                planned = reconcile.read_and_diff(config, client, now=now, parallelism=parallelism)
                name = planned.identity.organization.name
                last = last_applied_state(audit_log, name) if audit_log else None
                if audit_log and last is None:
                    click.echo(
                        f"Note: {terminal(audit_log)} records no apply of {terminal(name)} yet; "
                        "every difference counts as drift.",
                        err=True,
                    )
                # The same ``now`` as the plan's, so both agree on which grants ran out.
                report = detect_drift(planned.current, config, last_applied=last, now=now, organization=name)
            drifted = drifted or report.drifted
            text = render_drift(report, fmt)
            if fmt == "json" and many:
                json_docs.append(text.rstrip("\n"))  # one array, as `plan` writes it
                continue
            if many:
                click.echo(heading(config, fmt))
            click.echo(text, nl=False)
        except ProvisionerError as error:
            failed = True
            echo_error(error)
    if json_docs:
        click.echo("[\n" + ",\n".join(json_docs) + "\n]")
    if failed:
        sys.exit(1)
    if drifted:
        sys.exit(2)
