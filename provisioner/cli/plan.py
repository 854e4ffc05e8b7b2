"""``provisioner plan``: parse options, call ``service.plan.plan_orgs``, render each plan.

Several ``-c`` options mean several organizations, one after another, each
with its own endpoint and key; in JSON they form one array.
"""

from __future__ import annotations

import shlex

import click

from provisioner.api.pacing import Pace
from provisioner.api.snapshot import default_cache_dir
from provisioner.cli.options import (
    base_option,
    cache_options,
    config_option,
    endpoint_options,
    held_to_bases,
    parallelism_option,
)
from provisioner.cli.output import echo_text, show_outcome, use_color
from provisioner.escape import terminal
from provisioner.model import Config
from provisioner.plan.guards import secrets_made
from provisioner.render import heading, json_array
from provisioner.render.plan import PLAN_RENDERERS, PlanView, render_plan
from provisioner.service.plan import PlannedOrganization, PlanOptions, PlanResult, config_cache, plan_orgs
from provisioner.service.runner import Outcome, load_organizations


def plan_view(planned: PlannedOrganization) -> PlanView:
    """What a renderer needs of one organization's plan (``plan`` and ``apply`` show the same)."""
    return PlanView(
        planned.plan,
        planned.target,
        environments=planned.environments,
        current=planned.current,
        color=use_color(),
    )


SECRETS_DIR_HINT = "secrets"  # the README's quickstart writes server-made secrets there too


def apply_hint(
    configs: tuple[str, ...],
    out: str,
    *,
    api_url: str | None,
    sandbox: str | None,
    makes_secrets: bool = False,
) -> str:
    """The command that applies a plan saved with ``--out``, repeating the endpoint options.

    Copied as printed, it must reach the same endpoint as the plan did, and
    pass apply's guards: a plan that makes a secret the server shows only once
    needs a sink, so the hint then names one (``--secrets-dir secrets``). Every
    word is shell-quoted because paths and URLs are the user's.
    """
    words = ["provisioner", "apply"]
    for config in configs:
        words += ["-c", config]
    words += ["--plan", out]
    if sandbox is not None:
        words += ["--sandbox", sandbox]
    if api_url is not None:
        words += ["--api-url", api_url]
    if makes_secrets:
        words += ["--secrets-dir", SECRETS_DIR_HINT]
    return shlex.join(words)


@click.command("plan")
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(PLAN_RENDERERS)),
    default="text",
    show_default=True,
    help="text for people, json for programs, markdown for pull-request comments.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PLANFILE",
    help="Save the plan for `apply --plan PLANFILE` (one organization only).",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 for no changes, 2 for changes, 1 for errors.")
@click.option(
    "--force",
    is_flag=True,
    help="Let the plan exceed policy.max_removals and break a recently used production API key. "
    "Overrides no other guard.",
)
@endpoint_options
@parallelism_option
@cache_options
@base_option
def plan(
    configs: tuple[str, ...],
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
    force: bool,
    api_url: str | None,
    sandbox: str | None,
    pace: Pace,
    parallelism: int,
    cache_dir: str | None,
    no_cache: bool,
    refresh: bool,
    bases: tuple[str, ...],
) -> int:
    """Show what apply would change: who gains and who loses what, and where.

    Read-only; works with a developer's key.
    """
    cache_folder = None if no_cache else (cache_dir or str(default_cache_dir()))
    loaded = held_to_bases(
        load_organizations(configs, api_url=api_url, cache=config_cache(cache_folder, refresh=refresh)),
        bases,
        api_url=api_url,
    )
    if out and len(loaded) > 1:
        raise click.UsageError("--out saves one organization's plan; give a single -c with --out")
    many = len(loaded) > 1
    json_docs: list[str] = []

    def show(config: Config, result: PlanResult) -> None:
        text = render_plan(plan_view(result.planned), fmt)
        if fmt == "json" and many:
            json_docs.append(text)
            return
        if many:
            click.echo(heading(config, fmt))
        echo_text(text)
        if result.saved_digest is not None and out is not None:
            made = len(secrets_made(result.planned.plan))
            hint = apply_hint(configs, out, api_url=api_url, sandbox=sandbox, makes_secrets=bool(made))
            sink = (
                f" It makes {made} secret(s) the server shows only once: the command writes them to "
                f"0600 files under {SECRETS_DIR_HINT}/ (or give --secrets-command CMD instead)."
                if made
                else ""
            )
            click.echo(
                terminal(f"Saved the plan ({result.saved_digest}) to {out}; apply it with `{hint}`.{sink}"),
                err=True,
            )

    def report(outcome: Outcome[PlanResult]) -> None:
        show_outcome(outcome, show)

    options = PlanOptions(
        api_url=api_url,
        sandbox=sandbox,
        pace=pace,
        parallelism=parallelism,
        force=force,
        out=out,
        cache_dir=cache_folder,
        refresh=refresh,
    )
    run = plan_orgs(loaded, options, report=report)
    if json_docs:
        echo_text(json_array(json_docs))
    return run.exit_code(changes_exit=detailed_exitcode)
