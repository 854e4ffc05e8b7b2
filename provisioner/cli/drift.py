"""``provisioner drift``: a read-only check for a schedule. Exit 0 clean, 2 drifted, 1 error."""

from __future__ import annotations

import json
import sys

import click

from provisioner import __version__, reconcile
from provisioner.audit import last_applied_state
from provisioner.cli.options import config_option, endpoint_options, parallelism_option
from provisioner.cli.output import echo_error
from provisioner.cli.reconcile import connect, heading, utcnow
from provisioner.config import load_configs
from provisioner.drift import DriftReport, detect_drift
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ProvisionerError
from provisioner.plan.model import Action, Change, Plan


def describe_out_of_band(change: Change) -> str:
    """Say what happened on the server, from a change that would undo it."""
    if change.action is Action.DELETE:
        what = "added"
    elif change.action is Action.CREATE:
        what = "removed"
    else:
        before = getattr(change.before, "role", "?")
        after = getattr(change.after, "role", "?")
        return f"  ~ {change.type.value} {change.key}: role changed on the server ({after} -> {before})"
    return f"  ! {change.type.value} {change.key} was {what} on the server"


def describe_unapplied(change: Change) -> str:
    sign = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}[change.action]
    return f"  {sign} {change.action.value} {change.type.value} {change.key}"


def render_drift_text(report: DriftReport, organization: str) -> str:
    if not report.drifted:
        return f"No drift: {organization} matches the configuration.\n"
    lines: list[str] = []
    oob = [c for c in report.out_of_band.changes if not c.cascade]
    if report.unapplied is None:
        lines.append(f"Drift in {organization} ({len(oob)} differences; no audit log, so every "
                     "difference counts as drift):")
        lines += [describe_out_of_band(c) for c in oob]
    else:
        lines.append(f"Out-of-band changes in {organization} since the last apply ({len(oob)}):")
        lines += [describe_out_of_band(c) for c in oob] or ["  (none)"]
        pending = [c for c in report.unapplied.changes if not c.cascade]
        lines.append(f"Config not applied yet ({len(pending)}):")
        lines += [describe_unapplied(c) for c in pending] or ["  (none)"]
    for warning in report.out_of_band.warnings:
        lines.append(f"Warning: {warning}")
    lines.append("Run `provisioner plan` to see what apply would do.")
    return "\n".join(lines) + "\n"


def _changes_json(plan: Plan | None) -> list[dict] | None:
    if plan is None:
        return None
    return [{"action": c.action.value, "type": c.type.value, "key": c.key, "cascade": c.cascade}
            for c in plan.changes]


def render_drift_json(report: DriftReport, organization: str) -> str:
    return json.dumps(
        {
            "tool_version": __version__,
            "organization": organization,
            "drifted": report.drifted,
            "out_of_band": _changes_json(report.out_of_band),
            "unapplied": _changes_json(report.unapplied),
            "warnings": list(report.out_of_band.warnings),
        },
        sort_keys=True,
        indent=2,
    ) + "\n"


@click.command("drift")
@config_option
@click.option("--audit-log", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="The audit log of earlier applies: separates out-of-band changes from "
                   "config not applied yet.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True)
@endpoint_options
@parallelism_option
def drift(
    configs: tuple[str, ...],
    audit_log: str | None,
    fmt: str,
    api_url: str | None,
    sandbox: str | None,
    parallelism: int,
) -> None:
    """Check, read-only, whether the organization still matches the config.

    Exit 0: it matches. Exit 2: it drifted. Exit 1: an error.
    """
    loaded = load_configs(list(configs), allowances=OperatorAllowances.from_environ(api_url=api_url))
    failed = drifted = False
    for config in loaded:
        try:
            with connect(config, api_url=api_url, sandbox=sandbox) as (_endpoint, client):
                planned = reconcile.read_and_diff(config, client, now=utcnow(), parallelism=parallelism)
                name = planned.identity.organization.name
                last = last_applied_state(audit_log, name) if audit_log else None
                report = detect_drift(planned.current, config, last_applied=last, now=utcnow(),
                                      organization=name)
            drifted = drifted or report.drifted
            if len(loaded) > 1 and fmt != "json":
                click.echo(heading(config, fmt))
            if fmt == "json":
                click.echo(render_drift_json(report, name), nl=False)
            elif fmt == "markdown":
                click.echo("```\n" + render_drift_text(report, name) + "```")
            else:
                click.echo(render_drift_text(report, name), nl=False)
        except ProvisionerError as error:
            failed = True
            echo_error(error)
    if failed:
        sys.exit(1)
    if drifted:
        sys.exit(2)
