"""Recall.ai's published limits on the management contract (``--recall-limits``), scaled down.

A bucket per (authenticating key, class): lists (a GET of a collection, the
change feed included) apart from everything else; ``/_sandbox/*`` never
limited nor counted. Every answer is checked against the contract by the
``make_sandbox`` fixture, the 429s included.
"""

from __future__ import annotations

from collections.abc import Callable

from provisioner.sandbox import RunningSandbox, create_token
from tests.sandbox.conftest import Api

LISTS, OTHERS = 3, 4  # requests a minute: a budget a test spends in a few requests


def _limited(make_sandbox: Callable[..., RunningSandbox]) -> tuple[RunningSandbox, Api]:
    sandbox = make_sandbox(recall_limits=(LISTS, OTHERS))
    return sandbox, Api(sandbox.base_url, sandbox.token)


def test_lists_past_their_budget_get_429_with_retry_after_in_the_contracts_shape(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sandbox, api = _limited(make_sandbox)
    assert [api.get(path).status_code for path in ("/users/", "/workspaces/", "/api_keys/")] == [200] * LISTS
    throttled = api.get("/workspace_memberships/")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled" and "throttled" in throttled.json()["detail"]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60 // LISTS
    # Published limits are published, not advertised per answer.
    assert "X-RateLimit-Limit" not in throttled.headers
    # The change feed is a list too; /me/ and /revision/ retrieve one object each.
    assert api.get("/changes/", params={"since": 0}).status_code == 429
    assert api.get("/me/").status_code == 200
    assert api.get("/revision/").status_code == 200
    stats = sandbox.stats()
    assert stats["throttled"] == 2
    assert stats["by_route"]["GET /api/v1/workspace_memberships/"] == 1  # a 429 is counted


def test_every_other_request_shares_the_other_budget_and_each_key_has_its_own(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sandbox, api = _limited(make_sandbox)
    assert api.get("/me/").status_code == 200
    created = api.post("/users/", {"email": "dana@example.com", "role": "developer"})
    assert created.status_code == 201
    user = created.json()
    assert api.get(f"/users/{user['id']}/").status_code == 200
    assert api.patch(f"/users/{user['id']}/", {"role": "admin"}).status_code == 200  # the 4th
    refused = api.delete(f"/users/{user['id']}/")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert api.get("/users/").status_code == 200  # the list budget is apart
    # A second key of the same admin has budgets of its own (a key reaches one workspace).
    other = Api(sandbox.base_url, create_token(sandbox.db_path, "admin@example.com"))
    assert other.delete(f"/users/{user['id']}/").status_code == 204


def test_sandbox_routes_are_never_limited_nor_counted(make_sandbox: Callable[..., RunningSandbox]) -> None:
    sandbox, api = _limited(make_sandbox)
    for _ in range(LISTS + 1):
        api.get("/users/")
    for _ in range(OTHERS + 1):
        api.get("/me/")
    assert api.get("/users/").status_code == 429 and api.get("/me/").status_code == 429
    answers = [api.get("/_sandbox/stats") for _ in range(3 * (LISTS + OTHERS))]
    answers += [api.get("/_sandbox/clock"), api.post("/_sandbox/changes/compact")]
    assert [a.status_code for a in answers] == [200] * len(answers)
    stats = answers[0].json()
    assert stats["total"] == LISTS + OTHERS + 4 and stats["throttled"] == 4
    assert not [route for route in stats["by_route"] if "_sandbox" in route]
    assert api.post("/_sandbox/stats/reset").status_code == 200
    assert sandbox.stats()["total"] == 0
