"""The applier: carries out a ``Plan`` against the API, phase by phase.

It only ever receives a plan (never reads or diffs). Phases (``Change.phase``)
run in order; within a phase up to ``parallelism`` changes are in flight.
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
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from provisioner.api import reader
from provisioner.api.client import ApiClient
from provisioner.apply.report import (
    APPLIED,
    FAILED,
    SKIPPED,
    ApplyReport,
    ChangeResult,
    describe,
)
from provisioner.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from provisioner.model import ADMIN, Membership, State, User, Workspace
from provisioner.plan.model import Action, Change, Phase, Plan, ResourceType
from provisioner.render.apply_report import render_report

__all__ = ["ApplyReport", "ChangeResult", "apply_plan", "idempotency_key"]

log = logging.getLogger("provisioner.apply")

RUN_PLAN_AGAIN = "changed on the server since the plan; run plan again"
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

    def request(self, reason: str) -> None:
        """Stop scheduling new changes; the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class _Failed(Exception):
    """A change that cannot be applied, with the reason for the report."""


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
    client: ApiClient,
    *,
    current: State,
    parallelism: int = 8,
    progress: Callable[[ChangeResult], None] | None = None,
    run_id: str = "",
    stop: StopRequest | None = None,
) -> ApplyReport:
    """Apply ``plan`` through ``client`` and report what happened to each change.

    ``current`` is the state the plan was made from; it supplies the ids of
    existing users and workspaces. ``progress`` is called (from this thread)
    once per change as its outcome becomes known. ``run_id`` goes into every
    idempotency key (see ``idempotency_key``); the CLI passes a fresh one per run.
    ``stop``, once requested, keeps any further change from starting (see the
    module docstring); the report's ``interrupted`` then names its reason.
    """
    return _Run(plan, client, current, max(1, parallelism), progress, run_id, stop).run()


class _Run:
    def __init__(
        self,
        plan: Plan,
        client: ApiClient,
        current: State,
        parallelism: int,
        progress: Callable[[ChangeResult], None] | None,
        run_id: str = "",
        stop: StopRequest | None = None,
    ):
        self.plan = plan
        self.stop = stop or StopRequest()
        self.in_flight: dict[Future, int] = {}
        self.run_id = run_id
        self.client = client
        self.parallelism = parallelism
        self.progress = progress
        self._lock = threading.Lock()
        self.user_ids: dict[str, str] = {e: u.id for e, u in current.users.items() if u.id}
        self.workspace_ids: dict[str, str] = {n: w.id for n, w in current.workspaces.items() if w.id}
        self.results: dict[int, ChangeResult] = {}
        # (type, key) of changes that were not applied: their dependents skip.
        self.not_applied: set[tuple[ResourceType, str]] = set()
        self.promotion_failed = False
        self.stop_reason: str | None = None
        # Users this plan removes: their memberships go with them (cascades).
        self.removed_users = frozenset(
            c.key for c in plan.changes if c.type is ResourceType.USER and c.action is Action.DELETE
        )
        self.handlers: dict[tuple[ResourceType, Action], Callable[[Change], str | None]] = {
            (ResourceType.USER, Action.CREATE): self._invite,
            (ResourceType.USER, Action.UPDATE): self._change_role,
            (ResourceType.USER, Action.DELETE): self._remove_user,
            (ResourceType.WORKSPACE, Action.CREATE): self._create_workspace,
            (ResourceType.MEMBERSHIP, Action.CREATE): self._grant,
            (ResourceType.MEMBERSHIP, Action.DELETE): self._revoke,
        }

    # --- orchestration ----------------------------------------------------------

    def run(self) -> ApplyReport:
        indexed = list(enumerate(self.plan.changes))
        pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="apply")
        try:
            for phase in sorted({c.phase for _, c in indexed}):
                batch = [(i, c) for i, c in indexed if c.phase is phase and not c.cascade]
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
        # The server removes a user's memberships with the user: no requests.
        for i, c in indexed:
            if c.cascade and i not in self.results:
                self._record(i, self._cascade(c))
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
        futures: dict[Future, int] = {}
        for i, c in batch:
            reason = self._stopped() or self._blocked_by(c)
            if reason:
                self._record(i, ChangeResult(c, SKIPPED, reason))
            else:
                futures[pool.submit(self._execute, c)] = i
        self.in_flight = futures
        # The phase is a barrier: the next one starts when all of these ended.
        for future in as_completed(futures):
            self._record(futures[future], future.result())

    def _record(self, index: int, result: ChangeResult) -> None:
        self.results[index] = result
        if result.status != APPLIED:
            with self._lock:
                self.not_applied.add((result.change.type, result.change.key))
                if result.change.phase is Phase.PROMOTE:
                    self.promotion_failed = True
        if self.progress is not None:
            self.progress(result)

    def _blocked_by(self, c: Change) -> str | None:
        """Why ``c`` must not run because of an earlier change, if it must not."""
        if c.type is ResourceType.MEMBERSHIP and c.action is Action.CREATE:
            assert isinstance(c.after, Membership)
            if (ResourceType.USER, c.after.user) in self.not_applied:
                return f"depends on inviting {c.after.user}, which did not succeed"
            if (ResourceType.WORKSPACE, c.after.workspace) in self.not_applied:
                return f"depends on creating workspace {c.after.workspace}, which did not succeed"
        if self.promotion_failed:
            demotes = c.phase is Phase.DEMOTE
            removes_admin = (
                c.phase is Phase.REMOVE_USER and isinstance(c.before, User) and c.before.role == ADMIN
            )
            if demotes or removes_admin:
                return "a promotion did not succeed; doing this now could leave too few admins"
        return None

    def _execute(self, c: Change) -> ChangeResult:
        """Run one change in a worker thread. Never raises."""
        stopped = self._stopped()
        if stopped:  # queued before the stop, not started yet
            return ChangeResult(c, SKIPPED, stopped)
        handler = self.handlers.get((c.type, c.action))
        try:
            if handler is None:
                raise _Failed(f"the API cannot {c.action.value} a {c.type.value}; change it by hand")
            note = handler(c)
        except _Failed as e:
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

    def _cascade(self, c: Change) -> ChangeResult:
        assert isinstance(c.before, Membership)
        user_key = (ResourceType.USER, c.before.user)
        if c.before.user in self.removed_users and user_key not in self.not_applied:
            return ChangeResult(c, APPLIED, "removed by the server with its user")
        return ChangeResult(c, SKIPPED, f"depends on removing {c.before.user}, which did not succeed")

    # --- one handler per kind of change ----------------------------------------

    def _invite(self, c: Change) -> str | None:
        assert isinstance(c.after, User)
        try:
            body = self.client.post(
                reader.USERS,
                reader.invite_body(c.after),
                idempotency_key=idempotency_key(self.plan, c, self.run_id),
            )
        except ConflictError:
            # Invited meanwhile by someone else. Later grants need its id.
            existing = self._find(reader.USERS, reader.parse_user, lambda u: u.email == c.after.email)
            if existing is None:
                raise _Failed("the API says the user exists but does not list it; run plan again") from None
            self._set_id(self.user_ids, c.after.email, existing.id)
            if existing.role != c.after.role:
                raise _Failed(f"already exists with role {existing.role}; {RUN_PLAN_AGAIN}") from None
            return "already existed"
        self._set_id(self.user_ids, c.after.email, reader.parse_user(body).id)
        return None

    def _create_workspace(self, c: Change) -> str | None:
        assert isinstance(c.after, Workspace)
        try:
            body = self.client.post(
                reader.WORKSPACES,
                reader.workspace_body(c.after),
                idempotency_key=idempotency_key(self.plan, c, self.run_id),
            )
        except ConflictError:
            existing = self._find(reader.WORKSPACES, reader.parse_workspace, lambda w: w.name == c.after.name)
            if existing is None:
                raise _Failed(
                    "the API says the workspace exists but does not list it; run plan again"
                ) from None
            self._set_id(self.workspace_ids, c.after.name, existing.id)
            return "already existed"
        self._set_id(self.workspace_ids, c.after.name, reader.parse_workspace(body).id)
        return None

    def _grant(self, c: Change) -> str | None:
        assert isinstance(c.after, Membership)
        with self._lock:
            user_id = self.user_ids.get(c.after.user)
            workspace_id = self.workspace_ids.get(c.after.workspace)
        if user_id is None or workspace_id is None:
            missing = f"user {c.after.user}" if user_id is None else f"workspace {c.after.workspace}"
            raise _Failed(f"the {missing} is unknown to the API; run plan again")
        try:
            self.client.post(
                reader.MEMBERSHIPS,
                reader.membership_body(workspace_id, user_id),
                idempotency_key=idempotency_key(self.plan, c, self.run_id),
            )
        except ConflictError:
            return "already existed"
        return None

    def _change_role(self, c: Change) -> str | None:
        assert isinstance(c.before, User) and isinstance(c.after, User) and c.before.id
        path = reader.user_path(c.before.id)
        try:
            self.client.patch(path, reader.role_body(c.after.role), if_match=c.before.etag)
        except NotFoundError:
            raise _Failed(f"the user no longer exists; {RUN_PLAN_AGAIN}") from None
        except PreconditionFailedError:
            now = self._reread(path, reader.parse_user)
            if now is not None and now.role == c.after.role:
                return f"already had role {c.after.role}"
            raise _Failed(RUN_PLAN_AGAIN) from None
        return None

    def _revoke(self, c: Change) -> str | None:
        assert isinstance(c.before, Membership) and c.before.id
        return self._delete(reader.membership_path(c.before.id), c.before.etag)

    def _remove_user(self, c: Change) -> str | None:
        assert isinstance(c.before, User) and c.before.id
        return self._delete(reader.user_path(c.before.id), c.before.etag)

    # --- helpers ------------------------------------------------------------------

    def _delete(self, path: str, etag: str | None) -> str | None:
        try:
            self.client.delete(path, if_match=etag)
        except NotFoundError:
            return "already gone"
        except PreconditionFailedError:
            if self._reread(path, lambda body: body) is None:
                return "already gone"
            raise _Failed(RUN_PLAN_AGAIN) from None
        return None

    def _reread(self, path: str, parse: Callable[[dict], object]):  # -> parsed object | None
        """GET ``path`` after a 412; ``None`` when it is gone."""
        try:
            body, _ = self.client.get(path)
        except NotFoundError:
            return None
        return parse(body)

    def _find(self, path: str, parse: Callable[[dict], object], match: Callable) -> object | None:
        for page in self.client.iter_pages(path):
            for item in page:
                obj = parse(item)
                if match(obj):
                    return obj
        return None

    def _set_id(self, ids: dict[str, str], key: str, value: str | None) -> None:
        if value is not None:
            with self._lock:
                ids[key] = value
