"""The hostile-input corpus: one file per case under ``tests/data/hostile/``, one runner.

Each case is a YAML document with at least:

* ``kind`` -- which check runs it (the keys of ``CHECKS`` below);
* ``attacker`` -- ``pr-author``, ``out-of-band`` or ``endpoint`` (docs/threat-model.md);
* ``promise`` -- the number of the promise in docs/threat-model.md it keeps;
* ``description`` -- what the attack tries, in one sentence;

and the fields its kind needs (a ``config`` text, server-side names, a URL, ...).
Strings use YAML double quotes with escapes (``"\\x1b[2K"``, ``"\\u200b"``) so
that every hostile byte is visible in the case file itself.

The checks live beside this runner, one module per area, each exporting a
``CHECKS`` mapping ``kind -> check(case, tmp_path)``; the runner merges them
explicitly, so a kind is never looked up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hostile import check_drift, check_input, check_output, check_review, check_transport

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
ATTACKERS = {"pr-author", "out-of-band", "endpoint"}

Check = Callable[[dict[str, Any], Path], None]
CHECKS: dict[str, Check] = {}
for module in (check_output, check_input, check_transport, check_drift, check_review):
    overlap = CHECKS.keys() & module.CHECKS.keys()
    assert not overlap, f"kinds defined twice: {overlap}"
    CHECKS.update(module.CHECKS)

CASES = sorted(CORPUS.glob("*.yaml"))


def load_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(case, dict), f"{path.name}: a case is a mapping"
    return case


def test_the_corpus_is_large_and_well_formed() -> None:
    assert len(CASES) >= 40, f"the hostile corpus has {len(CASES)} cases; it needs at least 40"
    for path in CASES:
        case = load_case(path)
        assert case.get("kind") in CHECKS, f"{path.name}: unknown kind {case.get('kind')!r}"
        assert case.get("attacker") in ATTACKERS, f"{path.name}: attacker must be one of {ATTACKERS}"
        assert case.get("promise"), f"{path.name}: which promise of docs/threat-model.md?"
        assert case.get("description"), f"{path.name}: say what the attack tries"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_hostile_case(path: Path, tmp_path: Path) -> None:
    case = load_case(path)
    CHECKS[case["kind"]](case, tmp_path)
