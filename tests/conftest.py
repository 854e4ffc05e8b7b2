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
