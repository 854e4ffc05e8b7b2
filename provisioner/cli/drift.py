"""``provisioner drift``: a read-only check for a schedule. Exit 0 clean, 2 drifted, 1 error."""

from __future__ import annotations

import click

from provisioner.api.pacing import Pace
from provisioner.cli.options import config_option, endpoint_options, parallelism_option
from provisioner.cli.output import echo_text, show_outcome
from provisioner.escape import terminal
from provisioner.model import Config
from provisioner.render import heading, json_array
from provisioner.render.drift import DRIFT_RENDERERS, render_drift
from provisioner.service.drift import DriftOptions, DriftResult, drift_orgs
from provisioner.service.runner import Outcome, load_organizations


@click.command("drift")
@config_option
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="The audit log of earlier applies: separates out-of-band changes from config not applied yet.",
)
@click.option("--format", "fmt", type=click.Choice(list(DRIFT_RENDERERS)), default="text", show_default=True)
@endpoint_options
@parallelism_option
def drift(
    configs: tuple[str, ...],
    audit_log: str | None,
    fmt: str,
    api_url: str | None,
    sandbox: str | None,
    pace: Pace,
    parallelism: int,
) -> int:
    """Check, read-only, whether the organization still matches the config.

    Exit 0: it matches. Exit 2: it drifted. Exit 1: an error.
    """
    loaded = load_organizations(configs, api_url=api_url)
    many = len(loaded) > 1
    json_docs: list[str] = []

    def show(config: Config, result: DriftResult) -> None:
        if result.unrecorded and audit_log is not None:
            click.echo(
                f"Note: {terminal(audit_log)} records no apply of {terminal(result.report.organization)} "
                "yet; every difference counts as drift.",
                err=True,
            )
        text = render_drift(result.report, fmt)
        if fmt == "json" and many:
            json_docs.append(text)  # one array, as `plan` writes it
            return
        if many:
            click.echo(heading(config, fmt))
        echo_text(text)

    def report(outcome: Outcome[DriftResult]) -> None:
        show_outcome(outcome, show)

    options = DriftOptions(
        audit_log=audit_log, api_url=api_url, sandbox=sandbox, parallelism=parallelism, pace=pace
    )
    run = drift_orgs(loaded, options, report=report)
    if json_docs:
        echo_text(json_array(json_docs))
    return run.exit_code()
