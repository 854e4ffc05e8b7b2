"""Fixtures for the HTTP client tests (a real server: see tests/local_server.py for why)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.local_server import ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits urllib3's Retry (and our pacer) ask for, without sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda s: recorded.append(s))
    return recorded
