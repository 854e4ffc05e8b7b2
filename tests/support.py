"""Helpers shared across the suite: the real CLI in a subprocess, a raw sandbox client, configs.

A plain module, not a conftest: test modules and other helpers
(``tests/reliability/rel_support.py``, ``tests/hostile/check_*.py``) import it
as ``tests.support``. The fixtures that wrap these live in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_ENV = "PROVISIONER_TEST_KEY"
# The variables examples/quickstart.yaml's secret references name (as the README sets them).
QUICKSTART_KEYS = {
    "DEEPGRAM_KEY_DEVELOPMENT": "dev-key",
    "DEEPGRAM_KEY_STAGING": "staging-key",
    "DEEPGRAM_KEY_PRODUCTION": "prod-key",
}


@dataclass
class Cli:
    """Runs `python -m provisioner ...` with the sandbox's admin key in the environment."""

    cwd: Path
    token: str
    env: dict[str, str] | None = None  # set for every run (extra_env adds to it)

    def __call__(
        self,
        *args: str,
        token: str | None = None,
        input: str | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
        env[TOKEN_ENV] = self.token if token is None else token
        env["NO_COLOR"] = "1"
        # A test reads in full unless it asks for the snapshot (PROVISIONER_NO_CACHE="").
        env["PROVISIONER_NO_CACHE"] = "1"
        env.update(self.env or {})
        env.update(extra_env or {})
        return subprocess.run(
            [sys.executable, "-m", "provisioner", *args],
            cwd=self.cwd,
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def org_config(api_url: str, body: str, *, name: str | None = None) -> str:
    """A config for the sandbox at ``api_url`` with ``body`` (YAML, dedented) appended."""
    org = f"organization:\n  api_url: {api_url}\n  token_env: {TOKEN_ENV}\n"
    if name:
        org += f"  name: {name}\n"
    return "version: 1\n" + org + textwrap.dedent(body)


class Api:
    """A tiny raw client for arranging and inspecting sandbox state in tests."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict]:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None), dict(resp.headers)
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, (json.loads(raw) if raw else None), dict(error.headers)

    def list(self, path: str) -> list[dict]:
        out: list[dict] = []
        url: str | None = f"{self.base_url}{path}?page_size=100"
        while url:
            status, page, _ = self.request("GET", url)
            assert status == 200, page
            out += page["results"]
            url = page["next"]
        return out

    def users(self) -> dict[str, dict]:
        return {u["email"]: u for u in self.list("/users/")}

    def workspaces(self) -> dict[str, dict]:
        return {w["name"]: w for w in self.list("/workspaces/")}

    def memberships(self) -> set[tuple[str, str]]:
        users = {u["id"]: u["email"] for u in self.list("/users/")}
        spaces = {w["id"]: w["name"] for w in self.list("/workspaces/")}
        rows = self.list("/workspace_memberships/")
        pairs = [(spaces[m["workspace_id"]], users[m["user_id"]]) for m in rows]
        assert len(pairs) == len(set(pairs)), f"duplicate memberships: {pairs}"
        return set(pairs)
