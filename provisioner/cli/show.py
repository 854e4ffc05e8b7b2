"""``provisioner show PLANFILE``: render a saved plan offline, as ``terraform show`` does.

No config, no key, no network: the file holds the plan, the organization it is
for and the workspace environments. The digest is recomputed from the file's
changes (a file whose own digest field disagrees is refused), so the digest
shown is the one ``apply --plan`` will compare with a fresh plan.
"""

from __future__ import annotations

import click

from provisioner.cli.output import echo_text, use_color
from provisioner.render.plan import PLAN_RENDERERS, PlanView, render_plan
from provisioner.service.plan import show_plan


@click.command("show")
@click.argument("planfile", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(PLAN_RENDERERS)),
    default="text",
    show_default=True,
    help="The same formats as `provisioner plan`.",
)
def show(planfile: str, fmt: str) -> None:
    """Show a plan saved with `plan --out PLANFILE`, with its digest. Offline."""
    saved = show_plan(planfile)
    # No current state offline: the markdown access matrix leaves unchanged
    # access blank instead of marking it.
    view = PlanView(
        saved.plan, saved.target, environments=saved.environments, current=None, color=use_color()
    )
    echo_text(render_plan(view, fmt))
