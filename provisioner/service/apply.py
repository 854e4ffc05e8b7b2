"""``apply``: every organization planned and checked before any is changed; then applied and recorded.

The phases, for all the organizations of one run:

1. Prepare each (``run_organizations``): read a saved plan (``--plan``) before
   any request, connect, read, diff; then check: the saved plan is for this
   organization and state, the fresh plan matches the reviewed digest
   (``--expect``/``--expect-file``/``--plan``), every guard passes. One
   refusal anywhere applies nothing anywhere.
2. Confirm once, through the caller's ``confirm`` (the CLI asks for ``yes``),
   unless ``--auto-approve`` or every plan matched a reviewed digest.
3. Apply each non-empty plan in turn, with SIGINT/SIGTERM turned into a stop
   request (``provisioner.service.interrupt``), then append its audit record.
   A failed or interrupted organization ends the run: the next ones are not
   applied.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import field, replace
from datetime import timedelta
from typing import Protocol, TextIO

from provisioner import __version__
from provisioner.api.client import ApiClient
from provisioner.api.pacing import AUTO_PACE, Pace
from provisioner.apply.executor import ApplyReport, ChangeResult, StopRequest, apply_plan
from provisioner.audit import Approval, AuditRecord, Declared, Pin, append_record, config_commit
from provisioner.errors import (
    ApplyAbortedError,
    ApplyError,
    ApplyInterruptedError,
    RefusedError,
    StalePlanError,
)
from provisioner.frozen import frozen
from provisioner.model import Config
from provisioner.plan.digest import Expectation, pin_fields, render_difference
from provisioner.plan.model import phase_of
from provisioner.plan.planfile import SavedPlan, load_plan
from provisioner.plan.replay import replay
from provisioner.redaction import Redactor
from provisioner.resources.api_key import is_scheduled_rotation
from provisioner.secrets.refs import available
from provisioner.secrets.sink import RememberingSink, SecretSink, check_passed_env
from provisioner.service.connection import connect_config
from provisioner.service.interrupt import exit_code_for, stop_on_signals
from provisioner.service.plan import (
    PlannedOrganization,
    check_not_stale,
    guard,
    read_and_diff,
    with_secret_values,
)
from provisioner.service.runner import Outcome, Run, run_organizations, utcnow

# The first line of a refusal by --expect/--expect-file/--plan. The CI examples
# look for it to tell "the plan changed since review" from other failures.
DIFFERS = "the fresh plan differs from the reviewed plan: nothing was applied"


@frozen
class ApplyOptions:
    """The options of one ``apply`` run, shared by every organization it covers.

    ``expectation`` and ``plan_file`` pin one organization's plan (the caller
    checks that only one is given). ``audit_log`` is a file, or ``-`` for the
    ``stdout`` given to ``apply_orgs``.
    """

    auto_approve: bool = False
    force: bool = False
    parallelism: int = 8
    plan_file: str | None = None
    max_age: timedelta = timedelta(hours=24)
    audit_log: str | None = None
    api_url: str | None = None
    sandbox: str | None = None
    pace: Pace = AUTO_PACE  # pacing to Recall.ai's published limits (``--pace``)
    expectation: Expectation | None = None
    override_reason: str | None = None
    # Where secrets the server makes (webhook signing secrets) go; see provisioner.secrets.sink.
    sink: SecretSink | None = None
    # Apply only the API key rotations that time made due (and the disabling of the keys they
    # replaced); every other change waits for a reviewed apply.
    rotate_only: bool = False
    # The pull request, approvers and merge actor CI reports, kept in the audit record.
    approval: Approval = Approval()
    # Learns every secret the run knows (the key, the config's secret values, each delivered
    # secret); the caller's output and the audit record pass through it. See provisioner.redaction.
    redactor: Redactor = field(default_factory=Redactor)


@frozen
class PreparedOrganization:
    """One organization read, planned and compared with its reviewed plan: ready to check, then apply.

    ``matched``: the fresh plan has the expected digest (it was approved
    already). ``difference`` says how it differs from the expected plan when
    it does not; ``override_reason`` is set when ``--override-expect`` applies
    it anyway. ``created_sandbox``: connecting created a new sandbox organization.
    """

    planned: PlannedOrganization
    client: ApiClient | None  # None for an integrations-only config
    digest: str
    saved: SavedPlan | None = None
    expectation: Expectation | None = None
    matched: bool = False
    difference: str | None = None
    override_reason: str | None = None
    created_sandbox: bool = False
    held_back: int = 0  # changes ``--rotate-only`` left for a reviewed apply
    # The v2 client of each workspace instance with its own key (Recall.ai's API).
    workspace_clients: Mapping[str, ApiClient] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.planned.config

    @property
    def changed(self) -> bool:
        return self.planned.changed

    @property
    def overridden(self) -> bool:
        """The plan differs from the expected one, and ``--override-expect`` applies it anyway."""
        return self.difference is not None and self.override_reason is not None


@frozen
class AppliedOrganization:
    """One organization applied: what happened, and the audit record when one was written."""

    prepared: PreparedOrganization
    report: ApplyReport
    record: AuditRecord | None = None


@frozen
class ApplyRun:
    """The whole run: every organization's preparation, and those applied."""

    prepared: Run[PreparedOrganization]
    applied: tuple[AppliedOrganization, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.prepared.exit_code(changes_exit=False)


class ApplyEvents(Protocol):
    """What the caller shows and asks during an apply (the CLI prints; a program may log)."""

    def prepared(self, outcome: Outcome[PreparedOrganization], many: bool) -> None:
        """One organization prepared (its plan to show) or refused; ``many``: the run covers several."""

    def confirm(self) -> None:
        """Ask for approval of every plan shown; raise ``RefusedError`` if not given."""

    def progress(self, prepared: PreparedOrganization) -> Callable[[ChangeResult], None] | None:
        """A callback for each change's result as it happens (from worker threads), or None."""

    def applied(self, applied: AppliedOrganization, many: bool) -> None:
        """One organization applied, before its audit record is written; ``many``: several will be."""


def apply_orgs(
    configs: Sequence[Config], options: ApplyOptions, events: ApplyEvents, *, stdout: TextIO | None = None
) -> ApplyRun:
    """Prepare every organization, confirm once, then apply and record each.

    ``stdout`` receives the audit records when ``options.audit_log`` is ``-``
    (default: ``sys.stdout``). Returns the run; raises ``RefusedError`` when an organization of several
    was refused (none is changed), ``ApplyError`` when an apply did not
    finish, ``ApplyInterruptedError`` on SIGINT/SIGTERM (exit code 130/143).
    """
    many = len(configs) > 1
    with ExitStack() as connections:
        # Every organization is read, planned and checked before any is changed:
        # one refusal (a guard, a stale or unreviewed plan, an error) applies nothing.
        prepared = run_organizations(
            configs,
            lambda config: _prepare(config, options, connections),
            check=lambda p: _check(p, options),
            report=lambda outcome: events.prepared(outcome, many),
        )
        if prepared.failed:
            if many:
                raise RefusedError("an organization above was refused, so none was changed")
            return ApplyRun(prepared)
        pending = [p for p in prepared.results if p.changed]
        if not options.auto_approve and any(not p.matched for p in pending):
            # A plan that matched its reviewed digest was approved already.
            events.confirm()
        out = sys.stdout if stdout is None else stdout
        applied = []
        for p in prepared.results:
            if p.changed:
                applied.append(_apply(p, options, events, many=len(pending) > 1, stdout=out))
            elif options.audit_log:
                # Every apply appends a record, one with nothing to do included: the trail has no gaps.
                append_record(audit_record(p, options, ApplyReport()), options.audit_log, stdout=out)
    return ApplyRun(prepared, tuple(applied))


def _prepare(config: Config, options: ApplyOptions, connections: ExitStack) -> PreparedOrganization:
    """Read and plan one organization and compare it with its reviewed plan; change nothing."""
    saved = None
    expectation = options.expectation
    if options.plan_file:
        # Read before connecting: an unreadable or edited file costs no API call.
        saved = load_plan(options.plan_file, tool_version=__version__, now=utcnow(), max_age=options.max_age)
        expectation = Expectation(saved.digest, f"--plan {options.plan_file}", saved.plan, saved.target)
    referenced = (use.ref.name for use in config.secret_uses if use.ref.source == "env")
    check_passed_env(options.sink, config.organization.token_env, referenced)
    connection = connections.enter_context(
        connect_config(
            config, api_url=options.api_url, sandbox=options.sandbox, create_sandbox=True, pace=options.pace
        )
    )
    endpoint, client = connection.endpoint, connection.client
    options.redactor.learn(endpoint.token)
    planned = read_and_diff(
        config,
        client,
        now=utcnow(),
        parallelism=options.parallelism,
        workspace_clients=connection.workspace_clients,
        endpoint=endpoint,
    )
    held_back = 0
    if options.rotate_only:
        due = tuple(c for c in planned.plan.changes if is_scheduled_rotation(c))
        held_back = len(planned.plan.changes) - len(due)
        planned = replace(planned, plan=replace(planned.plan, changes=due))
    # The values of what this apply writes, and only those: before any change.
    planned = with_secret_values(planned, [client, *connection.workspace_clients.values()])
    options.redactor.learn(
        *planned.secrets.values(), *available(config.secret_uses, base=config.secret_base).values()
    )
    digest = pin_fields(planned.plan, planned.target)["digest"]
    matched = expectation is not None and expectation.digest == digest
    difference = None
    if expectation is not None and not matched:
        difference = render_difference(expectation, planned.plan, planned.target, digest)
    return PreparedOrganization(
        planned,
        client,
        digest,
        saved=saved,
        expectation=expectation,
        matched=matched,
        difference=difference,
        # A saved plan is the reviewed plan itself: nothing overrides it.
        override_reason=None if saved is not None else options.override_reason,
        created_sandbox=endpoint.created,
        held_back=held_back,
        workspace_clients=connection.workspace_clients,
    )


def _check(prepared: PreparedOrganization, options: ApplyOptions) -> PreparedOrganization:
    """Every check before an apply: the saved plan, the reviewed digest, the guards."""
    planned, saved = prepared.planned, prepared.saved
    if saved is not None:
        target = planned.target
        if saved.target.organization_id != target.organization_id:
            raise StalePlanError(
                f"the saved plan is for organization {saved.target.organization} (id "
                f"{saved.target.organization_id}), but the key in use belongs to {target.organization} "
                f"(id {target.organization_id}); apply it with a key of the organization it was made for"
            )
        check_not_stale(saved.plan, planned)
    if prepared.difference is not None and prepared.override_reason is None:
        raise RefusedError(
            f"{DIFFERS}.\n"
            + prepared.difference
            + "\nHave the fresh plan above reviewed and approved, then apply with its digest. "
            "In an emergency, --override-expect REASON applies it anyway and marks the audit record."
        )
    guard(planned, force=options.force, for_apply=True, secret_sink=options.sink is not None)
    return prepared


def audit_record(prepared: PreparedOrganization, options: ApplyOptions, report: ApplyReport) -> AuditRecord:
    """What one organization's apply did, pinned to the plan that was reviewed."""
    planned, expectation = prepared.planned, prepared.expectation
    applied = [r.change for r in report.applied]
    return AuditRecord(
        time=utcnow(),
        tool_version=__version__,
        organization=planned.identity.organization.name,
        config_digest=prepared.config.digest,
        state_fingerprint=planned.plan.state_fingerprint,
        report=report,
        left_behind=replay(planned.current, sorted(applied, key=phase_of)),
        commit=config_commit(prepared.config),
        pin=Pin(
            applied_digest=prepared.digest,
            expected_digest=None if expectation is None else expectation.digest,
            expected_from=None if expectation is None else expectation.source,
            override_reason=prepared.override_reason if prepared.overridden else None,
        ),
        approval=options.approval,
        declared=Declared.of(prepared.config.desired),
    )


def _apply(
    prepared: PreparedOrganization, options: ApplyOptions, events: ApplyEvents, *, many: bool, stdout: TextIO
) -> AppliedOrganization:
    """Apply one checked plan; record it; stop early and say so on SIGINT/SIGTERM."""
    planned = prepared.planned
    stop = StopRequest()
    with stop_on_signals(stop):
        report = apply_plan(
            planned.plan,
            prepared.client,
            current=planned.current,
            parallelism=options.parallelism,
            progress=events.progress(prepared),
            run_id=uuid.uuid4().hex,
            stop=stop,
            secrets=planned.secrets,
            # Each secret is learned before the sink sees it: whatever the sink says quotes it redacted.
            sink=None if options.sink is None else RememberingSink(options.sink, options.redactor.learn),
            environments=planned.environments,
            workspace_clients=prepared.workspace_clients,
        )
        # A signal from here on still finds the record written: the handler
        # only requests a stop (or aborts) while apply_plan runs.
        events.applied(AppliedOrganization(prepared, report), many)
        record = None
        if options.audit_log:
            record = audit_record(prepared, options, report)
            append_record(record, options.audit_log, stdout=stdout, redact=options.redactor)
    if report.interrupted:
        message = (
            f"interrupted by {report.interrupted}: {len(report.applied)} change(s) applied, "
            f"{len(report.failed)} failed, {len(report.skipped)} not started. Nothing that was "
            "applied is lost; run `provisioner plan` to see what remains"
        )
        error = ApplyAbortedError if stop.aborted else ApplyInterruptedError
        raise error(message, exit_code=exit_code_for(report.interrupted))
    if not report.ok:
        raise ApplyError(
            "the apply did not finish: see the failed and skipped changes above. Nothing that "
            "was applied is lost; fix the cause and run `provisioner plan` to see what remains"
        )
    return AppliedOrganization(prepared, report, record)
