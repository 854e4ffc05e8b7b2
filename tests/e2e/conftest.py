"""End-to-end fixtures: the real CLI, in a subprocess, against a sandbox on loopback.

The helpers themselves (``Cli``, ``Api``, ``org_config``, ``TOKEN_ENV``) live in
``tests/support.py``; import them from there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Api, Cli


@pytest.fixture
def api(sandbox) -> Api:  # noqa: ANN001
    return Api(sandbox.base_url, sandbox.token)


@pytest.fixture
def cli(sandbox, tmp_path: Path) -> Cli:  # noqa: ANN001
    return Cli(tmp_path, sandbox.token)
