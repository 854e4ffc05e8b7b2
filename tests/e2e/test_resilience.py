"""apply under injected faults and rate limits, end to end through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Api, Cli, org_config

BODY = """
environments:
  development: {members: ["@team"]}
  production: {members: [u0@acme.com, u1@acme.com]}
users:
  - {email: admin@example.com, role: admin}
  - {email: u0@acme.com, role: admin}
USERS
groups:
  team: [TEAM]
workspaces:
  - name: app
    environments: [development, production]
  - name: tools
    environments: [development, production]
"""


def body(n: int = 12) -> str:
    users = "\n".join(f"  - {{email: u{i}@acme.com, role: developer}}" for i in range(1, n))
    team = ", ".join(f"u{i}@acme.com" for i in range(n))
    return BODY.replace("USERS", users).replace("TEAM", team)


def desired_memberships(n: int = 12) -> set[tuple[str, str]]:
    dev = {(f"{w}-development", f"u{i}@acme.com") for w in ("app", "tools") for i in range(n)}
    prod = {(f"{w}-production", f"u{i}@acme.com") for w in ("app", "tools") for i in (0, 1)}
    return dev | prod


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_apply_under_fail_rate_converges_without_duplicates(make_sandbox, tmp_path: Path, seed: int) -> None:  # noqa: ANN001
    clean = make_sandbox()
    # A second server on the same database injects faults; the clean one is for checking.
    faulty = make_sandbox(db_path=clean.db_path, fail_rate=0.2, seed=seed)
    path = tmp_path / "org.yaml"
    path.write_text(org_config(faulty.base_url, body()))
    cli = Cli(tmp_path, faulty.token)
    api = Api(clean.base_url, clean.token)

    runs = []
    for _ in range(4):  # each run either converges or fails cleanly and leaves the rest to the next
        result = cli("apply", "-c", str(path), "--auto-approve")
        runs.append(result)
        assert "Traceback" not in result.stderr
        # Nothing that exists is ever removed: this plan only adds.
        assert {"admin@example.com", "u0@acme.com"} <= set(api.users())
        if result.returncode == 0:
            break
    assert runs[-1].returncode == 0, [r.stdout + r.stderr for r in runs]
    assert set(api.users()) == {"admin@example.com"} | {f"u{i}@acme.com" for i in range(12)}
    assert set(api.workspaces()) == {
        "app-development",
        "app-production",
        "tools-development",
        "tools-production",
    }
    assert api.memberships() == desired_memberships()  # also asserts no duplicate membership
    final = Cli(tmp_path, clean.token)
    path.write_text(org_config(clean.base_url, body()))
    assert final("plan", "-c", str(path), "--detailed-exitcode").returncode == 0


def test_rate_limit_is_honoured(make_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    limited = make_sandbox(rate_limit=20)
    path = tmp_path / "org.yaml"
    path.write_text(org_config(limited.base_url, body(30)))
    cli = Cli(tmp_path, limited.token)
    limited.reset_stats()
    result = cli("apply", "-c", str(path), "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    stats = limited.stats()
    # Pacing keeps the client under the limit: (almost) no request is answered 429,
    # and no change failed.
    assert stats["total"] >= 60
    assert "failed 0" in result.stdout
    assert stats["throttled"] < 0.01 * stats["total"]
    assert Cli(tmp_path, limited.token)("plan", "-c", str(path), "--detailed-exitcode").returncode == 0
