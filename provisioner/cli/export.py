"""``provisioner export``: write a config for an existing organization, to adopt it."""

from __future__ import annotations

from pathlib import Path

import click

from provisioner.api.reader import read_state_and_identity
from provisioner.cli.options import endpoint_options, parallelism_option
from provisioner.cli.reconcile import connect
from provisioner.errors import ProvisionerError
from provisioner.export import export_config
from provisioner.model import DEFAULT_TOKEN_ENV, REGIONS, Config, OrganizationSettings, Policy, State


class ExportError(ProvisionerError):
    """The export could not be written."""


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
@click.option("--workspace-name-format", default="{workspace}-{environment}", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file instead of stdout.",
)
@parallelism_option
def export(
    api_url: str | None,
    sandbox: str | None,
    region: str | None,
    token_env: str,
    environments: str,
    workspace_name_format: str,
    output: str | None,
    parallelism: int,
) -> None:
    """Export the current organization as a version-1 config.

    A plan against the exported config shows no changes.
    """
    if not api_url and not sandbox and not region:
        raise click.UsageError("give --region, --api-url or --sandbox to say which organization to export")
    settings = OrganizationSettings(
        region=region or ("us-east-1" if not api_url else None), api_url=api_url, token_env=token_env
    )
    envs = [e.strip() for e in environments.split(",") if e.strip()]
    config = Config(organization=settings, policy=Policy(), desired=State())
    with connect(config, api_url=None if sandbox else api_url, sandbox=sandbox) as (_endpoint, client):
        current, identity = read_state_and_identity(client, parallelism=parallelism)
    text = export_config(
        identity,
        current,
        environments=envs,
        workspace_name_format=workspace_name_format,
        region=None if api_url else (region or identity.organization.region),
        api_url=api_url,
        token_env=token_env,
    )
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise ExportError(f"cannot write {output}: {error.strerror}") from None
        click.echo(f"Wrote {output}.", err=True)
    else:
        click.echo(text, nl=False)
