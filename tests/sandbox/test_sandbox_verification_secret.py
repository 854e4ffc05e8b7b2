"""A workspace's verification secret over real HTTP: rotated, shown once, never stored or replayed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from provisioner.sandbox import RunningSandbox, seed
from tests.sandbox.conftest import Api
from tests.sandbox.settings_support import stored_text


def test_a_new_workspace_has_had_its_secret_since_creation(workspace: dict[str, Any]) -> None:
    assert workspace["verification_secret_rotated_at"] == workspace["created_at"]


def test_rotation_shows_the_secret_once_and_changes_the_workspace(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    path = f"/workspaces/{workspace['id']}/rotate_verification_secret/"
    response = api.post(path, headers={"If-Match": workspace["etag"]})
    assert response.status_code == 200, response.text
    body = response.json()
    secret = body["verification_secret"]
    assert body["workspace_id"] == workspace["id"] and secret.startswith("wsec_")
    after = api.get(f"/workspaces/{workspace['id']}/")
    assert after.json()["verification_secret_rotated_at"] == body["rotated_at"]
    assert after.json()["etag"] != workspace["etag"] and response.headers["ETag"] == after.json()["etag"]
    assert secret not in after.text and secret not in api.get("/workspaces/").text
    assert secret not in stored_text(sandbox.db_path)
    second = api.post(path, {}).json()["verification_secret"]
    assert second != secret


def test_stale_if_match_is_412_and_rotates_nothing(api: Api, workspace: dict[str, Any]) -> None:
    response = api.post(
        f"/workspaces/{workspace['id']}/rotate_verification_secret/", headers={"If-Match": '"stale"'}
    )
    assert (response.status_code, response.json()["code"]) == (412, "precondition_failed")
    assert "verification_secret" not in response.text
    assert api.get(f"/workspaces/{workspace['id']}/").json() == workspace


def test_idempotent_replay_has_no_secret(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    path = f"/workspaces/{workspace['id']}/rotate_verification_secret/"
    first = api.post(path, headers={"Idempotency-Key": "rotate-ws"})
    replay = api.post(path, headers={"Idempotency-Key": "rotate-ws"})
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == {k: v for k, v in first.json().items() if k != "verification_secret"}
    assert first.json()["verification_secret"] not in replay.text
    assert first.json()["verification_secret"] not in stored_text(sandbox.db_path)
    # The replay changed nothing: the workspace is as the first rotation left it.
    assert (
        api.get(f"/workspaces/{workspace['id']}/").json()["verification_secret_rotated_at"]
        == (first.json()["rotated_at"])
    )


def test_refusals(api: Api, developer_api: Api, workspace: dict[str, Any]) -> None:
    path = f"/workspaces/{workspace['id']}/rotate_verification_secret/"
    forbidden = developer_api.post(path)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "permission_denied")
    unknown = api.post("/workspaces/no-such-workspace/rotate_verification_secret/")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    extra = api.post(path, {"verification_secret": "wsec_mine"})
    assert (extra.status_code, extra.json()) == (400, {"verification_secret": ["Unknown field."]})
    not_object = api.post(path, [])
    assert (not_object.status_code, not_object.json()["code"]) == (400, "parse_error")
    assert api.get(f"/workspaces/{workspace['id']}/").json() == workspace


def test_a_database_from_before_settings_gets_the_field(make_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    """A sandbox db made before version 2 keeps working: its workspaces gain the rotation time."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the version-1 workspaces table, with one row
        conn.execute(
            "CREATE TABLE workspaces (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
            "name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
            "rev INTEGER NOT NULL DEFAULT 1)"
        )
        conn.execute(
            "INSERT INTO workspaces (id, name, created_at, updated_at) "
            "VALUES ('w1', 'old', '2025-01-02T03:04:05.000Z', '2025-01-02T03:04:05.000Z')"
        )
    seed(db, workspaces=["new"])
    sandbox = make_sandbox(db_path=db)
    api = Api(sandbox.base_url, sandbox.token)
    by_name = {w["name"]: w for w in api.walk("/workspaces/")}
    assert by_name["old"]["verification_secret_rotated_at"] == "2025-01-02T03:04:05.000Z"
    assert by_name["new"]["verification_secret_rotated_at"] == by_name["new"]["created_at"]
    assert api.walk("/webhook_endpoints/") == [] and api.walk("/credentials/") == []
