"""`provisioner validate` (placeholder until its issue lands)."""

import click


@click.command("validate")
def validate() -> None:
    """Not implemented yet."""
    raise click.ClickException("'validate' is not implemented yet")
