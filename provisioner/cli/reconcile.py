"""`provisioner plan` and `provisioner apply` (placeholders until their issue lands)."""

import click


@click.command("plan")
def plan() -> None:
    """Not implemented yet."""
    raise click.ClickException("'plan' is not implemented yet")


@click.command("apply")
def apply() -> None:
    """Not implemented yet."""
    raise click.ClickException("'apply' is not implemented yet")
