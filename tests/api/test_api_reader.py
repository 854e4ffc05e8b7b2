"""reader: JSON shapes -> State/Identity; concurrent, all-or-nothing reads."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

import pytest
import responses

from provisioner.api.client import ApiClient
from provisioner.api.reader import read_identity, read_state, read_state_and_identity
from provisioner.errors import ApiError, AuthenticationError
from provisioner.model import (
    Credential,
    Identity,
    Membership,
    Organization,
    SecretDigest,
    State,
    User,
    Webhook,
    Workspace,
)

BASE = "https://api.example.invalid/api/v1"

ME = {
    "id": "u1",
    "email": "Admin@Example.com",
    "role": "admin",
    "organization": {"id": "o1", "name": "Acme", "region": "us-east-1", "limits": {"workspaces": 7}},
}
USERS = [
    {"id": "u1", "email": "Admin@Example.com", "role": "admin", "status": "active", "etag": '"a"'},
    {"id": "u2", "email": "dev@example.com", "role": "developer", "status": "invited", "etag": '"b"'},
]
WORKSPACES = [
    {"id": "w1", "name": "app-production", "etag": '"w1"'},
    {"id": "w2", "name": "app-staging", "etag": '"w2"'},
    {"id": "w3", "name": "ml-production", "etag": '"w3"'},
]
MEMBERSHIPS = {
    "w1": [{"id": "m1", "workspace_id": "w1", "user_id": "u1", "etag": '"m1"'}],
    "w2": [
        {"id": "m2", "workspace_id": "w2", "user_id": "u2", "etag": '"m2"'},
        {"id": "m9", "workspace_id": "w2", "user_id": "u-gone", "etag": '"m9"'},
    ],
    "w3": [],
}


def page(results: list, next_url: str | None = None) -> dict:
    return {"next": next_url, "previous": None, "results": results}


def client() -> ApiClient:
    return ApiClient(BASE, "t0ken", backoff_factor=0)


def register(rsps: responses.RequestsMock, barrier: threading.Barrier | None = None) -> None:
    # users come in two pages to check that pages are joined
    rsps.get(
        f"{BASE}/users/",
        match=[responses.matchers.query_param_matcher({"page_size": "100"})],
        json=page(USERS[:1], f"{BASE}/users/?cursor=2&page_size=100"),
    )
    rsps.get(
        f"{BASE}/users/",
        match=[responses.matchers.query_param_matcher({"cursor": "2", "page_size": "100"})],
        json=page(USERS[1:]),
    )
    rsps.get(f"{BASE}/workspaces/", json=page(WORKSPACES))

    def memberships(request):  # noqa: ANN001
        if barrier is not None:
            barrier.wait()  # all three listings must be in flight together
        ws = request.params["workspace_id"]
        return 200, {}, json.dumps(page(MEMBERSHIPS[ws]))

    rsps.add_callback(responses.GET, f"{BASE}/workspace_memberships/", callback=memberships)
    rsps.get(f"{BASE}/webhook_endpoints/", json=page(WEBHOOKS))
    rsps.get(f"{BASE}/credentials/", json=page(CREDENTIALS))
    rsps.get(f"{BASE}/api_keys/", json=page(API_KEYS))


API_KEYS = [
    {
        "id": "k1",
        "name": "ci",
        "user_id": "u1",
        "workspace_id": "w1",
        "prefix": "ak_0123abcd",
        "created_at": "2026-01-01T00:00:00.000Z",
        "last_used_at": None,
        "disabled": False,
        "etag": '"k1"',
    },
]


WEBHOOKS = [
    {
        "id": "h1",
        "workspace_id": "w1",
        "url": "https://hooks.example.invalid/p",
        "events": ["bot.done"],
        "enabled": True,
        "etag": '"h1"',
    },
    {
        "id": "h9",
        "workspace_id": "w-gone",
        "url": "https://x.invalid/",
        "events": ["bot.done"],
        "enabled": True,
        "etag": '"h9"',
    },
]
DIGEST = {"algorithm": "pbkdf2_sha256", "iterations": 1000, "salt": "00" * 16, "digest": "ab" * 32}
CREDENTIALS = [
    {
        "id": "c1",
        "workspace_id": "w2",
        "provider": "deepgram",
        "kind": "transcription",
        "fields": {},
        "secrets": {"api_key": DIGEST},
        "etag": '"c1"',
    },
    {
        # An older server's: the Zoom app is on Recall.ai's real v2 API, never a contract credential.
        "id": "c9",
        "workspace_id": "w2",
        "provider": "zoom",
        "kind": "platform",
        "fields": {"client_id": "z"},
        "secrets": {"client_secret": DIGEST, "webhook_secret": DIGEST},
        "etag": '"c9"',
    },
]


EXPECTED = State.build(
    [
        User("admin@example.com", "admin", "active", "u1", '"a"'),
        User("dev@example.com", "developer", "invited", "u2", '"b"'),
    ],
    [Workspace(w["name"], w["id"], etag=w["etag"]) for w in WORKSPACES],
    [
        Membership("app-production", "admin@example.com", "m1", etag='"m1"'),
        Membership("app-staging", "dev@example.com", "m2", etag='"m2"'),
    ],
    [Webhook("app-production", "https://hooks.example.invalid/p", ("bot.done",), True, "h1", '"h1"')],
    [
        Credential(
            "app-staging",
            "deepgram",
            digests=(("api_key", SecretDigest("pbkdf2_sha256", 1000, "00" * 16, "ab" * 32)),),
            id="c1",
            etag='"c1"',
        )
    ],
)


def test_read_state_converts_and_skips_dangling_memberships(caplog: pytest.LogCaptureFixture) -> None:
    with responses.RequestsMock() as rsps:
        register(rsps)
        state = read_state(client(), parallelism=4)
        # one listing per workspace, each filtered and with page_size=100
        member_calls = [c for c in rsps.calls if "/workspace_memberships/" in c.request.url]
        assert sorted(c.request.params["workspace_id"] for c in member_calls) == ["w1", "w2", "w3"]
        assert all(c.request.params["page_size"] == "100" for c in member_calls)
        assert all(c.request.method == "GET" for c in rsps.calls)
        # 2 user pages, 1 workspace page, 3 membership pages, 1 page each of webhooks, credentials, keys
        assert len(rsps.calls) == 9
    assert dict(state.users) == dict(EXPECTED.users)
    assert dict(state.workspaces) == dict(EXPECTED.workspaces)
    assert dict(state.memberships) == dict(EXPECTED.memberships)
    assert dict(state.webhooks) == dict(EXPECTED.webhooks)
    assert dict(state.credentials) == dict(EXPECTED.credentials)
    (key,) = state.api_keys.values()
    assert (key.workspace, key.name, key.owner, key.prefix, key.last_used_at) == (
        "app-production",
        "ci",
        "admin@example.com",
        "ak_0123abcd",
        None,
    )
    assert key.created_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert any("h9" in r.getMessage() for r in caplog.records)
    assert any("c9" in r.getMessage() and "zoom" in r.getMessage() for r in caplog.records)
    assert any("m9" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_membership_listings_overlap() -> None:
    barrier = threading.Barrier(3, timeout=10)
    with responses.RequestsMock() as rsps:
        register(rsps, barrier)
        state = read_state(client(), parallelism=3)
    assert not barrier.broken
    assert len(state.memberships) == 2


def test_any_failing_page_raises_instead_of_returning_a_partial_state() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/users/", json=page(USERS))
        rsps.get(f"{BASE}/workspaces/", json=page(WORKSPACES))
        rsps.get(
            f"{BASE}/workspace_memberships/",
            match=[responses.matchers.query_param_matcher({"workspace_id": "w2", "page_size": "100"})],
            status=500,
            json={"detail": "boom"},
        )
        rsps.get(f"{BASE}/workspace_memberships/", json=page([]))
        with pytest.raises(ApiError, match="boom"):
            read_state(ApiClient(BASE, "t", max_retries=0), parallelism=2)


def test_an_unexpected_shape_raises_api_error() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/users/", json=page([{"id": "u1"}]))  # no email
        rsps.get(f"{BASE}/workspaces/", json=page([]))
        with pytest.raises(ApiError, match="unexpected user"):
            read_state(client())


def test_read_identity() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/me/", json=ME, headers={"ETag": '"x"'})
        identity = read_identity(client())
    assert identity == Identity(
        "u1", "admin@example.com", "admin", Organization("o1", "Acme", "us-east-1", 7)
    )


def test_read_state_and_identity() -> None:
    with responses.RequestsMock() as rsps:
        register(rsps)
        rsps.get(f"{BASE}/me/", json=ME)
        state, identity = read_state_and_identity(client(), parallelism=4)
    assert identity.organization.name == "Acme"
    assert dict(state.memberships) == dict(EXPECTED.memberships)


def test_read_state_and_identity_raises_when_me_fails() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        register(rsps)
        rsps.get(f"{BASE}/me/", status=401, json={"detail": "Invalid token."})
        with pytest.raises(AuthenticationError):
            read_state_and_identity(client())
