"""The client on Recall.ai's v2 API: pacing to the published limits (token buckets per key and class, Retry-After honoured), and the WAF's 403."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from provisioner.api.client import ApiClient
from provisioner.api.pacing import LIST, OTHER, Pacing, TokenBucket
from provisioner.sandbox import RunningSandbox
from provisioner.sandbox.limits import PublishedLimits


def test_a_bucket_spends_its_burst_then_waits_one_interval_per_request() -> None:
    now = [100.0]
    bucket = TokenBucket(capacity=3, rate=2.0, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [bucket.reserve() for _ in range(2)] == [0.5, 1.0]  # booked in order, never overlapping
    now[0] += 1.0
    assert bucket.reserve() == 0.5


def test_retry_after_holds_the_bucket_for_every_thread() -> None:
    now = [0.0]
    bucket = TokenBucket(capacity=10, rate=1.0, clock=lambda: now[0])
    bucket.hold(7.0)
    assert bucket.reserve() == pytest.approx(8.0)  # the 7 s asked, then its own token


def test_keys_have_their_own_buckets_and_only_a_digest_is_kept() -> None:
    slept: list[float] = []
    pacing = Pacing(per_minute={LIST: 2, OTHER: 10}, clock=lambda: 0.0, sleep=slept.append)
    for _ in range(3):
        pacing.wait("key-a", "GET", "/zoom-oauth-apps/")
    pacing.wait("key-b", "GET", "/zoom-oauth-apps/")
    assert len(slept) == 1  # a's third list waited (a burst of a minute's 2); b's first did not
    assert all("key-a" not in str(k) for k in pacing._buckets)


def test_a_paced_client_gets_no_429_from_a_limited_sandbox(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    # One made-up clock for both sides: the client's waits move it, so a few minutes
    # of published limits pass in no time, and exactly.
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    sandbox = make_sandbox(recall_limits=True)
    sandbox.app.v2.limits = PublishedLimits(clock=lambda: now[0])
    pacing = Pacing(clock=lambda: now[0], sleep=sleep)
    keys = [sandbox.workspace_key(f"app-{n}") for n in range(3)]
    clients = [ApiClient(sandbox.url + "/api/v2", key, pacing=pacing, page_size=None) for key in keys]
    for _ in range(100):  # above a minute's 60 lists for every key, and in turns
        for client in clients:
            client.list_all("/zoom-oauth-apps/")
    stats = sandbox.stats()
    assert stats["by_route"]["GET /api/v2/zoom-oauth-apps/"] == 300
    assert stats["throttled"] == 0
    # Close to what the limits allow: the 40 lists beyond a key's burst of 60, at 0.95 a second.
    assert 40 / 0.95 <= now[0] <= 40 / 0.95 + 1


def test_without_pacing_the_same_load_is_throttled_and_retry_after_is_honoured(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sandbox = make_sandbox(recall_limits=True)
    sandbox.app.v2.limits = PublishedLimits(per_minute=(60, 300))
    client = ApiClient(
        sandbox.url + "/api/v2", sandbox.workspace_key("app-0"), page_size=None, max_retry_after=2
    )
    for _ in range(60):
        client.list_all("/zoom-oauth-apps/")
    assert sandbox.stats()["throttled"] == 0
    client.list_all("/zoom-oauth-apps/")  # the 61st: 429, Retry-After 1, retried and answered
    assert sandbox.stats()["throttled"] == 1


def test_the_waf_403_says_firewall_not_permission(make_sandbox: Callable[..., RunningSandbox]) -> None:
    from provisioner.errors import PermissionDeniedError

    sandbox = make_sandbox()
    client = ApiClient(sandbox.url + "/api/v2", sandbox.workspace_key("app-0"), page_size=None)
    try:
        client.post(
            "/google-login-groups/",
            {"name": "http://localhost/", "login_mode": "always"},
            idempotency_key="k",
        )
    except PermissionDeniedError as refused:
        assert "firewall (WAF)" in str(refused) and "not a key problem" in str(refused)
    else:
        raise AssertionError("the WAF let a payload naming localhost through")
