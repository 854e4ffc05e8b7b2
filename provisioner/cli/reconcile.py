"""``provisioner plan`` and ``provisioner apply``.

Thin: parse options, load every config first (so a bad config changes nothing
anywhere), then for each organization open its endpoint and call
``provisioner.reconcile`` in its phases (read, diff, guard; then apply),
rendering what comes back. Several ``-c`` options mean several organizations,
one after another, each with its own endpoint and key; the exit code combines
them (any error 1, else any change 2 under --detailed-exitcode, else 0).
"""

from __future__ import annotations

import math
import os
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

import click

from provisioner import __version__, reconcile
from provisioner.api.client import ApiClient
from provisioner.apply.executor import apply_plan
from provisioner.apply.report import render_report
from provisioner.audit import AuditRecord, append_record, git_commit
from provisioner.cli.options import DurationType, config_option, endpoint_options, parallelism_option
from provisioner.cli.output import Progress, echo_error, use_color
from provisioner.config import load_configs
from provisioner.endpoint import Endpoint, open_endpoint
from provisioner.escape import terminal
from provisioner.errors import ApplyError, ProvisionerError, RefusedError
from provisioner.model import Config, State
from provisioner.plan.model import Plan
from provisioner.plan.planfile import load_plan, save_plan
from provisioner.plan.render_json import render_json
from provisioner.plan.render_markdown import render_markdown
from provisioner.plan.render_text import render_text
from provisioner.plan.replay import replay


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def environments_of(config: Config) -> dict[str, str | None]:
    """Workspace instance name -> environment, so renderers can put production first."""
    return {name: ws.environment for name, ws in config.desired.workspaces.items()}


def render(plan: Plan, config: Config, fmt: str, current: State) -> str:
    """One plan in the requested format."""
    if fmt == "json":
        return render_json(plan, tool_version=__version__)
    if fmt == "markdown":
        return render_markdown(plan, environments=environments_of(config), current=current)
    return render_text(plan, color=use_color())


# Hidden knobs for the HTTP client's limits (documented in docs/guarantees.md).
# They exist so that tests and soak runs can make retries fast; they can only
# tune limits, never turn a safety off (TLS, redirects, the key's origin).
CLIENT_LIMIT_ENV: dict[str, tuple[str, type]] = {
    "PROVISIONER_MAX_RETRY_AFTER": ("max_retry_after", float),
    "PROVISIONER_MAX_RETRIES": ("max_retries", int),
    "PROVISIONER_BACKOFF_MAX": ("backoff_max", float),
    "PROVISIONER_READ_TIMEOUT": ("read_timeout", float),
    "PROVISIONER_DEADLINE": ("deadline", float),
}


# The largest value each kind of limit takes: a day of seconds, a hundred retries.
# Beyond them a socket timeout overflows; nobody means them anyway.
_LIMIT_MAXIMUM: dict[type, float] = {float: 86_400.0, int: 100}


def client_limits_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ApiClient keyword arguments from the ``PROVISIONER_*`` limit variables that are set.

    Each must be a plain, finite, non-negative number no larger than its
    maximum (``nan``, ``inf`` and ``1e400`` are refused with a message, not a
    traceback later in the HTTP client).
    """
    env = os.environ if environ is None else environ
    limits: dict[str, Any] = {}
    for name, (kwarg, kind) in CLIENT_LIMIT_ENV.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw) if raw.isascii() and len(raw) < 40 else -1
        except ValueError:
            value = -1
        maximum = _LIMIT_MAXIMUM[kind]
        if not (math.isfinite(value) and 0 <= value <= maximum):
            shown = terminal(raw[:40]) + ("…" if len(raw) > 40 else "")
            raise ProvisionerError(
                f"the environment variable {name}={shown!r} is not a "
                f"{'whole number' if kind is int else 'number'} from 0 to {maximum:g}; fix or unset it"
            )
        limits[kwarg] = value
    return limits


@contextmanager
def connect(
    config: Config, *, api_url: str | None, sandbox: str | None
) -> Iterator[tuple[Endpoint, ApiClient]]:
    """The endpoint and a client for one organization, closed on exit."""
    limits = client_limits_from_env()
    with open_endpoint(config.organization, api_url=api_url, sandbox=sandbox) as endpoint:
        with ApiClient(
            endpoint.base_url, endpoint.token, user_agent=f"provisioner/{__version__}", **limits
        ) as client:
            yield endpoint, client


def heading(config: Config, fmt: str) -> str:
    """A section heading for one organization when a run covers several."""
    where = ", ".join(config.sources)
    if fmt == "markdown":
        return f"## Organization from `{where}`\n"
    return f"=== Organization from {where} ==="


@click.command("plan")
@config_option
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
    show_default=True, help="text for people, json for programs, markdown for pull-request comments.",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, metavar="PLANFILE",
              help="Save the plan for `apply --plan PLANFILE` (one organization only).")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 for no changes, 2 for changes, 1 for errors.")
@click.option("--force", is_flag=True,
              help="Let the plan exceed policy.max_removals. Overrides no other guard.")
@endpoint_options
@parallelism_option
def plan(
    configs: tuple[str, ...],
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
    force: bool,
    api_url: str | None,
    sandbox: str | None,
    parallelism: int,
) -> None:
    """Show what apply would change: who gains and who loses what, and where.

    Read-only; works with a developer's key.
    """
    loaded = load_configs(list(configs))
    if out and len(loaded) > 1:
        raise click.UsageError("--out saves one organization's plan; give a single -c with --out")
    many = len(loaded) > 1
    failed = changed = False
    json_docs: list[str] = []
    for config in loaded:
        try:
            with connect(config, api_url=api_url, sandbox=sandbox) as (endpoint, client):
                planned = reconcile.read_and_diff(config, client, now=utcnow(), parallelism=parallelism)
                text = render(planned.plan, config, fmt, planned.current)
                if fmt == "json" and many:
                    json_docs.append(text.rstrip("\n"))
                else:
                    if many:
                        click.echo(heading(config, fmt))
                    click.echo(text, nl=not text.endswith("\n"))
                # Guards after rendering: a reviewer sees the plan that was refused.
                reconcile.guard(planned, force=force, for_apply=False)
                changed = changed or not planned.plan.empty
                if out:
                    save_plan(planned.plan, out, signing_key=endpoint.signing_key,
                              tool_version=__version__, created_at=utcnow())
                    click.echo(f"Saved the plan to {out}; apply it with `provisioner apply "
                               f"-c {configs[0]} --plan {out}`.", err=True)
        except ProvisionerError as error:
            failed = True
            echo_error(error)
    if json_docs:
        click.echo("[\n" + ",\n".join(json_docs) + "\n]")
    if failed:
        sys.exit(1)
    if detailed_exitcode and changed:
        sys.exit(2)


def confirm(auto_approve: bool) -> None:
    """Ask for `yes` on a terminal; refuse without one unless --auto-approve."""
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise RefusedError(
            "no terminal to confirm on, and --auto-approve was not given: nothing was changed. "
            "In a pipeline, run `apply --auto-approve`, or apply a reviewed plan with `--plan PLANFILE`"
        )
    answer = click.prompt(
        "Do you want to apply these changes? Only 'yes' will be accepted", default="", show_default=False
    )
    if answer.strip() != "yes":
        raise RefusedError("apply cancelled: nothing was changed")


@dataclass(frozen=True)
class ApplyOptions:
    """The options of one `apply` run, shared by every organization it covers."""

    auto_approve: bool
    force: bool
    parallelism: int
    plan_file: str | None
    max_age: timedelta
    audit_log: str | None
    api_url: str | None
    sandbox: str | None


@click.command("apply")
@config_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for pipelines).")
@click.option("--force", is_flag=True,
              help="Let the plan exceed policy.max_removals. Overrides no other guard.")
@parallelism_option
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="PLANFILE", help="Apply exactly this saved plan; refused if stale.")
@click.option("--max-age", type=DurationType(), default="24h", show_default=True,
              help="With --plan: refuse a plan older than this (e.g. 30m, 24h, 7d).")
@click.option("--audit-log", type=str, default=None, metavar="FILE",
              help="Append one JSON record per organization and run to FILE ('-' for stdout).")
@endpoint_options
def apply(
    configs: tuple[str, ...],
    auto_approve: bool,
    force: bool,
    parallelism: int,
    plan_file: str | None,
    max_age: timedelta,
    audit_log: str | None,
    api_url: str | None,
    sandbox: str | None,
) -> None:
    """Make the organization match the config.

    Computes a fresh plan (or takes --plan PLANFILE), shows it, asks for `yes`
    on a terminal, and applies it in a safe order. Needs an admin's key.
    """
    options = ApplyOptions(auto_approve, force, parallelism, plan_file, max_age, audit_log,
                           api_url, sandbox)
    loaded = load_configs(list(configs))
    if plan_file and len(loaded) > 1:
        raise click.UsageError("--plan applies one organization's plan; give a single -c with --plan")
    failed = False
    for config in loaded:
        if len(loaded) > 1:
            click.echo(heading(config, "text"))
        try:
            _apply_one(config, options)
        except ProvisionerError as error:
            failed = True
            echo_error(error)
    if failed:
        sys.exit(1)


def _apply_one(config: Config, options: ApplyOptions) -> None:
    with connect(config, api_url=options.api_url, sandbox=options.sandbox) as (endpoint, client):
        saved = None
        if options.plan_file:
            saved = load_plan(options.plan_file, signing_key=endpoint.signing_key, tool_version=__version__,
                              now=utcnow(), max_age=options.max_age)
        planned = reconcile.read_and_diff(config, client, now=utcnow(), parallelism=options.parallelism)
        if saved is not None:
            reconcile.check_not_stale(saved, planned)
            planned = replace(planned, plan=saved)
        click.echo(render_text(planned.plan, color=use_color()), nl=False)
        reconcile.guard(planned, force=options.force, for_apply=True)
        if planned.plan.empty:
            return
        if saved is None:
            confirm(options.auto_approve)
        progress = Progress(total=len(planned.plan.changes))
        report = apply_plan(
            planned.plan, client, current=planned.current, parallelism=options.parallelism, progress=progress,
            run_id=uuid.uuid4().hex,
        )
        summary = render_report(report)
        click.echo(summary, nl=not summary.endswith("\n"))
        if options.audit_log:
            applied = [r.change for r in report.applied]
            record = AuditRecord(
                time=utcnow(),
                tool_version=__version__,
                organization=planned.identity.organization.name,
                config_digest=config.digest,
                state_fingerprint=planned.plan.state_fingerprint,
                report=report,
                left_behind=replay(planned.current, sorted(applied, key=lambda c: c.phase)),
                commit=git_commit(),
            )
            append_record(record, options.audit_log, stdout=click.get_text_stream("stdout"))
        if not report.ok:
            raise ApplyError(
                "the apply did not finish: see the failed and skipped changes above. Nothing that "
                "was applied is lost; fix the cause and run `provisioner plan` to see what remains"
            )
