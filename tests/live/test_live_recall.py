"""A read-only smoke test against a real Recall.ai region (``pytest -m live``).

For users who want to check their own account: with a workspace's API key
(made in that workspace's dashboard) it runs ``provisioner plan`` on an
integrations-only config of that one workspace, declaring nothing. The plan
reads the workspace's Zoom OAuth apps through the v2 API and, since nothing
is declared, must find nothing to change. It never applies.

    PROVISIONER_LIVE_REGION=us-east-1 PROVISIONER_LIVE_API_KEY=... pytest -m live

The key reaches only its own workspace; the plan sends no write.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import Cli

pytestmark = pytest.mark.live

REGIONS = ("us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1")


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"`pytest -m live` needs {name}; set it (see tests/live/test_live_recall.py)")
    return value


def test_a_read_only_plan_against_a_real_region_finds_nothing_to_change(tmp_path: Path) -> None:
    region = _required("PROVISIONER_LIVE_REGION")
    assert region in REGIONS, f"PROVISIONER_LIVE_REGION must be one of {', '.join(REGIONS)}"
    key = _required("PROVISIONER_LIVE_API_KEY")
    config = tmp_path / "live.yaml"
    config.write_text(
        "version: 1\n"
        f"organization: {{region: {region}, workspace_token_env: PROVISIONER_LIVE_API_KEY}}\n"
        "workspaces:\n  - name: live\n"
    )
    result = Cli(tmp_path, token="", env={"PROVISIONER_LIVE_API_KEY": key})(
        "plan", "--detailed-exitcode", "-c", str(config), "-v"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "No changes" in output
    assert "GET /api/v2/zoom-oauth-apps/ 200" in output  # -v logs each request: it read the v2 API
    assert key not in output
