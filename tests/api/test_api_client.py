"""ApiClient: retries, Retry-After, timeouts, redirects, pagination, errors, redaction."""

from __future__ import annotations

import logging

import pytest
import requests
import responses

from provisioner.api.client import ApiClient
from provisioner.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    TransportError,
)
from tests.local_server import Reply, ScriptedServer

BASE = "https://api.example.invalid/api/v1"
TOKEN = "tok-SENTINEL-5f1e0c"


def fast_client(base_url: str = BASE, **kw) -> ApiClient:
    kw.setdefault("backoff_factor", 0)
    return ApiClient(base_url, TOKEN, **kw)


# --- retries (against a real loopback server: urllib3 does the retrying) ------


def test_retry_after_is_honoured(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script = [Reply(429, {"detail": "slow down"}, {"Retry-After": "7"}), Reply(200, {"id": "me"})]
    body, _ = fast_client(server.base_url).get("/me/")
    assert body == {"id": "me"}
    assert len(server.seen) == 2
    assert sleeps == [7]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retry_statuses_are_retried_then_succeed(
    server: ScriptedServer, sleeps: list[float], status: int
) -> None:
    server.script = [Reply(status, {"detail": "x"}), Reply(status, {"detail": "x"}), Reply(200, {"ok": 1})]
    assert fast_client(server.base_url).get("/me/")[0] == {"ok": 1}
    assert len(server.seen) == 3


def test_attempts_are_capped_and_the_message_says_how_many(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.script = [Reply(503, {"detail": "down", "code": "unavailable"}) for _ in range(10)]
    with pytest.raises(ApiError) as err:
        fast_client(server.base_url, max_retries=3).get("/users/")
    assert len(server.seen) == 4
    assert err.value.status == 503
    assert "after 4 attempts" in str(err.value)
    assert "down" in str(err.value)


def test_backoff_is_capped_by_backoff_max(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script = [Reply(500) for _ in range(5)] + [Reply(200, {"ok": 1})]
    ApiClient(server.base_url, TOKEN, backoff_factor=4, backoff_max=5, max_retries=5).get("/me/")
    assert sleeps and max(sleeps) <= 5
    assert len(server.seen) == 6


def test_retry_after_over_the_cap_aborts(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script = [Reply(429, {"detail": "slow down"}, {"Retry-After": "600"}), Reply(200, {})]
    with pytest.raises(RateLimitedError) as err:
        fast_client(server.base_url, max_retry_after=60).get("/me/")
    assert "the API asked to wait 600 s, more than the 60 s cap; try later" in str(err.value)
    assert len(server.seen) == 1
    assert sleeps == []


def test_deadline_stops_retrying(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script = [Reply(503, headers={"Retry-After": "30"}), Reply(200, {})]
    with pytest.raises(TransportError) as err:
        fast_client(server.base_url, deadline=10).get("/me/")
    assert "10 s deadline" in str(err.value)
    assert len(server.seen) == 1 and sleeps == []


def test_dropped_connection_is_retried_for_post_with_the_same_idempotency_key(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.script = [Reply(drop=True), Reply(201, {"id": "u1"})]
    body = fast_client(server.base_url).post("/users/", {"email": "a@x.io"}, idempotency_key="k-1")
    assert body == {"id": "u1"}
    assert [s.headers.get("Idempotency-Key") for s in server.seen] == ["k-1", "k-1"]
    assert server.seen[0].body == server.seen[1].body


def test_read_timeouts_are_retried_then_transport_error(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script = [Reply(hang=True) for _ in range(3)]
    with pytest.raises(TransportError) as err:
        fast_client(server.base_url, read_timeout=0.2, max_retries=2).get("/me/")
    assert len(server.seen) == 3
    assert "after 3 attempts" in str(err.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_not_retried(
    server: ScriptedServer, sleeps: list[float], status: int
) -> None:
    server.script = [Reply(status, {"detail": "no", "code": "c"}), Reply(200, {})]
    with pytest.raises(ApiError) as err:
        fast_client(server.base_url).patch("/users/1/", {"role": "admin"}, if_match='"e1"')
    assert err.value.status == status
    assert len(server.seen) == 1


@responses.activate
@pytest.mark.parametrize("exc", [requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout])
def test_timeout_becomes_transport_error(exc: type[Exception]) -> None:
    responses.get(f"{BASE}/me/", body=exc("boom"))
    with pytest.raises(TransportError) as err:
        fast_client().get("/me/")
    assert "timed out" in str(err.value)
    assert err.value.method == "GET"


def test_timeouts_are_passed_to_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    client = fast_client(connect_timeout=3, read_timeout=11)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json={})
        client.get("/me/")
        assert rsps.calls[0].request.req_kwargs["timeout"] == (3, 11)


# --- where the key may go ------------------------------------------------------


def test_redirect_is_refused_and_its_target_never_requested() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/me/", status=302, headers={"Location": "https://evil.example.invalid/steal"})
        evil = rsps.get("https://evil.example.invalid/steal", json={})
        with pytest.raises(TransportError) as err:
            fast_client().get("/me/")
        rsps.assert_call_count("https://evil.example.invalid/steal", 0)
        assert evil.call_count == 0
    assert "the API redirected to evil.example.invalid; refusing to follow" in str(err.value)


def test_plain_http_to_remote_host_is_refused() -> None:
    with pytest.raises(TransportError) as err:
        ApiClient("http://example.com/api/v1", TOKEN)
    assert "refusing to send the API key to http://example.com/api/v1: it uses plain http" in str(err.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/api/v1", "http://localhost/api/v1", "http://[::1]:9/api/v1"]
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert ApiClient(url, TOKEN).base_url == url


def test_session_ignores_the_environment_and_verifies_tls() -> None:
    client = fast_client()
    assert client.session.trust_env is False
    assert client.session.verify is True


def test_netrc_and_proxy_env_do_not_apply(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.example.invalid login x password other-secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.invalid:3128")
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json={})
        fast_client().get("/me/")
        sent = rsps.calls[0].request
        assert sent.headers["Authorization"] == f"Token {TOKEN}"
        assert not rsps.calls[0].request.req_kwargs.get("proxies")


# --- pagination -----------------------------------------------------------------


def test_pagination_follows_next() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(
            f"{BASE}/users/",
            match=[responses.matchers.query_param_matcher({"page_size": "100"})],
            json={
                "next": f"{BASE}/users/?cursor=c2&page_size=100",
                "previous": None,
                "results": [{"id": "1"}],
            },
        )
        rsps.get(
            f"{BASE}/users/",
            match=[responses.matchers.query_param_matcher({"cursor": "c2", "page_size": "100"})],
            json={"next": None, "previous": "x", "results": [{"id": "2"}]},
        )
        assert fast_client().list_all("/users/") == [{"id": "1"}, {"id": "2"}]
        assert len(rsps.calls) == 2


def test_listing_passes_filters() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(
            f"{BASE}/workspace_memberships/",
            match=[responses.matchers.query_param_matcher({"workspace_id": "w1", "page_size": "100"})],
            json={"next": None, "results": []},
        )
        assert fast_client().list_all("/workspace_memberships/", {"workspace_id": "w1"}) == []


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example.invalid/api/v1/users/?cursor=2",
        "http://api.example.invalid/api/v1/users/?cursor=2",
        "https://api.example.invalid:8443/api/v1/users/?cursor=2",
        "https://api.example.invalid/admin/users/?cursor=2",
        "https://api.example.invalid/api/v1/../v2/users/?cursor=2",
        f"{BASE}/users/?page_size=100",  # a loop back to the first page
        17,
    ],
)
def test_broken_next_link_raises(next_url: object) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/users/", json={"next": next_url, "results": [{"id": "1"}]})
        with pytest.raises(ApiError) as err:
            fast_client().list_all("/users/")
        assert len(rsps.calls) == 1
    assert "broken next link" in str(err.value)


def test_a_failing_page_raises() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(
            f"{BASE}/users/",
            match=[responses.matchers.query_param_matcher({"page_size": "100"})],
            json={"next": f"{BASE}/users/?cursor=c2", "results": [{"id": "1"}]},
        )
        rsps.get(f"{BASE}/users/", status=400, json={"detail": "bad cursor", "code": "invalid_cursor"})
        with pytest.raises(ApiError) as err:
            fast_client().list_all("/users/")
    assert err.value.code == "invalid_cursor"


def test_a_page_without_results_raises() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/users/", json={"detail": "?"})
        with pytest.raises(ApiError, match="did not return a page"):
            fast_client().list_all("/users/")


# --- status mapping -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, ApiError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, ApiError),
        (409, ConflictError),
        (412, PreconditionFailedError),
        (422, ApiError),
        (429, RateLimitedError),
        (500, ApiError),
    ],
)
def test_status_maps_to_exception(status: int, exc: type[ApiError]) -> None:
    with responses.RequestsMock() as rsps:
        rsps.delete(f"{BASE}/users/u1/", status=status, json={"detail": "the detail", "code": "the_code"})
        with pytest.raises(exc) as err:
            fast_client(max_retries=0).delete("/users/u1/", if_match='"e"')
    e = err.value
    assert type(e) is exc
    assert (e.status, e.code, e.method, e.url) == (status, "the_code", "DELETE", f"{BASE}/users/u1/")
    assert "the detail" in str(e) and "/users/u1/" in str(e)


def test_field_errors_are_in_the_message() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=400, json={"email": ["Enter a valid email address."]})
        with pytest.raises(ApiError) as err:
            fast_client().post("/users/", {"email": "nope"}, idempotency_key="k")
    assert "email: Enter a valid email address." in str(err.value)


def test_etag_comes_from_the_header_and_if_match_is_sent() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/users/u1/", json={"id": "u1", "etag": '"e7"'}, headers={"ETag": '"e7"'})
        rsps.patch(f"{BASE}/users/u1/", json={"id": "u1"})
        client = fast_client()
        body, etag = client.get("/users/u1/")
        assert etag == '"e7"'
        client.patch("/users/u1/", {"role": "admin"}, if_match=etag)
        assert rsps.calls[1].request.headers["If-Match"] == '"e7"'


# --- the token never leaks ------------------------------------------------------


def test_token_never_in_messages_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    client = fast_client(max_retries=0)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        # a server that echoes the key back in every way it can
        rsps.get(f"{BASE}/me/", status=401, json={"detail": f"bad key {TOKEN}", "code": TOKEN})
        rsps.get(f"{BASE}/users/", status=500, body=f"oops Token {TOKEN}")
        rsps.get(f"{BASE}/workspaces/", body=requests.exceptions.ConnectionError(f"Token {TOKEN}"))
        rsps.get(f"{BASE}/x/", status=302, headers={"Location": f"https://{TOKEN}.example.invalid/"})
        for path in ("/me/", "/users/", "/workspaces/", "/x/"):
            with pytest.raises(ApiError) as err:
                client.get(path)
            errors.append(err.value)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(client)]
    texts += [str(getattr(e, a)) for e in errors for a in ("code", "url", "method")]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records  # logging did happen
    assert all(TOKEN not in t for t in texts), [t for t in texts if TOKEN in t]
    assert any("***" in t for t in texts)


def test_key_is_sent_as_token_auth() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json={})
        fast_client().get("/me/")
        assert rsps.calls[0].request.headers["Authorization"] == f"Token {TOKEN}"
        assert rsps.calls[0].request.headers["User-Agent"].startswith("provisioner/")


# --- pacing ----------------------------------------------------------------------


def test_requests_are_paced_once_the_limit_is_known(sleeps: list[float]) -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json={}, headers={"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9"})
        client = fast_client()
        for _ in range(4):
            client.get("/me/")
    # The first two go out at once (the limit is learned from the first answer);
    # the next ones are booked 1/(10*0.9) s apart. time.sleep is faked, so the
    # clock does not move and the reserved waits add up.
    assert sleeps == pytest.approx([1 / 9, 2 / 9], abs=0.02)
