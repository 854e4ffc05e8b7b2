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
import shlex
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from provisioner import __version__, reconcile
from provisioner.api.client import ApiClient
from provisioner.apply.executor import StopRequest, apply_plan
from provisioner.apply.report import render_report
from provisioner.audit import AuditRecord, Pin, append_record, git_commit
from provisioner.cli.interrupt import exit_code_for, stop_on_signals
from provisioner.cli.options import DurationType, config_option, endpoint_options, parallelism_option
from provisioner.cli.output import Progress, echo_error, use_color
from provisioner.config import load_configs
from provisioner.endpoint import Endpoint, OperatorAllowances, open_endpoint
from provisioner.errors import (
    ApplyError,
    ApplyInterruptedError,
    ProvisionerError,
    RefusedError,
    StalePlanError,
)
from provisioner.escape import markdown_code, terminal, terminal_lines
from provisioner.model import Config, State
from provisioner.plan.digest import (
    Expectation,
    PlanTarget,
    markdown_line,
    parse_digest,
    pin_fields,
    render_difference,
    text_line,
)
from provisioner.plan.model import Plan
from provisioner.plan.planfile import load_plan, read_expectation, save_plan
from provisioner.plan.render_json import render_json
from provisioner.plan.render_markdown import render_markdown
from provisioner.plan.render_text import render_text
from provisioner.plan.replay import replay


def utcnow() -> datetime:
    return datetime.now(UTC)


def environments_of(config: Config) -> dict[str, str | None]:
    """Workspace instance name -> environment, so renderers can put production first."""
    return {name: ws.environment for name, ws in config.desired.workspaces.items()}


def render_pinned(
    plan: Plan,
    target: PlanTarget,
    fmt: str,
    *,
    environments: Mapping[str, str | None],
    current: State | None,
) -> str:
    """One plan in the requested format, with its digest (a field in JSON, the last line otherwise).

    ``plan``, ``show`` and ``apply`` all print plans through here, so the
    digest reads the same in every form.
    """
    pin = pin_fields(plan, target)
    if fmt == "json":
        return render_json(plan, tool_version=__version__, extra=pin)
    if fmt == "markdown":
        text = render_markdown(plan, environments=environments, current=current)
        return text.rstrip("\n") + "\n\n" + markdown_line(pin["digest"]) + "\n"
    text = render_text(plan, color=use_color(), environments=environments)
    return text.rstrip("\n") + "\n\n" + text_line(pin["digest"]) + "\n"


def render(plan: Plan, config: Config, fmt: str, current: State, target: PlanTarget) -> str:
    """One organization's plan in the requested format."""
    return render_pinned(plan, target, fmt, environments=environments_of(config), current=current)


def apply_hint(configs: tuple[str, ...], out: str, *, api_url: str | None, sandbox: str | None) -> str:
    """The command that applies a plan saved with ``--out``, repeating the endpoint options.

    Copied as printed, it must reach the same endpoint as the plan did; every
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
    return shlex.join(words)


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
    config: Config, *, api_url: str | None, sandbox: str | None, create_sandbox: bool = False
) -> Iterator[tuple[Endpoint, ApiClient]]:
    """The endpoint and a client for one organization, closed on exit.

    Only apply passes ``create_sandbox``: it may start a new sandbox
    organization, and says so.
    """
    limits = client_limits_from_env()
    with open_endpoint(
        config.organization, api_url=api_url, sandbox=sandbox, create_sandbox=create_sandbox
    ) as endpoint:
        if endpoint.created:
            click.echo(f"Created a new sandbox organization in {terminal(str(sandbox))}.", err=True)
        with ApiClient(
            endpoint.base_url, endpoint.token, user_agent=f"provisioner/{__version__}", **limits
        ) as client:
            yield endpoint, client


def heading(config: Config, fmt: str) -> str:
    """A section heading for one organization when a run covers several."""
    # File names are the pull request author's: escaped like any other value.
    if fmt == "markdown":
        return f"## Organization from {', '.join(markdown_code(s) for s in config.sources)}\n"
    return f"=== Organization from {', '.join(terminal(s) for s in config.sources)} ==="


@click.command("plan")
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
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
    "--force", is_flag=True, help="Let the plan exceed policy.max_removals. Overrides no other guard."
)
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
    loaded = load_configs(list(configs), allowances=OperatorAllowances.from_environ(api_url=api_url))
    if out and len(loaded) > 1:
        raise click.UsageError("--out saves one organization's plan; give a single -c with --out")
    many = len(loaded) > 1
    failed = changed = False
    json_docs: list[str] = []
    for config in loaded:
        try:
            with connect(config, api_url=api_url, sandbox=sandbox) as (endpoint, client):
                planned = reconcile.read_and_diff(config, client, now=utcnow(), parallelism=parallelism)
                target = PlanTarget.of(planned.identity.organization)
                text = render(planned.plan, config, fmt, planned.current, target)
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
                    digest = save_plan(
                        planned.plan,
                        out,
                        target=target,
                        tool_version=__version__,
                        created_at=utcnow(),
                        environments=environments_of(config),
                    )
                    hint = apply_hint(configs, out, api_url=api_url, sandbox=sandbox)
                    click.echo(
                        terminal(f"Saved the plan ({digest}) to {out}; apply it with `{hint}`."), err=True
                    )
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


OVERRIDE_REASON_LIMIT = 500
# The first line of a refusal by --expect/--expect-file/--plan. The CI examples
# look for it to tell "the plan changed since review" from other failures.
DIFFERS = "the fresh plan differs from the reviewed plan: nothing was applied"


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
    expectation: Expectation | None = None
    override_reason: str | None = None


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
    "--force", is_flag=True, help="Let the plan exceed policy.max_removals. Overrides no other guard."
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
@endpoint_options
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
    api_url: str | None,
    sandbox: str | None,
) -> None:
    """Make the organization match the config.

    Computes a fresh plan, shows it, asks for `yes` on a terminal, and applies
    it in a safe order. With --plan PLANFILE or --expect DIGEST, the fresh
    plan must equal the reviewed one (same digest), else nothing is applied.
    Needs an admin's key.
    """
    if plan_file and (expect is not None or expect_file is not None):
        raise click.UsageError("--plan carries its own digest; give --plan or --expect/--expect-file")
    reason = checked_override_reason(override_reason)
    if reason is not None and expect is None and expect_file is None:
        raise click.UsageError("--override-expect overrides --expect or --expect-file; give one of them")
    loaded = load_configs(list(configs), allowances=OperatorAllowances.from_environ(api_url=api_url))
    if plan_file and len(loaded) > 1:
        raise click.UsageError("--plan applies one organization's plan; give a single -c with --plan")
    if (expect is not None or expect_file is not None) and len(loaded) > 1:
        raise click.UsageError("a digest pins one organization's plan; give a single -c with --expect")
    options = ApplyOptions(
        auto_approve,
        force,
        parallelism,
        plan_file,
        max_age,
        audit_log,
        api_url,
        sandbox,
        expectation_from_options(expect, expect_file),
        reason,
    )
    with ExitStack() as connections:
        # Every organization is read, planned and checked before any is changed:
        # one refusal (a guard, a stale or unreviewed plan, an error) applies nothing.
        prepared: list[_Prepared] = []
        failed = False
        for config in loaded:
            if len(loaded) > 1:
                click.echo(heading(config, "text"))
            try:
                prepared.append(_prepare(config, options, connections))
            except ProvisionerError as error:
                failed = True
                echo_error(error)
        if failed:
            if len(loaded) > 1:
                echo_error("an organization above was refused, so none was changed")
            sys.exit(1)
        pending = [p for p in prepared if not p.planned.plan.empty]
        if any(not p.matched for p in pending):
            # A plan that matched its reviewed digest was approved already.
            confirm(options.auto_approve)
        for p in pending:
            if len(pending) > 1:
                click.echo(heading(p.config, "text"))
            _apply_prepared(p, options)


def _check_saved(
    saved_target: PlanTarget, planned: reconcile.PlannedOrganization, saved_plan: Plan, target: PlanTarget
) -> None:
    """A saved plan is for this organization and was made from the state read now."""
    if saved_target.organization_id != target.organization_id:
        raise StalePlanError(
            f"the saved plan is for organization {saved_target.organization} (id "
            f"{saved_target.organization_id}), but the key in use belongs to {target.organization} "
            f"(id {target.organization_id}); apply it with a key of the organization it was made for"
        )
    reconcile.check_not_stale(saved_plan, planned)


def _check_expectation(
    expectation: Expectation,
    planned: reconcile.PlannedOrganization,
    target: PlanTarget,
    digest: str,
    override_reason: str | None,
) -> bool:
    """Refuse unless the fresh plan is the expected one; True when it is (False: overridden)."""
    if expectation.digest == digest:
        return True
    difference = render_difference(expectation, planned.plan, target, digest)
    if override_reason is not None:
        click.echo(
            terminal_lines(
                "Warning: the fresh plan differs from the reviewed plan, and --override-expect "
                f"applies it anyway (reason: {override_reason}).\n{difference}"
            ),
            err=True,
        )
        return False
    raise RefusedError(
        terminal_lines(
            f"{DIFFERS}.\n"
            + difference
            + "\nHave the fresh plan above reviewed and approved, then apply with its digest. "
            "In an emergency, --override-expect REASON applies it anyway and marks the audit record."
        )
    )


@dataclass(frozen=True)
class _Prepared:
    """One organization read, planned, shown and checked: ready to apply."""

    config: Config
    client: ApiClient
    planned: reconcile.PlannedOrganization
    digest: str
    expectation: Expectation | None
    matched: bool


def _prepare(config: Config, options: ApplyOptions, connections: ExitStack) -> _Prepared:
    """Read and plan one organization, show its plan and run every check; change nothing."""
    saved = None
    expectation = options.expectation
    if options.plan_file:
        # Read before connecting: an unreadable or edited file costs no API call.
        saved = load_plan(options.plan_file, tool_version=__version__, now=utcnow(), max_age=options.max_age)
        expectation = Expectation(saved.digest, f"--plan {options.plan_file}", saved.plan, saved.target)
    _endpoint, client = connections.enter_context(
        connect(config, api_url=options.api_url, sandbox=options.sandbox, create_sandbox=True)
    )
    planned = reconcile.read_and_diff(config, client, now=utcnow(), parallelism=options.parallelism)
    target = PlanTarget.of(planned.identity.organization)
    digest = pin_fields(planned.plan, target)["digest"]
    click.echo(render(planned.plan, config, "text", planned.current, target), nl=False)
    if saved is not None:
        _check_saved(saved.target, planned, saved.plan, target)
    matched = expectation is not None and _check_expectation(
        expectation, planned, target, digest, None if saved is not None else options.override_reason
    )
    reconcile.guard(planned, force=options.force, for_apply=True)
    return _Prepared(config, client, planned, digest, expectation, matched)


def _config_folder(config: Config) -> str | None:
    """The folder of the config's first source: its git commit goes into the audit record."""
    if not config.sources:
        return None
    source = os.path.abspath(config.sources[0])
    return source if os.path.isdir(source) else os.path.dirname(source)


def _apply_prepared(prepared: _Prepared, options: ApplyOptions) -> None:
    """Apply one checked plan; record it; stop early and say so on SIGINT/SIGTERM."""
    planned, expectation = prepared.planned, prepared.expectation
    progress = Progress(total=len(planned.plan.changes))
    stop = StopRequest()
    with stop_on_signals(stop):
        report = apply_plan(
            planned.plan,
            prepared.client,
            current=planned.current,
            parallelism=options.parallelism,
            progress=progress,
            run_id=uuid.uuid4().hex,
            stop=stop,
        )
        # A signal from here on still finds the record written: the handler
        # only requests a stop (or aborts) while apply_plan runs.
        summary = render_report(report)
        click.echo(summary, nl=not summary.endswith("\n"))
        if options.audit_log:
            applied = [r.change for r in report.applied]
            record = AuditRecord(
                time=utcnow(),
                tool_version=__version__,
                organization=planned.identity.organization.name,
                config_digest=prepared.config.digest,
                state_fingerprint=planned.plan.state_fingerprint,
                report=report,
                left_behind=replay(planned.current, sorted(applied, key=lambda c: c.phase)),
                commit=git_commit(_config_folder(prepared.config)),
                pin=Pin(
                    applied_digest=prepared.digest,
                    expected_digest=None if expectation is None else expectation.digest,
                    expected_from=None if expectation is None else expectation.source,
                    override_reason=(
                        None if prepared.matched or expectation is None else options.override_reason
                    ),
                ),
            )
            append_record(record, options.audit_log, stdout=click.get_text_stream("stdout"))
    if report.interrupted:
        code = exit_code_for(report.interrupted)
        message = (
            f"interrupted by {report.interrupted}: {len(report.applied)} change(s) applied, "
            f"{len(report.failed)} failed, {len(report.skipped)} not started. Nothing that was "
            "applied is lost; run `provisioner plan` to see what remains"
        )
        if stop.aborted:
            # Abandoned requests may still be running in worker threads; the
            # interpreter would wait for them at exit. Everything known is written.
            echo_error(message)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise ApplyInterruptedError(message, exit_code=code)
    if not report.ok:
        raise ApplyError(
            "the apply did not finish: see the failed and skipped changes above. Nothing that "
            "was applied is lost; fix the cause and run `provisioner plan` to see what remains"
        )
