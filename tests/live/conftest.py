"""Live tests talk to a real Recall.ai region: never selected unless asked for with ``-m live``.

A plain ``pytest`` run deselects them here (they are not skipped: they are not
part of the run at all). ``pytest -m live`` runs them; they then need
``PROVISIONER_LIVE_REGION`` and ``PROVISIONER_LIVE_API_KEY`` and fail, not
skip, without them: someone who asked for a live check must not get a green
run that checked nothing.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "live" in (config.getoption("markexpr", "") or ""):
        return
    live = [item for item in items if item.get_closest_marker("live") is not None]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if item.get_closest_marker("live") is None]
