"""``provisioner apply``: parse options, call ``service.apply.apply_orgs``, show what happens.

The CLI's part of an apply is what a person sees and answers: each plan as it
is prepared, the ``yes`` prompt, the progress and the report. Everything else
(the order of the phases, the checks, the audit record, signals, exit codes)
is ``provisioner.service.apply``.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from datetime import timedelta

import click

from provisioner.api.pacing import Pace
from provisioner.apply.report import ChangeResult
from provisioner.cli.approval import approval_from_options, approval_options
from provisioner.cli.options import (
    DurationType,
    base_option,
    config_option,
    endpoint_options,
    held_to_bases,
    parallelism_option,
)
from provisioner.cli.output import Progress, echo_text, run_redactor, show_outcome
from provisioner.cli.plan import plan_view
from provisioner.endpoint import other_sandbox_databases
from provisioner.errors import RefusedError
from provisioner.escape import terminal, terminal_lines
from provisioner.model import Config
from provisioner.plan.digest import Expectation, parse_digest
from provisioner.plan.planfile import read_expectation
from provisioner.render import heading
from provisioner.render.apply_report import render_report
from provisioner.render.plan import render_plan
from provisioner.secrets.sink import sink_from_options
from provisioner.service.apply import (
    AppliedOrganization,
    ApplyOptions,
    PreparedOrganization,
    apply_orgs,
)
from provisioner.service.runner import Outcome, load_organizations

OVERRIDE_REASON_LIMIT = 500


def confirm() -> None:
    """Ask for `yes` on a terminal; refuse without one (``--auto-approve`` skips the question)."""
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


def check_new_sandbox(sandbox: str | None, new_sandbox: bool) -> None:
    """Never start a second sandbox organization by a typo without asking.

    ``--sandbox DBPATH`` creates DBPATH when it does not exist (the README's
    first command on a fresh machine). When another SQLite database sits in
    the same folder, the path is more likely a typo of it: ask on a terminal,
    and refuse without one unless ``--new-sandbox`` says a new one is meant.
    """
    if sandbox is None or new_sandbox:
        return
    others = other_sandbox_databases(sandbox)
    if not others:
        return
    existing = others[0]
    question = (
        f"--sandbox {terminal(sandbox)} does not exist, but {terminal(str(existing))} in the same folder "
        "is a sandbox database. Create a new, empty sandbox organization in "
        f"{terminal(sandbox)}?"
    )
    if sys.stdin.isatty():
        if click.confirm(question, default=False, err=True):
            return
        raise RefusedError(f"nothing was changed; did you mean --sandbox {shlex.quote(str(existing))}?")
    raise RefusedError(
        f"--sandbox {sandbox} does not exist, but {existing} in the same folder is a sandbox database: "
        "a mistyped path would create a second, empty organization, so nothing was changed. "
        f"Did you mean --sandbox {shlex.quote(str(existing))}? To create a new sandbox organization in "
        f"{sandbox} anyway, add --new-sandbox"
    )


class TerminalEvents:
    """``ApplyEvents`` for a person at a terminal or a CI log: plans and reports on stdout."""

    def __init__(self, sandbox: str | None):
        self.sandbox = sandbox
        self._progress: Progress | None = None

    def prepared(self, outcome: Outcome[PreparedOrganization], many: bool) -> None:
        if many:
            click.echo(heading(outcome.config, "text"))
        show_outcome(outcome, self._show_plan)

    def _show_plan(self, _config: Config, prepared: PreparedOrganization) -> None:
        if prepared.created_sandbox:
            click.echo(f"Created a new sandbox organization in {terminal(str(self.sandbox))}.", err=True)
        echo_text(render_plan(plan_view(prepared.planned), "text"))
        if prepared.held_back:
            n = prepared.held_back
            click.echo(
                f"--rotate-only: {n} other change(s) of the plan not applied; they need a reviewed "
                "apply (run `provisioner plan` to see them).",
                err=True,
            )
        if prepared.overridden:
            click.echo(
                terminal_lines(
                    "Warning: the fresh plan differs from the reviewed plan, and --override-expect "
                    f"applies it anyway (reason: {prepared.override_reason}).\n{prepared.difference}"
                ),
                err=True,
            )

    def confirm(self) -> None:
        confirm()

    def progress(self, prepared: PreparedOrganization) -> Callable[[ChangeResult], None]:
        self._progress = Progress(total=len(prepared.planned.plan.changes))
        return self._progress

    def applied(self, applied: AppliedOrganization, many: bool) -> None:
        if self._progress is not None:
            self._progress.close()  # the bar's line ends before the report starts
            self._progress = None
        if many:
            click.echo(heading(applied.prepared.config, "text"))
        echo_text(render_report(applied.report))


def expectation_from_options(expect: str | None, expect_file: str | None) -> Expectation | None:
    """The reviewed plan's digest from ``--expect`` or ``--expect-file``, if given."""
    if expect is not None and expect_file is not None:
        raise click.UsageError("give the reviewed digest once: --expect or --expect-file, not both")
    if expect is not None:
        return Expectation(parse_digest(expect), "--expect")
    if expect_file is not None:
        return read_expectation(expect_file)
    return None


def checked_override_reason(reason: str | None) -> str | None:
    """``--override-expect REASON``: a short, printable reason, stored in the audit record."""
    if reason is None:
        return None
    stripped = reason.strip()
    if not stripped or len(stripped) > OVERRIDE_REASON_LIMIT or not stripped.isprintable():
        raise click.UsageError(
            f"--override-expect needs a reason of 1 to {OVERRIDE_REASON_LIMIT} printable characters "
            "on one line (for example an incident id); it goes into the audit record"
        )
    return stripped


@click.command("apply")
@config_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for pipelines).")
@click.option(
    "--force",
    is_flag=True,
    help="Let the plan exceed policy.max_removals and break a recently used production API key. "
    "Overrides no other guard.",
)
@parallelism_option
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="PLANFILE",
    help="Apply the saved plan: refused unless a fresh plan has the same digest and state.",
)
@click.option(
    "--max-age",
    type=DurationType(),
    default="24h",
    show_default=True,
    help="With --plan: refuse a plan older than this (e.g. 30m, 24h, 7d).",
)
@click.option(
    "--expect",
    default=None,
    metavar="DIGEST",
    help="Apply only if the fresh plan's digest is DIGEST (the reviewed plan's `Plan digest:`).",
)
@click.option(
    "--expect-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Like --expect, reading the digest from FILE: the digest, the reviewed plan comment "
    "(its last `Plan digest:` line), or the reviewed `plan --format json` output.",
)
@click.option(
    "--override-expect",
    "override_reason",
    default=None,
    metavar="REASON",
    help="Emergency only: apply even if the fresh plan differs from the expected one. "
    "REASON is recorded in the audit record.",
)
@click.option(
    "--audit-log",
    type=str,
    default=None,
    metavar="FILE",
    help="Append one JSON record per organization and run to FILE ('-' for stdout).",
)
@click.option(
    "--secrets-dir",
    default=None,
    metavar="DIR",
    help="Write each secret the server makes (a new webhook's signing secret) to "
    "DIR/<organization>/<workspace>/<name>, mode 0600. Never printed.",
)
@click.option(
    "--secrets-command",
    default=None,
    metavar="CMD",
    help="Run CMD (no shell) for each secret the server makes, the secret on its stdin, its name in "
    "PROVISIONER_SECRET_NAME and in every {name} of CMD, e.g. 'gh secret set {name}'.",
)
@click.option(
    "--secrets-command-env",
    "secrets_command_env",
    multiple=True,
    metavar="NAME",
    help="Pass the variable NAME to --secrets-command (repeatable), e.g. GH_TOKEN for `gh`. The command "
    "otherwise gets only PATH, HOME, the locale and PROVISIONER_SECRET_*: never the API key.",
)
@click.option(
    "--rotate-only",
    is_flag=True,
    help="Apply only the API key rotations that rotate_every made due, and the disabling of the keys "
    "they replaced; every other change is left for a reviewed apply. For a scheduled rotation job.",
)
@approval_options
@endpoint_options
@click.option(
    "--new-sandbox",
    is_flag=True,
    help="With --sandbox: create DBPATH even when another sandbox database is in its folder "
    "(without it, a path that looks like a typo is asked about, or refused without a terminal).",
)
@base_option
def apply(
    configs: tuple[str, ...],
    auto_approve: bool,
    force: bool,
    parallelism: int,
    plan_file: str | None,
    max_age: timedelta,
    expect: str | None,
    expect_file: str | None,
    override_reason: str | None,
    audit_log: str | None,
    secrets_dir: str | None,
    secrets_command: str | None,
    secrets_command_env: tuple[str, ...],
    rotate_only: bool,
    pull_request: str | None,
    approvers: tuple[str, ...],
    merged_by: str | None,
    api_url: str | None,
    sandbox: str | None,
    pace: Pace,
    new_sandbox: bool,
    bases: tuple[str, ...],
) -> int:
    """Make the organization match the config.

    Computes a fresh plan, shows it, asks for `yes` on a terminal, and applies
    it in a safe order. With --plan PLANFILE or --expect DIGEST, the fresh
    plan must equal the reviewed one (same digest), else nothing is applied.
    Needs an admin's key.
    """
    if rotate_only and (plan_file or expect is not None or expect_file is not None):
        raise click.UsageError(
            "--rotate-only applies what the reviewed config's rotate_every made due; it takes no "
            "--plan or --expect"
        )
    if plan_file and (expect is not None or expect_file is not None):
        raise click.UsageError("--plan carries its own digest; give --plan or --expect/--expect-file")
    reason = checked_override_reason(override_reason)
    if reason is not None and expect is None and expect_file is None:
        raise click.UsageError("--override-expect overrides --expect or --expect-file; give one of them")
    if new_sandbox and sandbox is None:
        raise click.UsageError("--new-sandbox goes with --sandbox DBPATH")
    sink = sink_from_options(secrets_dir, secrets_command, secrets_command_env)
    approval = approval_from_options(pull_request, approvers, merged_by)
    loaded = held_to_bases(load_organizations(configs, api_url=api_url), bases, api_url=api_url)
    check_new_sandbox(sandbox, new_sandbox)
    if plan_file and len(loaded) > 1:
        raise click.UsageError("--plan applies one organization's plan; give a single -c with --plan")
    if (expect is not None or expect_file is not None) and len(loaded) > 1:
        raise click.UsageError("a digest pins one organization's plan; give a single -c with --expect")
    options = ApplyOptions(
        auto_approve=auto_approve,
        force=force,
        parallelism=parallelism,
        plan_file=plan_file,
        max_age=max_age,
        audit_log=audit_log,
        api_url=api_url,
        sandbox=sandbox,
        pace=pace,
        expectation=expectation_from_options(expect, expect_file),
        override_reason=reason,
        sink=sink,
        rotate_only=rotate_only,
        approval=approval,
        redactor=run_redactor(),
    )
    run = apply_orgs(loaded, options, TerminalEvents(sandbox), stdout=sys.stdout)
    return run.exit_code
