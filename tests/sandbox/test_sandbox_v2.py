"""The sandbox's Recall.ai v2 endpoints, over real HTTP, every answer checked against recall-v2.yaml."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from provisioner.sandbox import RunningSandbox
from provisioner.sandbox import limits as published
from provisioner.sandbox import v2 as sandbox_v2
from provisioner.sandbox.limits import PublishedLimits
from tests.contract import ContractChecker

ZOOM = "/api/v2/zoom-oauth-apps/"
GROUPS = "/api/v2/google-login-groups/"
LOGINS = "/api/v2/google-logins/"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEv-sandbox-not-a-real-key\n-----END PRIVATE KEY-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIC-sandbox-not-a-real-cert\n-----END CERTIFICATE-----\n"


class V2:
    """Real HTTP to the sandbox's /api/v2/ with one workspace key."""

    def __init__(self, sandbox: RunningSandbox, key: str | None) -> None:
        self.url = sandbox.url
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Token {key}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.url + path
        return self.session.request(method, url, timeout=10, **kwargs)


def _zoom_body(client_id: str = "zoom-client-1") -> dict[str, str]:
    return {
        "kind": "account_level",
        "client_id": client_id,
        "client_secret": "cs-1",
        "webhook_secret": "ws-1",
    }


@pytest.fixture
def two(sandbox: RunningSandbox) -> tuple[V2, V2]:
    """Clients of two workspace instances, each with its own key."""
    return V2(sandbox, sandbox.workspace_key("app-staging")), V2(
        sandbox, sandbox.workspace_key("app-production")
    )


def test_a_key_reaches_only_its_own_workspace(two: tuple[V2, V2]) -> None:
    staging, production = two
    made = staging("POST", ZOOM, json=_zoom_body())
    assert made.status_code == 201, made.text
    app = made.json()
    # The real API returns the secrets it was given, in the create and every read.
    assert (app["client_secret"], app["webhook_secret"], app["webhook_last_validation"]) == (
        "cs-1",
        "ws-1",
        None,
    )
    assert staging("GET", ZOOM).json()["results"] == [app]
    assert production("GET", ZOOM).json() == {"next": None, "previous": None, "results": []}
    assert production("GET", f"{ZOOM}{app['id']}/").status_code == 404
    assert production("DELETE", f"{ZOOM}{app['id']}/").status_code == 404
    assert staging("GET", f"{ZOOM}{app['id']}/").json() == app


def test_keys_without_a_workspace_and_missing_keys_are_401(sandbox: RunningSandbox) -> None:
    # The server's admin token is organization-level: the v2 API knows no such key.
    assert V2(sandbox, sandbox.token)("GET", ZOOM).status_code == 401
    missing = V2(sandbox, None)("GET", ZOOM)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}


def test_patch_rotates_secrets_but_never_the_client_id(two: tuple[V2, V2]) -> None:
    staging, _ = two
    app = staging("POST", ZOOM, json=_zoom_body()).json()
    patched = staging("PATCH", f"{ZOOM}{app['id']}/", json={"webhook_secret": "ws-2", "client_id": "other"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["webhook_secret"], patched.json()["client_id"]) == ("ws-2", "zoom-client-1")
    blank = staging("PATCH", f"{ZOOM}{app['id']}/", json={"client_secret": ""})
    assert blank.status_code == 400 and "client_secret" in blank.json()


def test_create_refuses_missing_fields_and_bad_kinds_by_field(two: tuple[V2, V2]) -> None:
    staging, _ = two
    refused = staging("POST", ZOOM, json={"kind": "team_level", "client_id": "x"})
    assert refused.status_code == 400
    assert set(refused.json()) == {"kind", "client_secret", "webhook_secret"}


def test_zoom_url_validation_sets_webhook_last_validation(
    sandbox: RunningSandbox, two: tuple[V2, V2], contract_checker: ContractChecker
) -> None:
    staging, _ = two
    app = staging("POST", ZOOM, json=_zoom_body()).json()
    event = {"event": "endpoint.url_validation", "payload": {"plainToken": "tok-123"}}
    answer = requests.post(f"{sandbox.url}{ZOOM}{app['id']}/webhook", json=event, timeout=10)
    expected = hmac.new(b"ws-1", b"tok-123", hashlib.sha256).hexdigest()
    assert answer.json() == {"plainToken": "tok-123", "encryptedToken": expected}
    assert staging("GET", f"{ZOOM}{app['id']}/").json()["webhook_last_validation"] is not None
    # Zoom's receiver is left out of recall-v2.yaml on purpose (Zoom calls it, provisioner never does).
    contract_checker.violations[:] = [
        v for v in contract_checker.violations if not v.path.endswith("/webhook")
    ]


def test_cursor_pages_walk_forward_and_back(two: tuple[V2, V2], monkeypatch: pytest.MonkeyPatch) -> None:
    staging, _ = two
    monkeypatch.setattr(sandbox_v2, "PAGE_SIZE", 2)
    made = [staging("POST", ZOOM, json=_zoom_body(f"c{i}")).json()["id"] for i in range(5)]
    first = staging("GET", ZOOM).json()
    assert first["previous"] is None and "cursor=" in first["next"]
    second = staging("GET", first["next"]).json()
    third = staging("GET", second["next"]).json()
    assert third["next"] is None
    seen = [a["id"] for page in (first, second, third) for a in page["results"]]
    assert seen == made
    back = staging("GET", third["previous"]).json()
    assert [a["id"] for a in back["results"]] == [a["id"] for a in second["results"]]
    assert staging("GET", ZOOM, params={"cursor": "not-ours"}).status_code == 404


def test_list_filters_by_client_id_and_kind(two: tuple[V2, V2]) -> None:
    staging, _ = two
    staging("POST", ZOOM, json=_zoom_body("a"))
    staging("POST", ZOOM, json={**_zoom_body("b"), "kind": "user_level"})
    assert [a["client_id"] for a in staging("GET", ZOOM, params={"client_id": "b"}).json()["results"]] == [
        "b"
    ]
    assert [
        a["client_id"] for a in staging("GET", ZOOM, params={"kind": "account_level"}).json()["results"]
    ] == ["a"]
    assert staging("GET", ZOOM, params={"kind": "nope"}).status_code == 400


def test_google_login_group_nests_its_logins_and_put_replaces(two: tuple[V2, V2]) -> None:
    staging, production = two
    group = staging("POST", GROUPS, json={"name": "bots", "login_mode": "always"}).json()
    login = {
        "group_id": group["id"],
        "email": "bot1@example.com",
        "sso_v2_workspace_domain": "example.com",
        "sso_v2_private_key": PEM_KEY,
        "sso_v2_cert": PEM_CERT,
    }
    first = staging("POST", LOGINS, json=login)
    assert first.status_code == 201, first.text
    assert first.json()["is_active"] is True and first.json()["sso_v2_private_key"] == PEM_KEY
    second = staging("POST", LOGINS, json={**login, "email": "bot2@example.com", "is_active": False}).json()
    listed = staging("GET", f"{GROUPS}{group['id']}/").json()
    assert [(x["email"], x["is_active"]) for x in listed["logins"]] == [
        ("bot1@example.com", True),
        ("bot2@example.com", False),
    ]
    assert [x["id"] for x in staging("GET", LOGINS, params={"is_active": "false"}).json()["results"]] == [
        second["id"]
    ]
    # Another workspace's group is not a valid group_id.
    assert production("POST", LOGINS, json=login).json() == {
        "group_id": [f'Invalid pk "{group["id"]}" - object does not exist.']
    }
    assert staging("PUT", f"{GROUPS}{group['id']}/", json={"name": "renamed"}).status_code == 400
    put = staging(
        "PUT", f"{GROUPS}{group['id']}/", json={"name": "renamed", "login_mode": "only_if_required"}
    )
    assert (put.json()["name"], put.json()["login_mode"]) == ("renamed", "only_if_required")
    assert staging("DELETE", f"{GROUPS}{group['id']}/").status_code == 204
    assert staging("GET", LOGINS).json()["results"] == []


def test_an_idempotent_retry_within_the_hour_gets_the_first_answer(two: tuple[V2, V2]) -> None:
    staging, _ = two
    headers = {"Idempotency-Key": "create-zoom-1"}
    first = staging("POST", ZOOM, json=_zoom_body(), headers=headers)
    # Even with another body: the reference says a reused key is treated as a duplicate.
    again = staging("POST", ZOOM, json=_zoom_body("other"), headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert len(staging("GET", ZOOM).json()["results"]) == 1


def test_a_duplicate_still_in_flight_is_409(sandbox: RunningSandbox, two: tuple[V2, V2]) -> None:
    staging, _ = two
    entered, release = threading.Event(), threading.Event()
    real = sandbox_v2.HANDLERS["zoom.create"]

    def held(call: sandbox_v2.Call) -> Any:
        entered.set()
        release.wait(10)
        return real(call)

    sandbox_v2.HANDLERS["zoom.create"] = held
    answers: list[requests.Response] = []
    try:
        worker = threading.Thread(
            target=lambda: answers.append(
                staging("POST", ZOOM, json=_zoom_body(), headers={"Idempotency-Key": "k"})
            )
        )
        worker.start()
        assert entered.wait(10)
        duplicate = V2(sandbox, staging.session.headers["Authorization"].split()[1])(
            "POST", ZOOM, json=_zoom_body(), headers={"Idempotency-Key": "k"}
        )
        assert duplicate.status_code == 409
    finally:
        release.set()
        sandbox_v2.HANDLERS["zoom.create"] = real
    worker.join(10)
    assert answers[0].status_code == 201


def test_the_waf_blocks_a_payload_naming_localhost_with_html(two: tuple[V2, V2]) -> None:
    staging, _ = two
    blocked = staging("POST", GROUPS, json={"name": "http://localhost/x", "login_mode": "always"})
    assert blocked.status_code == 403
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert staging("GET", GROUPS).json()["results"] == []


def test_published_limits_answer_429_with_retry_after(make_sandbox: Callable[..., RunningSandbox]) -> None:
    limited = make_sandbox(recall_limits=True)
    staging = V2(limited, limited.workspace_key("app-staging"))
    other = V2(limited, limited.workspace_key("app-production"))
    statuses = [staging("GET", ZOOM).status_code for _ in range(published.LIST_PER_MINUTE + 1)]
    assert statuses[:-1] == [200] * published.LIST_PER_MINUTE
    throttled = staging("GET", ZOOM)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    # The list limit is per workspace and apart from the 300/min of the other endpoints.
    assert other("GET", ZOOM).status_code == 200
    assert staging("POST", ZOOM, json=_zoom_body()).status_code == 201
    assert limited.stats()["throttled"] >= 2


def test_the_bucket_refills_at_the_published_rate() -> None:
    now = [0.0]
    limits = PublishedLimits(clock=lambda: now[0])
    assert all(limits.take("w", published.LIST) == 0 for _ in range(60))
    assert limits.take("w", published.LIST) == 1  # one more each second
    now[0] += 1.0
    assert limits.take("w", published.LIST) == 0
    assert all(limits.take("w", published.OTHER) == 0 for _ in range(300))
    assert limits.take("w", published.OTHER) == 1
