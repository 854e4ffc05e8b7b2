"""``provisioner export``: write a config for an existing organization, to adopt it."""

from __future__ import annotations

import click

from provisioner.api.pacing import Pace
from provisioner.cli.options import endpoint_options, parallelism_option
from provisioner.escape import terminal
from provisioner.model import DEFAULT_NAME_FORMAT, DEFAULT_TOKEN_ENV, REGIONS
from provisioner.service.export import ExportOptions, export_org


@click.command("export")
@endpoint_options
@click.option(
    "--region",
    type=click.Choice(REGIONS),
    default=None,
    help="The organization's region (default: the one the API reports).",
)
@click.option(
    "--token-env",
    default=DEFAULT_TOKEN_ENV,
    show_default=True,
    help="The environment variable that holds the API key.",
)
@click.option(
    "--environments",
    default="development,staging,production",
    show_default=True,
    help="Comma-separated environments whose workspaces fold into one entry.",
)
@click.option("--workspace-name-format", default=DEFAULT_NAME_FORMAT, show_default=True)
@click.option(
    "--workspace-token-env",
    default=None,
    help="Export only Recall.ai's v2 settings (integrations-only), each instance read with its own key "
    "from this variable; {WORKSPACE} is the instance's name, e.g. RECALL_API_KEY_{WORKSPACE}.",
)
@click.option(
    "--workspace",
    "instances",
    multiple=True,
    help="A workspace instance to export with --workspace-token-env (repeat for each).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file instead of stdout.",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    default=None,
    help="The audit log of earlier applies: restores what only the config said "
    "(service_account, rotate_every).",
)
@parallelism_option
def export(
    api_url: str | None,
    sandbox: str | None,
    pace: Pace,
    region: str | None,
    token_env: str,
    environments: str,
    workspace_name_format: str,
    workspace_token_env: str | None,
    instances: tuple[str, ...],
    output: str | None,
    parallelism: int,
    audit_log: str | None,
) -> None:
    """Export the current organization as a version-1 config.

    A plan against the exported config shows no changes. With --audit-log,
    service accounts and each key's rotate_every are kept too.
    """
    if not api_url and not sandbox and not region:
        raise click.UsageError("give --region, --api-url or --sandbox to say which organization to export")
    options = ExportOptions(
        region=region,
        api_url=api_url,
        sandbox=sandbox,
        token_env=token_env,
        environments=tuple(e.strip() for e in environments.split(",") if e.strip()),
        workspace_name_format=workspace_name_format,
        parallelism=parallelism,
        audit_log=audit_log,
        instances=instances,
        workspace_token_env=workspace_token_env,
        pace=pace,
    )
    exported = export_org(options, output=output)
    if exported.unrecorded:
        click.echo(
            f"Note: {terminal(audit_log or '')} records no apply of this organization; "
            "service_account and rotate_every are not in the export: add them by hand.",
            err=True,
        )
    if output:
        click.echo(f"Wrote {terminal(output)}.", err=True)
    else:
        click.echo(exported.text, nl=False)
    if exported.variables:
        n = len(exported.variables)
        click.echo(
            f"The config names {n} secret variable{'s' if n != 1 else ''} (the API never returns "
            "secrets); set each to its secret's value before `provisioner plan`:\n"
            + "\n".join(f"  {terminal(v)}" for v in exported.variables),
            err=True,
        )
