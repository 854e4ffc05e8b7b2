"""The sandbox's clock (``/_sandbox/clock``): old keys and passing grace periods without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from provisioner.sandbox import RunningSandbox
from tests.sandbox.conftest import Api

DAYS_97 = 97 * 24 * 3600


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_offset_dates_what_the_sandbox_writes_and_each_sandbox_keeps_its_own(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    first, second = make_sandbox(), make_sandbox()
    api, other = Api(first.base_url, first.token), Api(second.base_url, second.token)
    set_to = api.post("/_sandbox/clock", {"offset_seconds": -DAYS_97})
    assert set_to.status_code == 200, set_to.text
    assert set_to.json()["offset_seconds"] == -DAYS_97
    made: dict[str, Any] = api.post("/workspaces/", {"name": "old"}).json()
    age = datetime.now(UTC) - moment(made["created_at"])
    assert timedelta(days=96, hours=23) < age < timedelta(days=97, hours=1)
    # The other sandbox's clock is real time.
    fresh = other.post("/workspaces/", {"name": "new"}).json()
    assert datetime.now(UTC) - moment(fresh["created_at"]) < timedelta(minutes=5)
    assert other.get("/_sandbox/clock").json()["offset_seconds"] == 0
    # Back to real time.
    assert api.post("/_sandbox/clock", {"offset_seconds": 0}).json()["offset_seconds"] == 0
    again = api.post("/workspaces/", {"name": "again"}).json()
    assert datetime.now(UTC) - moment(again["created_at"]) < timedelta(minutes=5)


def test_a_bad_offset_is_a_field_error_and_a_key_is_needed(sandbox: RunningSandbox) -> None:
    api = Api(sandbox.base_url, sandbox.token)
    for bad in ("soon", True, 10**12, None):
        response = api.post("/_sandbox/clock", {"offset_seconds": bad})
        assert response.status_code == 400 and "offset_seconds" in response.json(), (bad, response.text)
    assert Api(sandbox.base_url, None).get("/_sandbox/clock").status_code == 401
