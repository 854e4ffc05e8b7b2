"""The README's second quickstart, run as printed: an integrations-only config on the embedded sandbox."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One README line: ``NAME=value ... .venv/bin/provisioner ARGS``, with this interpreter."""
    words = shlex.split(line)
    assignments = [w for w in words if re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w)]
    command = words[len(assignments) :]
    assert command[0] == ".venv/bin/provisioner", line
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env.update(dict(a.split("=", 1) for a in assignments))
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *command[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_integrations_quickstart_runs_as_printed(tmp_path: Path) -> None:
    (block,) = [b for b in BLOCKS if "examples/integrations.yaml" in b]
    (line,) = block.strip().splitlines()
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "integrations.yaml", tmp_path / "examples")
    applied = _run(line, tmp_path)
    output = applied.stdout + applied.stderr
    assert applied.returncode == 0, output
    assert "Applied 2, failed 0, skipped 0." in output
    assert "/api/v2/zoom-oauth-apps/" in output  # the webhook URL to set in each Zoom app
    for secret in ("cs-staging", "cs-production", "ws-staging", "ws-production"):
        assert secret not in output
    # The same command as a plan: nothing left to do.
    again = _run(
        line.replace(" apply ", " plan ").replace(" --auto-approve", " --detailed-exitcode"), tmp_path
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout
