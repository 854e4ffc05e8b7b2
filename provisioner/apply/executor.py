"""The applier: carries out a ``Plan`` against the API, phase by phase.

It only ever receives a plan (never reads or diffs). Phases (``plan.model.phase_of``)
run in order; within a phase up to ``parallelism`` changes are in flight. It
is generic over the registered resource types: the API calls of a change, its
dependency skips and the settling of cascades are its type's
(``ResourceKind.handlers``, ``blocked_by``, ``settle_cascade`` in
``provisioner.resources``); this module schedules, records and reports.
When nothing fails, every change costs exactly one request (cascaded
membership removals cost none).

Failure handling, in short:

* A failed change never raises out of ``apply_plan``; it is in the report.
* Changes that depend on a change that did not succeed are skipped: a grant
  depends on its user's invite and its workspace's creation; a cascaded
  membership removal on its user's removal; demotions and removals of admins
  on every promotion (so that ``min_admins`` holds at every moment).
* An AuthenticationError or PermissionDeniedError stops everything not yet
  started: the key will not start working halfway through.
* 409 on a create means it already exists: applied (for users and workspaces
  one listing finds its id, which later grants need; a user that exists with
  another role fails). 404 on a delete means already gone: applied.
* 412 (If-Match mismatch) means someone changed the object since the plan:
  the object is read again; if it already is as desired the change counts as
  applied, otherwise it fails with "run plan again". Nothing is overwritten
  blindly.

Interruption (``StopRequest``): once a stop is requested (the CLI does it on
the first SIGINT or SIGTERM), no change starts; the changes in flight finish
and the report lists the rest as skipped, "not started". A
``KeyboardInterrupt`` in the calling thread (the CLI raises one on the second
signal) abandons the changes in flight at once: the report marks them failed
with "outcome unknown", and the next plan shows whether they happened.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from provisioner.api.client import ApiClient
from provisioner.apply.report import (
    APPLIED,
    FAILED,
    SKIPPED,
    ApplyReport,
    ChangeResult,
    describe,
)
from provisioner.errors import ApiError, AuthenticationError, PermissionDeniedError, SinkError
from provisioner.model import SecretRef, State
from provisioner.plan.model import Action, Change, Phase, Plan, ResourceType, phase_of
from provisioner.render.apply_report import render_report
from provisioner.resources.base import RUN_PLAN_AGAIN, Failed
from provisioner.resources.registry import REGISTRY
from provisioner.secrets.refs import SecretValues
from provisioner.secrets.sink import GeneratedSecret, SecretSink

__all__ = [
    "RUN_PLAN_AGAIN",
    "ApplyReport",
    "ChangeResult",
    "StopRequest",
    "apply_plan",
    "idempotency_key",
]

log = logging.getLogger("provisioner.apply")

OUTCOME_UNKNOWN = (
    "outcome unknown: the run was aborted while this change was in flight; "
    "run plan to see whether it happened"
)


class StopRequest:
    """A request, from another thread or a signal handler, to stop scheduling changes.

    ``reason`` names what asked (for example ``"SIGINT"``); it is ``None`` until
    a stop is requested. Requesting is an assignment and an ``Event.set``,
    both safe to do from a signal handler.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        # True once the run abandoned changes in flight (a second signal).
        self.aborted = False
        # A second signal asked to abort (``abort``); it takes effect at once only
        # while the run is waiting for changes in flight (``waiting``), and at the
        # run's next safe point otherwise: never between starting a change and
        # noting it in flight, or between a result and its record.
        self.abort_pending = False
        self.waiting = False

    def abort(self) -> None:
        """Abandon the changes in flight: raise ``KeyboardInterrupt`` now if the run is waiting.

        Called from the signal handler, in the main thread, which is the thread
        that runs the apply: the exception surfaces where the run waits.
        """
        self.abort_pending = True
        if self.waiting:
            raise KeyboardInterrupt

    def request(self, reason: str) -> None:
        """Stop scheduling new changes; the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


def idempotency_key(plan: Plan, change: Change, run_id: str = "") -> str:
    """The ``Idempotency-Key`` of a create: the same for the same change of the
    same plan in the same run, so a create whose response was lost is replayed,
    not repeated.

    ``run_id`` keeps two runs of the same plan (two CI jobs applying at once)
    apart: with one key, the second run would be handed a replay of the first
    run's 201 and report a create it did not make. With its own key it gets a
    409 and reports "already existed". Across runs nothing is lost: a create
    that committed changes the state, so the next run's plan no longer has it.
    """
    parts = (plan.state_fingerprint, plan.config_digest, change.type.value, change.action.value, change.key)
    material = "\x1f".join(parts + ((run_id,) if run_id else ()))
    return hashlib.sha256(material.encode()).hexdigest()


def apply_plan(
    plan: Plan,
    client: ApiClient | None,
    *,
    current: State,
    parallelism: int = 8,
    progress: Callable[[ChangeResult], None] | None = None,
    run_id: str = "",
    stop: StopRequest | None = None,
    secrets: SecretValues | None = None,
    sink: SecretSink | None = None,
    environments: Mapping[str, str | None] | None = None,
    workspace_clients: Mapping[str, ApiClient] | None = None,
) -> ApplyReport:
    """Apply ``plan`` through ``client`` and report what happened to each change.

    ``current`` is the state the plan was made from; it supplies the ids of
    existing users and workspaces. ``progress`` is called (from this thread)
    once per change as its outcome becomes known. ``run_id`` goes into every
    idempotency key (see ``idempotency_key``); the CLI passes a fresh one per run.
    ``stop``, once requested, keeps any further change from starting (see the
    module docstring); the report's ``interrupted`` then names its reason.
    ``secrets`` are the values of the config's secret references (request
    bodies only); ``sink`` receives the secrets the server makes (webhook
    signing secrets), named by organization, workspace and ``environments``.
    ``workspace_clients`` are the v2 clients of the instances with their own key
    (``RECALL_V2`` types); ``client`` is None in an integrations-only run.
    """
    run = _Run(plan, client, current, max(1, parallelism), progress, run_id, stop)
    run.workspace_clients = dict(workspace_clients or {})
    run.secrets = secrets if secrets is not None else SecretValues()
    run.sink = sink
    run.environments = dict(environments or {})
    return run.run()


def _signals_to_the_main_thread() -> None:
    """Block SIGINT and SIGTERM in a worker thread, so that the kernel delivers them to the main one.

    Python runs signal handlers in the main thread only. A signal the kernel
    hands to a worker (blocked in a socket read) does not wake the main thread
    from its wait for finished changes, so a second Ctrl-C would only take
    effect when some request returned: "abort at once" would not hold.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


class _Run:
    """One apply of one plan; also the ``ApplyContext`` the types' API calls get."""

    def __init__(
        self,
        plan: Plan,
        client: ApiClient | None,
        current: State,
        parallelism: int,
        progress: Callable[[ChangeResult], None] | None,
        run_id: str = "",
        stop: StopRequest | None = None,
    ):
        self.plan = plan
        self.stop = stop or StopRequest()
        self.in_flight: dict[Future[ChangeResult], int] = {}
        self.run_id = run_id
        self._client = client
        self.current = current
        self.parallelism = parallelism
        self.progress = progress
        self._lock = threading.Lock()
        # Ids learned during this run (creates, and listings after a 409), by type and key.
        self.learned: dict[tuple[ResourceType, str], str] = {}
        self.results: dict[int, ChangeResult] = {}
        # (type, key) of changes that were not applied: their dependents skip.
        self._not_applied: set[tuple[ResourceType, str]] = set()
        self.failed_phases: set[Phase] = set()
        self.stop_reason: str | None = None
        self._planned: dict[tuple[ResourceType, Action], frozenset[str]] = {}
        self.secrets = SecretValues()
        self.sink: SecretSink | None = None
        self.environments: dict[str, str | None] = {}
        self.workspace_clients: dict[str, ApiClient] = {}

    # --- the ApplyContext the types' API calls see ---------------------------------

    @property
    def client(self) -> ApiClient:
        if self._client is None:  # an integrations-only plan has no management change
            raise Failed("this change needs the organization's key, and the run has none")
        return self._client

    def client_for(self, workspace: str) -> ApiClient:
        found = self.workspace_clients.get(workspace)
        if found is None:
            raise Failed(
                f"no key for workspace {workspace}: set organization.workspace_token_env "
                "(or the workspace's token_env) and its variable"
            )
        return found

    def idempotency_key(self, change: Change) -> str:
        return idempotency_key(self.plan, change, self.run_id)

    def id_of(self, type_: ResourceType, key: str) -> str | None:
        with self._lock:
            learned = self.learned.get((type_, key))
        if learned is not None:
            return learned
        existing = REGISTRY[type_].of(self.current).get(key)
        return None if existing is None else existing.id

    def learn_id(self, type_: ResourceType, key: str, value: str | None) -> None:
        if value is not None:
            with self._lock:
                self.learned[(type_, key)] = value

    def not_applied(self, type_: ResourceType, key: str) -> bool:
        with self._lock:
            return (type_, key) in self._not_applied

    def planned(self, type_: ResourceType, action: Action) -> frozenset[str]:
        if (type_, action) not in self._planned:
            keys = frozenset(c.key for c in self.plan.changes if c.type is type_ and c.action is action)
            self._planned[(type_, action)] = keys
        return self._planned[(type_, action)]

    def phase_failed(self, phase: Phase) -> bool:
        with self._lock:
            return phase in self.failed_phases

    def secret_value(self, ref: SecretRef) -> str:
        return self.secrets.value(ref)

    def deliver(self, workspace: str, what: str, slug: str, value: str, name: str | None = None) -> str:
        if self.sink is None:
            # The plan-time guard refuses such a plan; this is the last line of defence.
            raise SinkError("no secret sink was given; apply with --secrets-dir DIR or --secrets-command CMD")
        secret = GeneratedSecret(
            organization=self.plan.organization,
            workspace=workspace,
            environment=self.environments.get(workspace),
            object=what,
            slug=slug,
            value=value,
            label=name,
        )
        return self.sink.deliver(secret)

    # --- orchestration ----------------------------------------------------------

    def run(self) -> ApplyReport:
        indexed = list(enumerate(self.plan.changes))
        pool = ThreadPoolExecutor(
            max_workers=self.parallelism, thread_name_prefix="apply", initializer=_signals_to_the_main_thread
        )
        try:
            for phase in sorted({phase_of(c) for _, c in indexed}):
                batch = [(i, c) for i, c in indexed if phase_of(c) is phase and not c.cascade]
                self._run_phase(pool, batch)
        except KeyboardInterrupt:
            # Abort at once: the requests in flight are not waited for.
            self.stop.request(self.stop.reason or "interrupt")
            self.stop.aborted = True
            pool.shutdown(wait=False, cancel_futures=True)
            for future, i in self.in_flight.items():
                if i in self.results or future.cancelled():
                    continue  # recorded, or never started: "not started" below
                if future.done():
                    self.results[i] = future.result()
                else:
                    self.results[i] = ChangeResult(self.plan.changes[i], FAILED, OUTCOME_UNKNOWN)
            return self._report(indexed)
        pool.shutdown(wait=True)
        return self._report(indexed)

    def _report(self, indexed: list[tuple[int, Change]]) -> ApplyReport:
        # Cascades cost no request: their type settles them from what was applied.
        for i, c in indexed:
            settle = REGISTRY[c.type].settle_cascade
            if c.cascade and i not in self.results and settle is not None:
                self._record(i, settle(c, self))
        for i, c in indexed:  # only after an abort: changes never scheduled
            if i not in self.results:
                self.results[i] = ChangeResult(c, SKIPPED, self._not_started())
        ordered = [self.results[i] for i in sorted(self.results)]
        report = ApplyReport.from_results(ordered, interrupted=self.stop.reason)
        log.info("%s", render_report(report).splitlines()[0])
        return report

    def _not_started(self) -> str:
        return f"not started: the run was interrupted ({self.stop.reason})"

    def _stopped(self) -> str | None:
        """Why no further change may start, if none may."""
        if self.stop_reason:
            return self.stop_reason
        return self._not_started() if self.stop.is_set() else None

    def _run_phase(self, pool: ThreadPoolExecutor, batch: list[tuple[int, Change]]) -> None:
        """Run one phase, at most ``parallelism`` changes in flight, started by this thread.

        Changes are handed to the pool only as slots free up, never queued ahead:
        a signal's handler runs in this (main) thread as soon as it wakes for a
        finished change, so a stop is seen before the next change starts. (A
        queued change would be picked up by the worker that just finished, which
        cannot see a signal whose handler has not run yet.)
        """
        waiting = list(batch)
        futures: dict[Future[ChangeResult], int] = {}
        self.in_flight = futures

        def start() -> None:
            while waiting and len(futures) < self.parallelism:
                i, c = waiting.pop(0)
                reason = self._stopped() or REGISTRY[c.type].blocked_by(c, self)
                if reason:
                    self._record(i, ChangeResult(c, SKIPPED, reason))
                else:
                    futures[pool.submit(self._execute, c)] = i

        start()
        # The phase is a barrier: the next one starts when all of these ended.
        while futures:
            for future in self._wait(futures):
                self._record(futures[future], future.result())
                del futures[future]
            start()

    def _wait(self, futures: dict[Future[ChangeResult], int]) -> set[Future[ChangeResult]]:
        """The changes that finished; the one place a second signal aborts the run at once."""
        self.stop.waiting = True
        try:
            if self.stop.abort_pending:
                raise KeyboardInterrupt
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
        finally:
            self.stop.waiting = False
        return done

    def _record(self, index: int, result: ChangeResult) -> None:
        self.results[index] = result
        if result.status != APPLIED:
            with self._lock:
                self._not_applied.add((result.change.type, result.change.key))
                self.failed_phases.add(phase_of(result.change))
        if self.progress is not None:
            self.progress(result)

    def _execute(self, c: Change) -> ChangeResult:
        """Run one change in a worker thread. Never raises."""
        stopped = self._stopped()
        if stopped:  # queued before the stop, not started yet
            return ChangeResult(c, SKIPPED, stopped)
        handler = REGISTRY[c.type].handlers.get(c.action)
        try:
            if handler is None:
                raise Failed(f"the API cannot {c.action.value} a {c.type.value}; change it by hand")
            note = handler(c, self)
        except Failed as e:
            return ChangeResult(c, FAILED, str(e))
        except (AuthenticationError, PermissionDeniedError) as e:
            with self._lock:
                if self.stop_reason is None:
                    self.stop_reason = f"not started: the API refused the key ({e})"
            return ChangeResult(c, FAILED, str(e))
        except ApiError as e:
            return ChangeResult(c, FAILED, str(e))
        except Exception as e:  # a bug must not hide what was already applied
            log.exception("unexpected error while applying %s", describe(c))
            return ChangeResult(c, FAILED, f"unexpected error: {type(e).__name__}: {e}")
        log.info("applied %s%s", describe(c), f" ({note})" if note else "")
        return ChangeResult(c, APPLIED, note)
