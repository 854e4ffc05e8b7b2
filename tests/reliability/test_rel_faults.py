"""Point 2: ambiguous failures. With 30% of requests failing (500, 503, dropped
connections; half of the failed writes committed before failing), apply
converges within 2 runs to exactly the desired state, with no duplicates.

5 seeds here; ``benchmarks/soak.py`` runs 50.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.rel_support import apply_under_faults
from tests.reliability.test_rel_crash import (
    DESIRED_BODY,
    DESIRED_MEMBERSHIPS,
    DESIRED_USERS,
    DESIRED_WORKSPACES,
    K,
)


@pytest.mark.parametrize("fault_seed", range(5))
def test_apply_converges_within_two_runs_under_ambiguous_faults(
    tmp_path: Path, contract_checker, fault_seed: int
) -> None:  # noqa: ANN001
    outcome = apply_under_faults(tmp_path, fault_seed, DESIRED_BODY, hook=contract_checker)
    # 12 changes cost 12 writes without faults: more means writes failed and were retried.
    assert outcome.writes_received > K, outcome
    # Alone against the API, a retried create is replayed through its Idempotency-Key
    # and reported as made by this run; "already existed" would mean it was sent anew.
    assert not [n for n in outcome.notes if n.startswith("already existed")], outcome.notes
    assert outcome.exit_codes[-1] == 0, outcome
    assert outcome.final.clean(), outcome.final
    assert outcome.final.users == DESIRED_USERS
    assert outcome.final.workspaces == DESIRED_WORKSPACES
    assert outcome.final.memberships == DESIRED_MEMBERSHIPS
    assert outcome.plan_exit == 0
    assert not contract_checker.violations, contract_checker.violations
