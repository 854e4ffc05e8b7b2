"""Latency, rate limiting, fault injection and the request counters."""

from __future__ import annotations

import time

import pytest
import requests

from provisioner.sandbox.knobs import (
    FAULT_500,
    FAULT_503,
    FAULT_DROP,
    FAULT_KINDS,
    FaultInjector,
    RateLimiter,
)
from tests.sandbox.conftest import Api


def seed_for(kind: str, *, is_write: bool, commit_first: bool = False) -> int:
    """A seed whose first decision at fail_rate=1.0 is ``kind`` (found with a twin injector)."""
    for seed in range(1000):
        fault = FaultInjector(1.0, seed).decide(is_write)
        if fault is not None and fault.kind == kind and fault.commit_first == commit_first:
            return seed
    raise AssertionError(f"no seed gives {kind}")


def test_rate_limit_answers_429_with_retry_after(make_sandbox) -> None:
    sandbox = make_sandbox(rate_limit=1)
    api = Api(sandbox.base_url, sandbox.token)
    first, second = api.get("/me/"), api.get("/me/")
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "1"
    assert first.headers["X-RateLimit-Remaining"] == "0"
    assert second.status_code == 429
    assert second.json()["code"] == "throttled"
    assert int(second.headers["Retry-After"]) >= 1
    assert sandbox.stats()["by_route"]["GET /api/v1/me/"] == 2  # 429s are counted
    assert sandbox.stats()["throttled"] == 1


def test_rate_limit_is_per_key(make_sandbox) -> None:
    sandbox = make_sandbox(rate_limit=1)
    assert Api(sandbox.base_url, sandbox.token).get("/me/").status_code == 200
    # Another (unknown) key has its own budget: it gets its 401, not a 429.
    assert Api(sandbox.base_url, "other").get("/me/").status_code == 401


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.take("k").allowed for _ in range(3)] == [True, True, False]
    assert limiter.take("k").retry_after == 1
    now[0] = 0.5
    assert limiter.take("k").allowed


def test_fault_decisions_are_deterministic_given_the_seed() -> None:
    def run(seed: int) -> list:
        injector = FaultInjector(0.5, seed)
        return [injector.decide(n % 2 == 0) for n in range(200)]

    decisions = run(7)
    assert decisions == run(7)
    assert decisions != run(8)
    faults = [d for d in decisions if d is not None]
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    assert 60 < len(faults) < 140
    assert not any(f.commit_first for n, f in enumerate(decisions) if f and n % 2 == 1), "reads never commit"


def test_injected_500(make_sandbox) -> None:
    sandbox = make_sandbox(fail_rate=1.0, seed=seed_for(FAULT_500, is_write=False))
    response = Api(sandbox.base_url, sandbox.token).get("/users/")
    assert (response.status_code, response.json()["code"]) == (500, "server_error")


def test_injected_503_has_retry_after(make_sandbox) -> None:
    sandbox = make_sandbox(fail_rate=1.0, seed=seed_for(FAULT_503, is_write=False))
    response = Api(sandbox.base_url, sandbox.token).get("/users/")
    assert (response.status_code, response.json()["code"]) == (503, "service_unavailable")
    assert response.headers["Retry-After"] == "1"


def test_injected_dropped_connection(make_sandbox) -> None:
    sandbox = make_sandbox(fail_rate=1.0, seed=seed_for(FAULT_DROP, is_write=False))
    with pytest.raises(requests.ConnectionError):
        Api(sandbox.base_url, sandbox.token).get("/users/")
    assert sandbox.stats()["by_route"] == {"GET /api/v1/users/": 1}


@pytest.mark.parametrize("commit_first", [True, False])
def test_a_failed_write_is_committed_exactly_when_decided(make_sandbox, tmp_path, commit_first: bool) -> None:
    db = tmp_path / "faulty.db"
    faulty = make_sandbox(
        db_path=db, fail_rate=1.0, seed=seed_for(FAULT_500, is_write=True, commit_first=commit_first)
    )
    response = Api(faulty.base_url, faulty.token).post(
        "/users/", {"email": "maybe@example.com", "role": "developer"}, headers={"Idempotency-Key": "once"}
    )
    assert response.status_code == 500
    faulty.stop()

    healthy = make_sandbox(db_path=db, token=faulty.token)
    api = Api(healthy.base_url, healthy.token)
    emails = [u["email"] for u in api.walk("/users/")]
    assert ("maybe@example.com" in emails) is commit_first
    # Retrying with the same key is safe either way: exactly one user results.
    retry = api.post(
        "/users/", {"email": "maybe@example.com", "role": "developer"}, headers={"Idempotency-Key": "once"}
    )
    assert retry.status_code == 201
    assert (retry.headers.get("Idempotent-Replayed") == "true") is commit_first
    assert [u["email"] for u in api.walk("/users/")].count("maybe@example.com") == 1


def test_sandbox_routes_are_never_faulted_counted_or_limited(make_sandbox) -> None:
    sandbox = make_sandbox(fail_rate=1.0, seed=1, rate_limit=1)
    for _ in range(3):
        response = Api(sandbox.base_url, sandbox.token).get("/_sandbox/stats")
        assert response.status_code == 200
    assert response.json() == {"total": 0, "by_route": {}, "throttled": 0}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/_sandbox/stats", "GET, HEAD"),
        ("DELETE", "/_sandbox/stats/reset", "POST"),
        ("PATCH", "/_sandbox/clock", "GET, HEAD, POST"),
    ],
)
def test_a_wrong_method_on_a_sandbox_route_is_a_405_never_faulted_counted_or_limited(
    make_sandbox, contract_checker, method: str, path: str, allow: str
) -> None:  # noqa: ANN001
    # Every API request here would be faulted (fail_rate=1) and the second throttled (rate 1/s).
    sandbox = make_sandbox(fail_rate=1.0, seed=seed_for(FAULT_500, is_write=True), rate_limit=1)
    api = Api(sandbox.base_url, sandbox.token)
    for _ in range(3):
        response = api.request(method, path)
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
        assert response.headers["Allow"] == allow
        assert "X-RateLimit-Limit" not in response.headers
    assert sandbox.stats() == {"total": 0, "by_route": {}, "throttled": 0}
    # The methods are no operation of the contract: the checker rightly notes each answer.
    assert len(contract_checker.violations) == 3
    contract_checker.violations.clear()


def test_stats_count_by_route_template_and_reset(sandbox, api: Api) -> None:
    user = api.post("/users/", {"email": "a@example.com", "role": "developer"}).json()
    api.patch(f"/users/{user['id']}/", {"role": "admin"})
    api.get("/users/")
    api.get("/users/")
    stats = api.get("/_sandbox/stats").json()
    assert stats == {
        "total": 4,
        "by_route": {"GET /api/v1/users/": 2, "PATCH /api/v1/users/{id}/": 1, "POST /api/v1/users/": 1},
        "throttled": 0,
    }
    assert sandbox.stats() == stats
    reset = api.post("/_sandbox/stats/reset")
    assert reset.json() == {"total": 0, "by_route": {}, "throttled": 0}
    assert sandbox.stats()["total"] == 0


def test_latency_is_added_to_every_response(make_sandbox) -> None:
    sandbox = make_sandbox(latency_ms=120)
    api = Api(sandbox.base_url, sandbox.token)
    started = time.perf_counter()
    assert api.get("/me/").status_code == 200
    assert time.perf_counter() - started >= 0.12
