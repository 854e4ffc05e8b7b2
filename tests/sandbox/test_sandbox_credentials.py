"""Credentials (``/credentials/``) over real HTTP: write-only secrets as salted digests, one per provider.

Every response is checked against schemas/openapi.yaml by the ``sandbox``
fixture as well, including the per-provider rules of ``Credential``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioner.sandbox import RunningSandbox
from provisioner.sandbox.credentials import PROVIDERS, REQUIRED_NOT_NULL
from provisioner.sandbox.knobs import FAULT_500
from tests.sandbox.conftest import Api
from tests.sandbox.settings_support import create_workspace, matches, stored_text
from tests.sandbox.test_sandbox_knobs import seed_for

SENTINEL = "sk-sentinel-5f0c9a1e-never-in-output"


def full_body(workspace_id: str, provider: str, secret: str = SENTINEL) -> dict[str, Any]:
    """A valid create body for ``provider``: every field (optional ones too) and every secret."""
    spec = PROVIDERS[provider]
    return {
        "workspace_id": workspace_id,
        "provider": provider,
        "fields": {name: f"{name}-value" for name in spec.fields},
        "secrets": {name: f"{secret}-{name}" for name in spec.secrets},
    }


def create_credential(api: Api, body: dict[str, Any], **kwargs: Any) -> Any:
    response = api.post("/credentials/", body, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_every_provider_creates_with_digests_that_verify_and_no_secret_anywhere(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any], provider: str
) -> None:
    body = full_body(workspace["id"], provider)
    response = api.post("/credentials/", body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"].endswith(f"/api/v1/credentials/{created['id']}/")
    assert (created["provider"], created["kind"], created["fields"]) == (
        provider,
        PROVIDERS[provider].kind,
        body["fields"],
    )
    assert set(created["secrets"]) == set(body["secrets"])
    for name, value in body["secrets"].items():
        digest = created["secrets"][name]
        assert (digest["algorithm"], digest["iterations"], len(digest["salt"])) == (
            "pbkdf2_sha256",
            600_000,
            32,
        )
        assert matches(value, digest) and not matches(value + "x", digest)
    reads = [api.get(f"/credentials/{created['id']}/"), api.get("/credentials/")]
    assert reads[0].json() == created and reads[1].json()["results"] == [created]
    stored = stored_text(sandbox.db_path)
    for text in [response.text, *(r.text for r in reads), stored]:
        assert SENTINEL not in text


def test_a_rewritten_secret_gets_a_new_salt_and_still_verifies(api: Api, workspace: dict[str, Any]) -> None:
    created = create_credential(api, full_body(workspace["id"], "deepgram", "first"))
    before = created["secrets"]["api_key"]
    path = f"/credentials/{created['id']}/"
    same = api.patch(path, {"secrets": {"api_key": "first-api_key"}}, headers={"If-Match": created["etag"]})
    assert same.status_code == 200, same.text
    after = same.json()["secrets"]["api_key"]
    # Same value, new salt: the digest changes, and both verify the value.
    assert after["salt"] != before["salt"] and after["digest"] != before["digest"]
    assert matches("first-api_key", after) and matches("first-api_key", before)
    assert same.json()["etag"] != created["etag"]
    changed = api.patch(path, {"secrets": {"api_key": "second"}}).json()["secrets"]["api_key"]
    assert matches("second", changed) and not matches("first-api_key", changed)


def test_patch_replaces_what_it_names_and_null_removes_an_optional_field(
    api: Api, workspace: dict[str, Any]
) -> None:
    created = create_credential(api, full_body(workspace["id"], "aws_transcribe"))
    path = f"/credentials/{created['id']}/"
    region = api.patch(path, {"fields": {"region": "eu-west-1"}}).json()
    assert region["fields"] == {"region": "eu-west-1", "access_key_id": "access_key_id-value"}
    assert region["secrets"] == created["secrets"]
    one_secret = api.patch(path, {"secrets": {"secret_access_key": "s2"}}).json()
    assert one_secret["fields"] == region["fields"]
    assert matches("s2", one_secret["secrets"]["secret_access_key"])
    nothing = api.patch(path, {"fields": {"region": "eu-west-1"}})
    assert nothing.status_code == 200 and nothing.json()["etag"] == one_secret["etag"]
    required = api.patch(path, {"fields": {"access_key_id": None}})
    assert (required.status_code, required.json()) == (400, {"fields.access_key_id": [REQUIRED_NOT_NULL]})

    speechmatics = create_credential(api, full_body(workspace["id"], "speechmatics"))
    spath = f"/credentials/{speechmatics['id']}/"
    assert speechmatics["fields"] == {"region": "region-value"}
    removed = api.patch(spath, {"fields": {"region": None}})
    assert removed.status_code == 200 and removed.json()["fields"] == {}
    assert api.get(spath).json()["fields"] == {}


def test_if_match_on_patch_and_delete(api: Api, workspace: dict[str, Any]) -> None:
    created = create_credential(api, full_body(workspace["id"], "rev"))
    path = f"/credentials/{created['id']}/"
    stale = api.patch(path, {"secrets": {"api_key": "x"}}, headers={"If-Match": '"stale"'})
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed")
    assert api.get(path).json() == created
    gone = api.delete(path, headers={"If-Match": '"stale"'})
    assert (gone.status_code, gone.json()["code"]) == (412, "precondition_failed")
    assert api.delete(path, headers={"If-Match": created["etag"]}).status_code == 204
    assert api.get(path).status_code == 404
    assert api.walk("/credentials/") == []


def test_one_credential_per_provider_per_workspace(api: Api, workspace: dict[str, Any]) -> None:
    create_credential(api, full_body(workspace["id"], "deepgram"))
    again = api.post("/credentials/", full_body(workspace["id"], "deepgram", "other"))
    assert (again.status_code, again.json()["code"]) == (409, "already_exists")
    assert "other" not in again.text
    create_credential(api, full_body(workspace["id"], "gladia"))
    other = create_workspace(api, "notetaker-staging")
    create_credential(api, full_body(other["id"], "deepgram"))
    assert [c["provider"] for c in api.walk("/credentials/")] == ["deepgram", "gladia", "deepgram"]


def test_list_filters_by_workspace_and_provider_and_pages(api: Api) -> None:
    staging, production = create_workspace(api, "staging"), create_workspace(api, "production")
    providers = ["deepgram", "rev", "gladia", "google_calendar"]
    made = [
        create_credential(api, full_body(ws["id"], provider))
        for provider in providers
        for ws in (staging, production)
    ]
    assert [c["id"] for c in api.walk("/credentials/?page_size=3")] == [c["id"] for c in made]
    first = api.get("/credentials/?page_size=3").json()
    assert len(first["results"]) == 3 and first["next"]
    in_production = api.walk(f"/credentials/?workspace_id={production['id']}&page_size=3")
    assert [c["provider"] for c in in_production] == providers  # 4 items, 2 pages
    calendar = api.walk("/credentials/?provider=google_calendar")
    assert {c["workspace_id"] for c in calendar} == {staging["id"], production["id"]}
    both = api.walk(f"/credentials/?provider=rev&workspace_id={staging['id']}")
    assert [(c["provider"], c["workspace_id"]) for c in both] == [("rev", staging["id"])]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"provider": "openai"}, {"provider"}),
        ({"provider": 3}, {"provider"}),
        ({"workspace_id": "no-such-workspace"}, {"workspace_id"}),
        ({"secrets": {}}, {"secrets.api_key"}),
        ({"secrets": {"api_key": ""}}, {"secrets.api_key"}),
        ({"secrets": {"api_key": "x" * 4097}}, {"secrets.api_key"}),
        ({"secrets": {"api_key": "k", "apikey": "k"}}, {"secrets.apikey"}),
        ({"secrets": "k"}, {"secrets"}),
        ({"fields": {"region": "eu"}}, {"fields.region"}),
        ({"fields": []}, {"fields"}),
        ({"label": "mine"}, {"label"}),
    ],
)
def test_create_refuses_bad_fields_naming_each(
    api: Api, workspace: dict[str, Any], body: dict[str, Any], fields: set[str]
) -> None:
    request = {**full_body(workspace["id"], "deepgram"), **body}
    response = api.post("/credentials/", request)
    assert (response.status_code, set(response.json())) == (400, fields), response.text
    assert SENTINEL not in response.text
    assert api.walk("/credentials/") == []


@pytest.mark.parametrize(
    ("provider", "body", "fields"),
    [
        ("aws_transcribe", {"fields": {"region": "eu-west-1"}}, {"fields.access_key_id"}),
        ("aws_transcribe", {"secrets": {}}, {"secrets.secret_access_key"}),
        (
            "google_calendar",
            {"fields": {}, "secrets": {"client_secret": "c", "webhook_secret": "w"}},
            {"fields.client_id", "secrets.webhook_secret"},
        ),
        ("google_calendar", {"fields": {"client_id": "a\x07b"}}, {"fields.client_id"}),
        ("microsoft_calendar", {"fields": {"client_id": "x" * 257}}, {"fields.client_id"}),
        ("speechmatics", {"fields": {"region": None}}, {"fields.region"}),
    ],
)
def test_provider_rules(
    api: Api, workspace: dict[str, Any], provider: str, body: dict[str, Any], fields: set[str]
) -> None:
    request = {**full_body(workspace["id"], provider), **body}
    response = api.post("/credentials/", request)
    assert (response.status_code, set(response.json())) == (400, fields), response.text


def test_an_optional_field_may_be_left_out_and_fields_may_be_omitted(
    api: Api, workspace: dict[str, Any]
) -> None:
    speechmatics = create_credential(
        api, {"workspace_id": workspace["id"], "provider": "speechmatics", "secrets": {"api_key": "k"}}
    )
    assert speechmatics["fields"] == {}


def test_create_names_every_missing_field(api: Api) -> None:
    response = api.post("/credentials/", {})
    assert (response.status_code, set(response.json())) == (400, {"workspace_id", "provider"})


def test_patch_refuses_names_of_other_providers_and_unknown_keys(api: Api, workspace: dict[str, Any]) -> None:
    created = create_credential(api, full_body(workspace["id"], "deepgram"))
    path = f"/credentials/{created['id']}/"
    for body, fields in [
        ({"secrets": {"client_secret": "x"}}, {"secrets.client_secret"}),
        ({"fields": {"region": "eu"}}, {"fields.region"}),
        ({"provider": "rev"}, {"provider"}),
        ({"secrets": {"api_key": ""}}, {"secrets.api_key"}),
    ]:
        response = api.patch(path, body)
        assert (response.status_code, set(response.json())) == (400, fields), response.text
    assert api.get(path).json() == created


def test_idempotent_replay_of_a_create_is_the_same_credential(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    body = full_body(workspace["id"], "elevenlabs")
    first = api.post("/credentials/", body, headers={"Idempotency-Key": "cred-1"})
    replay = api.post("/credentials/", body, headers={"Idempotency-Key": "cred-1"})
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert len(api.walk("/credentials/")) == 1
    assert SENTINEL not in stored_text(sandbox.db_path)  # not in the recorded replay either


def test_a_developer_reads_without_digests_but_every_write_is_403(
    api: Api, developer_api: Api, workspace: dict[str, Any]
) -> None:
    created = create_credential(api, full_body(workspace["id"], "assembly_ai"))
    assert created["secrets"]["api_key"]["digest"]  # an admin's key reads the digest
    path = f"/credentials/{created['id']}/"
    # A developer's key reads fields and labels, never a digest it could guess against offline.
    as_developer = {**created, "secrets": {"api_key": None}}
    assert developer_api.get(path).json() == as_developer
    assert developer_api.walk(f"/credentials/?workspace_id={workspace['id']}") == [as_developer]
    for response in (
        developer_api.post("/credentials/", full_body(workspace["id"], "rev")),
        developer_api.patch(path, {"secrets": {"api_key": "x"}}),
        developer_api.delete(path),
    ):
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert api.walk("/credentials/") == [created]


def test_knobs_apply_to_the_new_routes(make_sandbox) -> None:  # noqa: ANN001
    sandbox = make_sandbox(fail_rate=1.0, seed=seed_for(FAULT_500, is_write=False))
    response = Api(sandbox.base_url, sandbox.token).get("/credentials/")
    assert (response.status_code, response.json()["code"]) == (500, "server_error")
    assert sandbox.stats()["by_route"]["GET /api/v1/credentials/"] == 1


def test_a_secret_written_without_a_label_has_an_unknown_source(api: Api, workspace: dict[str, Any]) -> None:
    body = {**full_body(workspace["id"], "deepgram"), "secret_sources": {"api_key": "env DG v1"}}
    created = create_credential(api, body)
    assert created["secret_sources"] == {"api_key": "env DG v1"}
    path = f"/credentials/{created['id']}/"
    relabelled = api.patch(
        path,
        {"secrets": {"api_key": "v2"}, "secret_sources": {"api_key": "env DG v2"}},
        headers={"If-Match": created["etag"]},
    ).json()
    assert relabelled["secret_sources"] == {"api_key": "env DG v2"}
    by_hand = api.patch(path, {"secrets": {"api_key": "v3"}}, headers={"If-Match": relabelled["etag"]}).json()
    assert by_hand["secret_sources"] == {"api_key": None}
    # A label names only a secret the same request writes.
    refused = api.patch(
        path, {"secret_sources": {"api_key": "env DG v9"}}, headers={"If-Match": by_hand["etag"]}
    )
    assert refused.status_code == 400 and "secret_sources.api_key" in refused.json()


def test_zoom_is_refused_with_the_real_api_path_that_holds_it(api: Api, workspace: dict[str, Any]) -> None:
    # Recall.ai's real v2 API holds the Zoom OAuth app: the contract keeps no second copy (issue 22).
    body = {
        "workspace_id": workspace["id"],
        "provider": "zoom",
        "fields": {"client_id": "zoom-client"},
        "secrets": {"client_secret": SENTINEL, "webhook_secret": SENTINEL},
    }
    response = api.post("/credentials/", body)
    assert (response.status_code, set(response.json())) == (400, {"provider"}), response.text
    assert "/api/v2/zoom-oauth-apps/" in response.json()["provider"][0]
    assert SENTINEL not in response.text
    assert api.walk("/credentials/") == [] and api.walk("/credentials/?provider=zoom") == []


def test_a_zoom_credential_an_older_sandbox_made_is_gone_after_a_restart(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    db = tmp_path / "older.db"
    first = make_sandbox(db_path=db, token="fixed-key")
    api = Api(first.base_url, first.token)
    workspace = create_workspace(api, "notetaker-production")
    kept = create_credential(api, full_body(workspace["id"], "deepgram"))
    first.stop()
    # What schema version 3 could hold: a zoom row beside the deepgram one.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO credentials (id, workspace_id, provider, kind, fields, secrets, secret_sources, "
            "created_at, updated_at) SELECT 'old-zoom', workspace_id, 'zoom', 'platform', "
            "'{\"client_id\": \"z\"}', '{}', '{}', created_at, updated_at FROM credentials"
        )
        conn.execute("PRAGMA user_version=3")
    conn.close()

    second = make_sandbox(db_path=db)
    again = Api(second.base_url, second.token)
    assert [c["id"] for c in again.walk("/credentials/")] == [kept["id"]]
    assert again.get("/credentials/old-zoom/").status_code == 404
