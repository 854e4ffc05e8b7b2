"""Fixtures of the reliability suite (see rel_support.py for the helpers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.sandbox import RunningSandbox, start_sandbox
from tests.reliability.rel_support import HookChain


@pytest.fixture
def hooked_sandbox(
    tmp_path: Path, contract_checker
) -> Iterator[Callable[..., tuple[RunningSandbox, HookChain]]]:  # noqa: ANN001
    """``hooked_sandbox(db_path=..., **knobs)`` -> (sandbox, hooks): a sandbox whose
    responses go to the contract checker and then to hooks the test adds."""
    started: list[RunningSandbox] = []

    def make(**kwargs: Any) -> tuple[RunningSandbox, HookChain]:
        db_path = kwargs.pop("db_path", tmp_path / f"rel-{len(started)}.db")
        chain = HookChain(contract_checker)
        running = start_sandbox(db_path, response_hook=chain, **kwargs)
        started.append(running)
        return running, chain

    yield make
    for running in started:
        running.stop()
    assert not contract_checker.violations, "contract violations:\n" + "\n".join(
        str(v) for v in contract_checker.violations
    )
