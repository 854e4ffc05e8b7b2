"""A stop request keeps every further change from starting; in-flight ones finish.

The executor runs against a scripted in-memory client, so the moment of the
stop is exact: the client requests it while it handles the Nth request.
"""

from __future__ import annotations

from typing import Any

from provisioner.apply.executor import StopRequest, apply_plan
from provisioner.apply.report import APPLIED, SKIPPED
from provisioner.model import Membership, State, User, Workspace
from provisioner.plan.model import Action, Change, Plan, ResourceType
from provisioner.render.apply_report import render_report


class StoppingClient:
    """Answers every POST with 201 and requests a stop while serving the ``stop_at``-th."""

    def __init__(self, stop: StopRequest, stop_at: int):
        self.stop = stop
        self.stop_at = stop_at
        self.posts: list[dict[str, Any]] = []

    def post(self, path: str, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        self.posts.append(body)
        if len(self.posts) == self.stop_at:
            self.stop.request("SIGINT")
        return {
            "id": f"id-{len(self.posts)}",
            "email": body.get("email", ""),
            "role": body.get("role", "developer"),
            "status": "invited",
            "etag": "e",
        }


def _plan(n: int) -> tuple[Plan, State]:
    users = [User(f"u{i}@x.io", "developer") for i in range(n)]
    current = State.build([], [Workspace("w", id="w1")], [])
    changes = tuple(Change(Action.CREATE, ResourceType.USER, u.email, None, u) for u in users)
    grants = tuple(
        Change(Action.CREATE, ResourceType.MEMBERSHIP, f"w/{u.email}", None, Membership("w", u.email))
        for u in users
    )
    return Plan("org", changes + grants), current


def test_a_stop_lets_the_change_in_flight_finish_and_starts_nothing_else() -> None:
    plan, current = _plan(6)
    stop = StopRequest()
    client = StoppingClient(stop, stop_at=3)
    report = apply_plan(plan, client, current=current, parallelism=1, stop=stop)  # type: ignore[arg-type]
    assert len(client.posts) == 3, "no request may start after the stop"
    assert [r.change.key for r in report.applied] == ["u0@x.io", "u1@x.io", "u2@x.io"]
    assert {r.status for r in report.skipped} == {SKIPPED}
    assert len(report.skipped) == len(plan.changes) - 3
    assert all("not started: the run was interrupted (SIGINT)" in (r.message or "") for r in report.skipped)
    assert report.interrupted == "SIGINT"
    assert "Interrupted (SIGINT)" in render_report(report)


def test_without_a_stop_everything_is_applied() -> None:
    plan, current = _plan(3)
    stop = StopRequest()
    client = StoppingClient(stop, stop_at=0)
    report = apply_plan(plan, client, current=current, parallelism=2, stop=stop)  # type: ignore[arg-type]
    assert {r.status for r in report.applied} == {APPLIED} and len(report.applied) == 6
    assert report.interrupted is None and report.ok
