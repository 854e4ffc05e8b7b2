"""The client's retry policy seen through `responses` (no socket at all).

`responses` runs urllib3's ``Retry.increment`` for each attempt but never its
``sleep``, so these tests count attempts; the waits themselves (Retry-After and
its cap, backoff) are tested against a scripted loopback server in
``test_api_client.py``, where urllib3 really sleeps (through a recorded stub).
"""

from __future__ import annotations

import pytest
import responses

from provisioner.api.client import ApiClient
from provisioner.errors import ApiError, TransportError

BASE = "https://api.example.invalid/api/v1"


def client(**kw) -> ApiClient:  # noqa: ANN003
    kw.setdefault("backoff_factor", 0)
    return ApiClient(BASE, "tok-responses", **kw)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_each_retry_status_is_retried_then_succeeds(status: int) -> None:
    with responses.RequestsMock() as rsps:
        failing = rsps.get(f"{BASE}/me/", status=status, json={"detail": "x", "code": "y"})
        rsps.get(f"{BASE}/me/", json={"id": "1"})
        body, _ = client().get("/me/")
        assert len(rsps.calls) == 2
    assert body == {"id": "1"}
    assert failing.call_count == 1


def test_attempts_are_capped() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", status=503, json={"detail": "down", "code": "service_unavailable"})
        with pytest.raises(ApiError) as err:
            client(max_retries=3).get("/me/")
        assert len(rsps.calls) == 4  # the first attempt and 3 retries
    assert err.value.status == 503


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422])
def test_other_4xx_are_never_retried(status: int) -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=status, json={"detail": "no", "code": "c"})
        with pytest.raises(ApiError) as err:
            client().post("/users/", {"email": "a@b.example", "role": "developer"}, idempotency_key="k")
        assert len(rsps.calls) == 1
    assert err.value.status == status


def test_a_connection_error_is_retried_then_reported() -> None:
    import requests

    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", body=requests.exceptions.ConnectionError("refused"))
        with pytest.raises(TransportError) as err:
            client(max_retries=2).get("/me/")
    assert "failed" in str(err.value)


def test_a_very_short_key_does_not_garble_messages() -> None:
    # Redacting a 1-character "key" would turn every "e" into ***; real keys are long.
    short = ApiClient(BASE, "e", backoff_factor=0, max_retries=0)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", status=400, json={"detail": "the request was rejected", "code": "bad"})
        with pytest.raises(ApiError) as err:
            short.get("/me/")
    assert "the request was rejected" in str(err.value)
    assert "***" not in str(err.value)
