"""``provisioner show PLANFILE``: render a saved plan offline, as ``terraform show`` does.

No config, no key, no network: the file holds the plan, the organization it is
for and the workspace environments. The digest is recomputed from the file's
changes (a file whose own digest field disagrees is refused), so the digest
shown is the one ``apply --plan`` will compare with a fresh plan.
"""

from __future__ import annotations

import click

from provisioner import __version__
from provisioner.cli.reconcile import render_pinned, utcnow
from provisioner.plan.planfile import load_plan


@click.command("show")
@click.argument("planfile", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="The same formats as `provisioner plan`.",
)
def show(planfile: str, fmt: str) -> None:
    """Show a plan saved with `plan --out PLANFILE`, with its digest. Offline."""
    saved = load_plan(planfile, tool_version=__version__, now=utcnow(), max_age=None)
    # No current state offline: the markdown access matrix leaves unchanged
    # access blank instead of marking it.
    text = render_pinned(saved.plan, saved.target, fmt, environments=saved.environments, current=None)
    click.echo(text, nl=not text.endswith("\n"))
