"""Pacing to Recall.ai's published limits: the one classifier, ``--pace`` and where it applies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from werkzeug.routing import Map

from provisioner.api.client import ApiClient
from provisioner.api.pacing import LIST, OTHER, Pace, Pacing, limit_class, per_minute_pair
from provisioner.endpoint import Endpoint
from provisioner.sandbox import RunningSandbox
from provisioner.sandbox import app as sandbox_app
from provisioner.sandbox import limits as sandbox_limits
from provisioner.sandbox import v2 as sandbox_v2
from provisioner.sandbox.routing import routes
from provisioner.service.connection import management_pacing


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        # The management contract's collections, the change feed included.
        ("GET", "/users/", LIST),
        ("GET", "/workspaces/", LIST),
        ("GET", "/workspace_memberships/", LIST),
        ("GET", "/api_keys/", LIST),
        ("GET", "/webhook_endpoints/", LIST),
        ("GET", "/credentials/", LIST),
        ("GET", "/changes/", LIST),
        # Its top-level retrieves, one object each, and everything that is not a GET of a list.
        ("GET", "/me/", OTHER),
        ("GET", "/revision/", OTHER),
        ("GET", "/users/3fa8/", OTHER),
        ("POST", "/users/", OTHER),
        ("PATCH", "/users/3fa8/", OTHER),
        ("DELETE", "/workspace_memberships/3fa8/", OTHER),
        ("POST", "/workspaces/3fa8/rotate_verification_secret/", OTHER),
        # Recall.ai's v2 API, below its own base.
        ("GET", "/zoom-oauth-apps/", LIST),
        ("GET", "/google-login-groups/", LIST),
        ("GET", "/google-logins/", LIST),
        ("GET", "/zoom-oauth-apps/3fa8/", OTHER),
        ("POST", "/zoom-oauth-apps/", OTHER),
        ("PATCH", "/google-logins/3fa8/", OTHER),
        ("get", "/users/", LIST),
    ],
)
def test_lists_and_the_rest_are_limited_apart(method: str, path: str, expected: str) -> None:
    assert limit_class(method, path) == expected


def _routes(url_map: Map, prefix: str) -> list[tuple[str, str, str]]:
    """(method, path below the API's base, the sandbox's endpoint name) of every API route."""
    found = []
    for rule, method, endpoint in routes(url_map):
        if "/_sandbox/" in rule:
            continue  # never limited, never paced
        found.append((method, rule[len(prefix) :].replace("<id>", "3fa8"), endpoint))
    return sorted(found)


ROUTES = _routes(sandbox_app.URL_MAP, "/api/v1") + _routes(sandbox_v2.URL_MAP, "/api/v2")


@pytest.mark.parametrize(("method", "path", "endpoint"), ROUTES)
def test_the_client_classifies_every_route_as_the_sandbox_limits_it(
    method: str, path: str, endpoint: str
) -> None:
    # Two classifiers that share no code (the sandbox names its routes, the client reads
    # paths) must agree on every route of both APIs, or a paced client still meets 429s.
    assert limit_class(method, path) == sandbox_limits.limit_class(method, endpoint)


def test_the_route_table_covers_both_apis_and_both_classes() -> None:
    classes = {limit_class(m, p) for m, p, _ in ROUTES}
    assert classes == {LIST, OTHER}
    assert ("GET", "/changes/", "changes.list") in ROUTES and ("GET", "/me/", "me") in ROUTES


def test_a_client_paces_by_the_path_below_its_base(make_sandbox: Callable[..., RunningSandbox]) -> None:
    sandbox = make_sandbox()
    slept: list[float] = []
    pacing = Pacing(per_minute={LIST: 2, OTHER: 100}, clock=lambda: 0.0, sleep=slept.append)
    with ApiClient(sandbox.base_url, sandbox.token, pacing=pacing) as client:
        for _ in range(5):
            client.get("/me/")  # a retrieve: the other class, far from its limit
        assert slept == []
        for _ in range(3):
            client.list_all("/users/")  # /api/v1/users/: a list, whatever the base path
    assert len(slept) == 1  # the third list waited for a token (a burst of a minute's 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", Pace("auto")),
        ("AUTO", Pace("auto")),
        ("off", Pace("off")),
        ("published", Pace("on", 60, 300)),
        (" 600/3000 ", Pace("on", 600, 3000)),
        ("1/1", Pace("on", 1, 1)),
    ],
)
def test_pace_is_auto_published_off_or_numbers_a_minute(text: str, expected: Pace) -> None:
    assert Pace.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["fast", "", "0/300", "60/0", "60", "60/300/5", "-1/5", "\u0666/300", "9" * 9 + "/1"]
)
def test_a_pace_that_means_nothing_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="auto, published, off, or .*LIST/OTHER"):
        Pace.parse(text)
    assert per_minute_pair(text) is None


REGION = Endpoint("https://eu-central-1.recall.ai/api/v1", "k", "https://eu-central-1.recall.ai/api/v1")
LOOPBACK = Endpoint("http://127.0.0.1:8765/api/v1", "k", "http://127.0.0.1:8765/api/v1")
ELSEWHERE = Endpoint("https://recall.example.com/api/v1", "k", "https://recall.example.com/api/v1")


@pytest.mark.parametrize(
    ("pace", "endpoint", "paced"),
    [
        ("auto", REGION, True),
        ("auto", LOOPBACK, False),
        ("auto", ELSEWHERE, False),
        ("published", LOOPBACK, True),
        ("600/3000", ELSEWHERE, True),
        ("off", REGION, False),
    ],
)
def test_the_management_contract_is_paced_on_a_regions_endpoint_or_when_asked(
    pace: str, endpoint: Endpoint, paced: bool
) -> None:
    setting = Pace.parse(pace)
    pacing = setting.pacing()
    assert (management_pacing(setting, pacing, endpoint) is not None) == paced
    # The v2 API is paced unless pacing is off, wherever the endpoint is.
    assert (pacing is None) == (pace == "off")


def test_scaled_numbers_reach_the_buckets() -> None:
    pacing = Pace.parse("600/3000").pacing()
    assert pacing is not None
    assert pacing.bucket("k", LIST).capacity == 600 and pacing.bucket("k", OTHER).rate == pytest.approx(
        3000 * 0.95 / 60
    )
