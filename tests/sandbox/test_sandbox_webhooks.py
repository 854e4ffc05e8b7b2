"""Webhook endpoints (``/webhook_endpoints/``) over real HTTP: the secret once, lists, changes, refusals.

Every response is checked against schemas/openapi.yaml by the ``sandbox``
fixture as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from provisioner.sandbox import RunningSandbox
from provisioner.sandbox.knobs import FAULT_503
from provisioner.sandbox.webhooks import EVENT_TYPES, URL_PATTERN
from tests.sandbox.conftest import Api
from tests.sandbox.settings_support import create_workspace, stored_text
from tests.sandbox.test_sandbox_knobs import seed_for

CONTRACT = Path(__file__).resolve().parents[2] / "schemas" / "openapi.yaml"


def create_webhook(api: Api, workspace_id: str, url: str, events: list[str] | None = None, **kw: Any) -> Any:
    body = {"workspace_id": workspace_id, "url": url, "events": events or ["bot.done"], **kw}
    response = api.post("/webhook_endpoints/", body)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_the_secret_once_and_reads_never(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    response = api.post(
        "/webhook_endpoints/",
        {
            "workspace_id": workspace["id"],
            "url": "https://hooks.example.invalid/recall/production",
            "events": ["transcript.done", "bot.status_change"],
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 43
    assert (created["url"], created["events"], created["enabled"]) == (
        "https://hooks.example.invalid/recall/production",
        ["bot.status_change", "transcript.done"],  # sorted
        True,
    )
    assert created["secret_rotated_at"] == created["created_at"]
    assert response.headers["ETag"] == created["etag"]
    assert response.headers["Location"].endswith(f"/api/v1/webhook_endpoints/{created['id']}/")
    one = api.get(f"/webhook_endpoints/{created['id']}/")
    listed = api.get("/webhook_endpoints/")
    assert one.json() == created and listed.json()["results"] == [created]
    for read in (one, listed):
        assert secret not in read.text and "secret" not in read.json()
    assert secret not in stored_text(sandbox.db_path)


def test_rotate_shows_a_new_secret_once_and_honours_if_match(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    created = create_webhook(api, workspace["id"], "https://a.example.invalid/")
    path = f"/webhook_endpoints/{created['id']}/rotate_secret/"
    stale = api.post(path, headers={"If-Match": '"stale"'})
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed")
    assert api.get(f"/webhook_endpoints/{created['id']}/").json()["etag"] == created["etag"]
    rotated = api.post(path, {}, headers={"If-Match": created["etag"]})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["secret_rotated_at"] >= created["secret_rotated_at"]
    assert body["etag"] != created["etag"] and rotated.headers["ETag"] == body["etag"]
    again = api.post(path)  # no body at all is the same as {}
    assert again.status_code == 200 and again.json()["secret"] not in (body["secret"], created["secret"])
    read = api.get(f"/webhook_endpoints/{created['id']}/")
    assert "secret" not in read.json() and body["secret"] not in read.text
    for secret in (created["secret"], body["secret"], again.json()["secret"]):
        assert secret not in stored_text(sandbox.db_path)
    unknown = api.post(path, {"secret": "whsec_mine"})
    assert (unknown.status_code, unknown.json()) == (400, {"secret": ["Unknown field."]})


def test_idempotent_replays_of_create_and_rotate_carry_no_secret(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    body = {"workspace_id": workspace["id"], "url": "https://r.example.invalid/", "events": ["bot.done"]}
    first = api.post("/webhook_endpoints/", body, headers={"Idempotency-Key": "hook-1"})
    replay = api.post("/webhook_endpoints/", body, headers={"Idempotency-Key": "hook-1"})
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == {k: v for k, v in first.json().items() if k != "secret"}
    assert first.json()["secret"] not in replay.text
    assert len(api.walk("/webhook_endpoints/")) == 1
    path = f"/webhook_endpoints/{first.json()['id']}/rotate_secret/"
    rotated = api.post(path, headers={"Idempotency-Key": "rotate-1"})
    rotated_again = api.post(path, headers={"Idempotency-Key": "rotate-1"})
    assert (rotated.status_code, rotated_again.status_code) == (200, 200)
    assert rotated_again.headers["Idempotent-Replayed"] == "true"
    assert rotated_again.json() == {k: v for k, v in rotated.json().items() if k != "secret"}
    stored = stored_text(sandbox.db_path)
    assert first.json()["secret"] not in stored and rotated.json()["secret"] not in stored


def test_list_filters_by_workspace_and_pages(api: Api) -> None:
    staging, production = create_workspace(api, "staging"), create_workspace(api, "production")
    made = [
        create_webhook(api, (staging, production)[n % 2]["id"], f"https://h{n}.example.invalid/")
        for n in range(7)
    ]
    first = api.get("/webhook_endpoints/?page_size=3").json()
    assert len(first["results"]) == 3 and first["next"]
    assert [h["id"] for h in api.walk("/webhook_endpoints/?page_size=3")] == [h["id"] for h in made]
    in_production = api.walk(f"/webhook_endpoints/?workspace_id={production['id']}&page_size=2")
    assert [h["id"] for h in in_production] == [
        h["id"] for h in made if h["workspace_id"] == production["id"]
    ]
    assert len(in_production) == 3  # more than one page of 2: the filter is kept across pages
    assert api.walk("/webhook_endpoints/?workspace_id=nope") == []


def test_patch_changes_what_it_names_and_an_empty_patch_keeps_the_etag(
    api: Api, workspace: dict[str, Any]
) -> None:
    created = create_webhook(api, workspace["id"], "https://p.example.invalid/", ["bot.done"])
    path = f"/webhook_endpoints/{created['id']}/"
    unchanged = api.patch(path, {"events": ["bot.done"], "enabled": True})
    assert unchanged.status_code == 200 and unchanged.json()["etag"] == created["etag"]
    changed = api.patch(
        path,
        {"events": ["recording.done", "bot.fatal"], "enabled": False},
        headers={"If-Match": created["etag"]},
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert (after["events"], after["enabled"], after["url"]) == (
        ["bot.fatal", "recording.done"],
        False,
        "https://p.example.invalid/",
    )
    assert after["etag"] != created["etag"] and after["secret_rotated_at"] == created["secret_rotated_at"]
    stale = api.patch(path, {"enabled": True}, headers={"If-Match": created["etag"]})
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed")
    assert api.get(path).json() == after
    moved = api.patch(path, {"url": "http://127.0.0.1:9/hook"})
    assert moved.status_code == 200 and moved.json()["url"] == "http://127.0.0.1:9/hook"


def test_delete_honours_if_match(api: Api, workspace: dict[str, Any]) -> None:
    created = create_webhook(api, workspace["id"], "https://d.example.invalid/")
    path = f"/webhook_endpoints/{created['id']}/"
    stale = api.delete(path, headers={"If-Match": '"stale"'})
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed")
    assert api.delete(path, headers={"If-Match": created["etag"]}).status_code == 204
    gone = api.get(path)
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")
    assert api.walk("/webhook_endpoints/") == []


def test_a_url_twice_in_one_workspace_is_409_but_in_two_workspaces_is_allowed(
    api: Api, workspace: dict[str, Any]
) -> None:
    url = "https://same.example.invalid/hook"
    first = create_webhook(api, workspace["id"], url)
    again = api.post(
        "/webhook_endpoints/", {"workspace_id": workspace["id"], "url": url, "events": ["bot.done"]}
    )
    assert (again.status_code, again.json()["code"]) == (409, "already_exists")
    other = create_workspace(api, "notetaker-staging")
    assert create_webhook(api, other["id"], url)["url"] == url
    second = create_webhook(api, workspace["id"], "https://other.example.invalid/")
    clash = api.patch(f"/webhook_endpoints/{second['id']}/", {"url": url})
    assert (clash.status_code, clash.json()["code"]) == (409, "already_exists")
    assert api.get(f"/webhook_endpoints/{second['id']}/").json()["url"] == "https://other.example.invalid/"
    assert api.get(f"/webhook_endpoints/{first['id']}/").json()["url"] == url


def test_a_url_differing_only_in_scheme_or_host_case_is_a_duplicate(
    api: Api, workspace: dict[str, Any]
) -> None:
    first = create_webhook(api, workspace["id"], "https://dup.example.invalid/x")
    again = api.post(
        "/webhook_endpoints/",
        {"workspace_id": workspace["id"], "url": "HTTPS://DUP.example.INVALID/x", "events": ["bot.done"]},
    )
    assert (again.status_code, again.json()["code"]) == (409, "already_exists"), again.text
    # The path is not case-insensitive: another endpoint.
    other = create_webhook(api, workspace["id"], "https://dup.example.invalid/X")
    clash = api.patch(f"/webhook_endpoints/{other['id']}/", {"url": "hTTps://Dup.Example.invalid/x"})
    assert (clash.status_code, clash.json()["code"]) == (409, "already_exists")
    # An endpoint may change the case of its own URL; it is stored as sent.
    recased = api.patch(f"/webhook_endpoints/{first['id']}/", {"url": "HTTPS://DUP.example.invalid/x"})
    assert (recased.status_code, recased.json()["url"]) == (200, "HTTPS://DUP.example.invalid/x")
    assert len(api.walk("/webhook_endpoints/")) == 2


# (url, accepted): the rule of the contract's WebhookUrl, case by case.
URL_CASES = [
    ("HTTPS://DUP.example.invalid/x", True),  # the scheme and host in any case
    ("http://[::1]:8080/hook", True),
    ("https://[2001:db8::1]/", True),
    ("https://[::ffff:192.0.2.1]/", True),
    ("https://192.0.2.1:65535/", True),
    ("https://user:pw@h.example.invalid:1/?q#f", True),
    ("https://1.2.3.4.example.invalid/", True),  # a name that starts with digits
    ("https://a.example.invalid:99999/", False),  # port beyond 65535
    ("https://a.example.invalid:0/", False),
    ("https://a.example.invalid:/", False),  # an empty port
    ("https://a.example.invalid:0443/", False),  # a leading zero
    ("HTTP://[0]", False),  # not an IPv6 address
    ("https://[1::2::3]/", False),
    ("https://[12345::1]/", False),
    ("https://[fe80::1%25eth0]/", False),  # zones are not for webhooks
    ("https://[::]/", False),  # the unspecified address
    ("https://[0:0:0:0:0:0:0:0]/", False),
    ("https://0.0.0.0/", False),
    ("https://0.1.2.3/", False),  # 0.0.0.0/8, "this network"
    ("https://999.1.1.1/", False),  # digits and dots only: must be an IPv4 address
    ("https://127.1/", False),
    ("https://0/", False),
    ("https://01.2.3.4/", False),
]


@pytest.mark.parametrize(("url", "accepted"), URL_CASES)
def test_webhook_urls_follow_the_contracts_rule(
    api: Api, workspace: dict[str, Any], url: str, accepted: bool
) -> None:
    contract = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    schema = contract["components"]["schemas"]["WebhookUrl"]
    assert (not list(Draft202012Validator(schema).iter_errors(url))) is accepted  # the contract
    response = api.post(
        "/webhook_endpoints/", {"workspace_id": workspace["id"], "url": url, "events": ["bot.done"]}
    )
    if accepted:  # the sandbox
        assert response.status_code == 201, response.text
    else:
        assert (response.status_code, list(response.json())) == (400, ["url"]), response.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://h.example.invalid/"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "/relative/path"}, "url"),
        ({"url": "https://h.example.invalid/a b"}, "url"),
        ({"url": "https://h.example.invalid/\n"}, "url"),
        ({"url": "https://h.example.invalid/\u2028"}, "url"),
        ({"url": "https://h.example.invalid/" + "a" * 2048}, "url"),
        ({"url": 7}, "url"),
        ({"events": []}, "events"),
        ({"events": ["bot.done", "bot.exploded"]}, "events"),
        ({"events": ["bot.done", "bot.done"]}, "events"),
        ({"events": "bot.done"}, "events"),
        ({"enabled": "yes"}, "enabled"),
        ({"workspace_id": "no-such-workspace"}, "workspace_id"),
        ({"secret": "whsec_chosen"}, "secret"),
    ],
)
def test_create_refuses_bad_fields(
    api: Api, workspace: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {
        "workspace_id": workspace["id"],
        "url": "https://h.example.invalid/",
        "events": ["bot.done"],
        **change,
    }
    response = api.post("/webhook_endpoints/", body)
    assert (response.status_code, list(response.json())) == (400, [field]), response.text
    assert api.walk("/webhook_endpoints/") == []
    if change.get("events") == ["bot.done", "bot.exploded"]:
        assert '"bot.exploded"' in response.json()["events"][0]  # the message names the unknown value
    if field in ("url", "events", "enabled"):  # the same checks guard a PATCH
        created = create_webhook(api, workspace["id"], "https://ok.example.invalid/")
        patched = api.patch(f"/webhook_endpoints/{created['id']}/", {field: change[field]})
        assert (patched.status_code, list(patched.json())) == (400, [field])
        assert api.get(f"/webhook_endpoints/{created['id']}/").json()["etag"] == created["etag"]


def test_create_names_every_missing_field(api: Api) -> None:
    response = api.post("/webhook_endpoints/", {})
    assert (response.status_code, set(response.json())) == (400, {"workspace_id", "url", "events"})


def test_every_event_type_is_accepted(api: Api, workspace: dict[str, Any]) -> None:
    created = create_webhook(api, workspace["id"], "https://all.example.invalid/", list(EVENT_TYPES))
    assert created["events"] == sorted(EVENT_TYPES)


def test_the_contracts_url_pattern_is_the_sandboxs() -> None:
    """One regex decides what a webhook URL is, for the server and the contract alike."""
    contract = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    assert contract["components"]["schemas"]["WebhookUrl"]["pattern"] == URL_PATTERN
    events = contract["components"]["schemas"]["WebhookEventType"]["enum"]
    assert sorted(events) == sorted(EVENT_TYPES)


def test_a_developer_reads_but_every_write_is_403(
    api: Api, developer_api: Api, workspace: dict[str, Any]
) -> None:
    created = create_webhook(api, workspace["id"], "https://dev.example.invalid/")
    path = f"/webhook_endpoints/{created['id']}/"
    assert developer_api.get(path).json() == {k: v for k, v in created.items() if k != "secret"}
    assert [h["id"] for h in developer_api.walk("/webhook_endpoints/")] == [created["id"]]
    writes = [
        developer_api.post(
            "/webhook_endpoints/",
            {"workspace_id": workspace["id"], "url": "https://x.example.invalid/", "events": ["bot.done"]},
        ),
        developer_api.patch(path, {"enabled": False}),
        developer_api.delete(path),
        developer_api.post(f"{path}rotate_secret/"),
    ]
    for response in writes:
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
        assert "whsec_" not in response.text
    assert api.walk("/webhook_endpoints/") == [{k: v for k, v in created.items() if k != "secret"}]


def test_knobs_apply_to_the_new_routes(make_sandbox) -> None:  # noqa: ANN001
    """A fault and the rate limit reach the webhook routes, and stats count them by template."""
    faulty = make_sandbox(fail_rate=1.0, seed=seed_for(FAULT_503, is_write=False))
    response = Api(faulty.base_url, faulty.token).get("/webhook_endpoints/")
    assert (response.status_code, response.json()["code"]) == (503, "service_unavailable")
    assert faulty.stats()["by_route"]["GET /api/v1/webhook_endpoints/"] == 1
    limited = make_sandbox(rate_limit=1)
    api = Api(limited.base_url, limited.token)
    assert api.get("/webhook_endpoints/").headers["X-RateLimit-Limit"] == "1"
    throttled = api.get("/webhook_endpoints/some-id/")
    assert (throttled.status_code, throttled.json()["code"]) == (429, "throttled")
    assert limited.stats()["by_route"]["GET /api/v1/webhook_endpoints/{id}/"] == 1
