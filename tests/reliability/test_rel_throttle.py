"""Point 3: throttling. Retry-After is honoured (the wait is recorded, not slept);
one above the cap aborts with a message naming both; a persistent 503 stops
after the maximum number of attempts and the CLI reports what was applied."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from provisioner.api.client import ApiClient
from provisioner.errors import RateLimitedError
from tests.local_server import LocalServer, Reply, Seen
from tests.reliability.rel_support import FAST_ENV, run_cli, snapshot, upstream_of, write_config
from tests.reliability.test_rel_crash import DESIRED_BODY, seeded_db
from tests.support import Api

ME = {
    "user_id": "u1",
    "email": "admin@example.com",
    "role": "admin",
    "organization": {"id": "o1", "name": "sandbox", "region": "us-east-1", "workspace_limit": 50},
}


def scripted(replies: list[Reply]) -> LocalServer:
    lock = threading.Lock()

    def decide(seen: Seen) -> Reply:
        with lock:
            return replies.pop(0) if replies else Reply(200, {"ok": True})

    return LocalServer(decide)


@pytest.fixture
def recorded_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits urllib3's Retry asks for, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda s: waits.append(s))
    return waits


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_2_is_honoured(recorded_waits: list[float], status: int) -> None:
    with scripted(
        [Reply(status, {"detail": "slow down"}, {"Retry-After": "2"}), Reply(200, {"id": "x"})]
    ) as server:
        with ApiClient(server.base_url, "k") as client:
            body, _ = client.get("/me/")
        assert body == {"id": "x"}
        assert len(server.seen) == 2
    assert recorded_waits == [2.0]


def test_retry_after_above_the_cap_aborts_at_once_through_the_cli(tmp_path: Path) -> None:
    with scripted([Reply(429, {"detail": "throttled"}, {"Retry-After": "120"})] * 10) as server:
        config = write_config(tmp_path / "org.yaml", server.base_url, "users: []\n")
        started = time.monotonic()
        result = run_cli(tmp_path, "key", "plan", "-c", config)
        elapsed = time.monotonic() - started
        paths = [s.path for s in server.seen]
        assert paths and len(paths) == len(set(paths))  # no request was tried twice: no waiting
    assert result.returncode == 1
    assert "wait 120 s" in result.stderr and "60 s cap" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 30


def test_the_cap_can_be_lowered_from_the_environment(tmp_path: Path) -> None:
    with scripted([Reply(429, {"detail": "throttled"}, {"Retry-After": "10"})] * 10) as server:
        config = write_config(tmp_path / "org.yaml", server.base_url, "users: []\n")
        result = run_cli(tmp_path, "key", "plan", "-c", config, env={"PROVISIONER_MAX_RETRY_AFTER": "5"})
    assert result.returncode == 1
    assert "wait 10 s" in result.stderr and "5 s cap" in result.stderr, result.stderr


def test_a_bad_limit_variable_is_a_clean_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "org.yaml", "http://127.0.0.1:9/api/v1", "users: []\n")
    result = run_cli(tmp_path, "key", "plan", "-c", config, env={"PROVISIONER_MAX_RETRIES": "many"})
    assert result.returncode == 1
    assert "PROVISIONER_MAX_RETRIES" in result.stderr and "Traceback" not in result.stderr


def test_cap_error_in_process_names_wait_and_cap(recorded_waits: list[float]) -> None:
    with scripted([Reply(429, {}, {"Retry-After": "61"})]) as server:
        with ApiClient(server.base_url, "k") as client, pytest.raises(RateLimitedError) as caught:
            client.get("/me/")
    assert "61 s" in str(caught.value) and "60 s cap" in str(caught.value)
    assert recorded_waits == []


def test_persistent_503_stops_after_max_attempts_and_reports_what_was_applied(
    hooked_sandbox, tmp_path: Path
) -> None:  # noqa: ANN001
    sandbox, _ = hooked_sandbox(db_path=seeded_db(tmp_path, "503"))
    passed = {"writes": 0}
    lock = threading.Lock()

    def decide(seen: Seen) -> Reply | None:
        if seen.method not in ("POST", "PATCH", "DELETE"):
            return None
        with lock:
            passed["writes"] += 1
            if passed["writes"] <= 2:
                return None  # the first two writes go through
        return Reply(503, {"code": "service_unavailable", "detail": "down for maintenance"})

    with LocalServer(decide, upstream=upstream_of(sandbox)) as proxy:
        config = write_config(tmp_path / "org.yaml", proxy.base_url, DESIRED_BODY)
        result = run_cli(
            tmp_path,
            sandbox.token,
            "apply",
            "-c",
            config,
            "--auto-approve",
            "--parallelism",
            "1",
            env=FAST_ENV,
        )
        third = [s for s in proxy.seen if s.method == "POST"][2]
        attempts_of_third = [s for s in proxy.seen if s.method == "POST" and s.body == third.body]
    assert result.returncode == 1
    assert "Applied 2, failed " in result.stdout, result.stdout
    assert "503" in result.stdout + result.stderr
    assert "after 4 attempts" in result.stdout  # PROVISIONER_MAX_RETRIES=3: 1 + 3
    assert len(attempts_of_third) == 4
    assert "Traceback" not in result.stderr
    state = snapshot(Api(sandbox.base_url, sandbox.token))
    assert {"dan@acme.com", "eve@acme.com"} <= set(state.users)  # the two applied invites
    assert "frank@acme.com" not in state.users
