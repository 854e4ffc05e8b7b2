"""`provisioner sandbox` (placeholder until its issue lands)."""

import click


@click.command("sandbox")
def sandbox() -> None:
    """Not implemented yet."""
    raise click.ClickException("'sandbox' is not implemented yet")
