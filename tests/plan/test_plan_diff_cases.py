"""Table-driven diff tests: one data file per case in cases/, one generic runner.

A case file holds ``current``, ``desired``, optional ``policy`` and ``now``,
and ``expected``: the changes as ``(action, type, key, cascade)`` in plan
order, the warnings (each expected text must be contained in the warning at
the same position; the number must match) and ``expiring_soon`` keys.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.plan.diff import diff
from provisioner.plan.model import describe_warning
from tests.plan.plan_testkit import CASES, policy_from_data, state_from_data

CASE_FILES = sorted(CASES.glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_there_are_cases() -> None:
    assert len(CASE_FILES) >= 14


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path) -> None:
    case = _load(path)
    expected = case["expected"]
    plan = diff(
        state_from_data(case.get("current")),
        state_from_data(case.get("desired")),
        policy_from_data(case.get("policy")),
        now=datetime.fromisoformat(case["now"]),
    )

    got = [
        {"action": c.action.value, "type": c.type.value, "key": c.key, "cascade": c.cascade}
        for c in plan.changes
    ]
    want = [{"cascade": False, **c} for c in expected["changes"]]
    assert got == want, case["description"]

    want_warnings = expected.get("warnings", [])
    assert len(plan.warnings) == len(want_warnings), plan.warnings
    for text, warning in zip(want_warnings, plan.warnings):
        assert text in describe_warning(warning)

    assert [f"{m.workspace}/{m.user}" for m in plan.expiring_soon] == expected.get("expiring_soon", [])
