"""Shared fixtures for the whole suite.

The network guard below makes every test fail loudly if it tries to connect
anywhere but loopback: tests and benchmarks talk only to 127.0.0.0/8 and ::1.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:  # AF_UNIX paths and the like are local by nature
        return True
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address):  # noqa: ANN001
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test network guard: refusing to connect to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address):  # noqa: ANN001
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test network guard: refusing to connect to {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection that is not to loopback, in every test."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


@pytest.fixture(autouse=True)
def own_cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's CLI runs keep their state snapshots in a folder of the test's own, never in ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


# --- the sandbox, checked against the contract --------------------------------
#
# Every response served to a test through these fixtures is validated against
# schemas/openapi.yaml; a test fails at teardown if any response broke it.

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from provisioner.sandbox import RunningSandbox, start_sandbox  # noqa: E402
from tests.contract import ContractChecker  # noqa: E402


@pytest.fixture
def contract_checker() -> ContractChecker:
    """A fresh recorder of contract violations."""
    return ContractChecker()


@pytest.fixture
def make_sandbox(
    tmp_path: Path, contract_checker: ContractChecker
) -> Iterator[Callable[..., RunningSandbox]]:
    """Start sandboxes with custom knobs: ``make_sandbox(rate_limit=2)``.

    Each gets a fresh db in ``tmp_path`` unless ``db_path`` is given; all are
    stopped at teardown, then the test fails if any response broke the contract.
    """
    started: list[RunningSandbox] = []

    def make(**kwargs: Any) -> RunningSandbox:
        db_path = kwargs.pop("db_path", tmp_path / f"sandbox-{len(started)}.db")
        running = start_sandbox(db_path, response_hook=contract_checker, **kwargs)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
    assert not contract_checker.violations, "contract violations:\n" + "\n".join(
        str(v) for v in contract_checker.violations
    )


@pytest.fixture
def sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A sandbox on a fresh db, no knobs; every response is checked against the contract."""
    return make_sandbox()
