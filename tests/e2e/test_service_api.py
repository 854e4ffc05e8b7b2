"""The service layer from Python, without click: plan, apply and drift against a real sandbox.

What the CLI does is reachable as plain functions returning result objects;
the interactive parts (showing a prepared plan, the ``yes`` prompt, progress)
are the caller's callbacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioner.apply.report import ChangeResult
from provisioner.errors import RefusedError
from provisioner.model import Config
from provisioner.service.apply import (
    AppliedOrganization,
    ApplyOptions,
    PreparedOrganization,
    apply_orgs,
)
from provisioner.service.drift import DriftOptions, drift_orgs
from provisioner.service.plan import PlanOptions, plan_orgs
from provisioner.service.runner import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Outcome, load_organizations
from tests.support import TOKEN_ENV, Api, org_config

INVITE_BOB = """\
users:
  - {email: admin@example.com, role: admin}
  - {email: bob@example.com, role: developer}
"""
# Leaves out the key's own user: the guards refuse it.
REMOVE_ADMIN = """\
users:
  - {email: carol@example.com, role: admin}
  - {email: dan@example.com, role: admin}
"""


class Recorder:
    """``ApplyEvents`` that remembers what a person would have seen and answers ``answer``."""

    def __init__(self, answer: Callable[[], None] = lambda: None):
        self.answer = answer
        self.shown: list[Outcome[PreparedOrganization]] = []
        self.asked = 0
        self.reports: list[AppliedOrganization] = []

    def prepared(self, outcome: Outcome[PreparedOrganization], many: bool) -> None:
        self.shown.append(outcome)

    def confirm(self) -> None:
        self.asked += 1
        self.answer()

    def progress(self, prepared: PreparedOrganization) -> Callable[[ChangeResult], None] | None:
        return None

    def applied(self, applied: AppliedOrganization, many: bool) -> None:
        self.reports.append(applied)


def _refuse() -> None:
    raise RefusedError("apply cancelled: nothing was changed")


@pytest.fixture
def load(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[Config]]:  # noqa: ANN001
    monkeypatch.setenv(TOKEN_ENV, sandbox.token)

    def write(*bodies: str) -> list[Config]:
        paths = []
        for i, body in enumerate(bodies):
            path = tmp_path / f"org{i}.yaml"
            path.write_text(org_config(sandbox.base_url, body))
            paths.append(str(path))
        return load_organizations(paths)

    return write


def test_plan_orgs_returns_plans_and_changes_nothing(load, api: Api) -> None:  # noqa: ANN001
    run = plan_orgs(load(INVITE_BOB), PlanOptions())
    [result] = run.results
    assert [c.key for c in result.planned.plan.changes] == ["bob@example.com"]
    assert run.exit_code() == EXIT_CHANGES
    assert run.exit_code(changes_exit=False) == EXIT_OK
    assert "bob@example.com" not in api.users()


def test_a_refused_plan_is_kept_beside_its_refusal(load) -> None:  # noqa: ANN001
    run = plan_orgs(load(REMOVE_ADMIN), PlanOptions())
    [outcome] = run.outcomes
    assert outcome.result is not None and not outcome.result.planned.plan.empty
    assert outcome.error is not None and "owner of the API key" in str(outcome.error)
    assert run.exit_code() == EXIT_ERROR


def test_every_organization_is_checked_before_any_is_applied(load, api: Api) -> None:  # noqa: ANN001
    events = Recorder()
    with pytest.raises(RefusedError, match="an organization above was refused"):
        apply_orgs(load(INVITE_BOB, REMOVE_ADMIN), ApplyOptions(auto_approve=True), events)
    assert [o.failed for o in events.shown] == [False, True]
    assert events.reports == []
    assert "bob@example.com" not in api.users()


def test_the_confirmation_is_the_callers_callback(load, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    configs = load(INVITE_BOB)
    declined = Recorder(answer=_refuse)
    with pytest.raises(RefusedError, match="cancelled"):
        apply_orgs(configs, ApplyOptions(), declined)
    assert declined.asked == 1
    assert "bob@example.com" not in api.users()

    audit = tmp_path / "audit.jsonl"
    approved = Recorder()
    run = apply_orgs(configs, ApplyOptions(audit_log=str(audit)), approved)
    assert approved.asked == 1
    [applied] = run.applied
    assert [r.change.key for r in applied.report.applied] == ["bob@example.com"]
    assert applied.record is not None and applied.record.pin is not None
    assert json.loads(audit.read_text())["applied_digest"] == applied.record.pin.applied_digest
    assert run.exit_code == EXIT_OK
    assert "bob@example.com" in api.users()


def test_drift_orgs_reports_drift_without_changing_anything(load, api: Api) -> None:  # noqa: ANN001
    run = drift_orgs(load(INVITE_BOB), DriftOptions())
    [result] = run.results
    assert result.report.drifted and not result.unrecorded
    assert run.exit_code() == EXIT_CHANGES
    assert "bob@example.com" not in api.users()
