"""A 10,000-user / 100,000-membership config loads within 3x a bare yaml.load."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from provisioner.config import load_config

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _big_config() -> str:
    lines = ["version: 1", "organization: {region: us-east-1}", "users:"]
    lines += [f"  - {{email: user{i}@acme.com, role: developer}}" for i in range(10_000)]
    lines.append("workspaces:")
    for w in range(50):
        lines.append(f"  - name: ws{w}\n    members:")
        for j in range(2_000):
            user = f"user{(w * 37 + j) % 10_000}@acme.com"
            lines.append(f"      - {{user: {user}, expires: 2026-12-31, reason: x}}"
                         if j % 10 == 0 else f"      - {user}")
    return "\n".join(lines) + "\n"


def test_large_config_is_fast(tmp_path: Path) -> None:
    text = _big_config()
    path = tmp_path / "big.yaml"
    path.write_text(text)
    start = time.perf_counter()
    yaml.load(text, Loader=_Loader)
    bare = time.perf_counter() - start
    start = time.perf_counter()
    config = load_config(path)
    ours = time.perf_counter() - start
    assert len(config.desired.users) == 10_000
    assert len(config.desired.memberships) == 100_000
    assert ours <= 3 * bare, (ours, bare)
