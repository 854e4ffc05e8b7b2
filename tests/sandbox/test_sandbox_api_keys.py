"""API keys (``/api_keys/``) over real HTTP: the secret once, who sees what, disable, delete, use."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from provisioner.sandbox import RunningSandbox, create_token
from tests.sandbox.conftest import Api


def invite(api: Api, email: str, role: str = "developer") -> dict[str, Any]:
    response = api.post("/users/", {"email": email, "role": role})
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_workspace(api: Api, name: str) -> dict[str, Any]:
    response = api.post("/workspaces/", {"name": name})
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_key(api: Api, name: str, workspace_id: str, user_id: str, **kwargs: Any) -> dict[str, Any]:
    response = api.post(
        "/api_keys/", {"name": name, "workspace_id": workspace_id, "user_id": user_id}, **kwargs
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_text(db_path: object) -> str:
    """Every value in every table of the sandbox db, blobs decoded: what a secret must not be in."""
    values: list[str] = []
    with sqlite3.connect(str(db_path)) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                values.extend(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(values)


def admin_id(api: Api) -> str:
    return str(api.get("/me/").json()["id"])


@pytest.fixture
def workspace(api: Api) -> dict[str, Any]:
    return create_workspace(api, "notetaker-production")


@pytest.fixture
def developer(sandbox: RunningSandbox, api: Api) -> tuple[Api, dict[str, Any]]:
    """A developer's client and user."""
    user = invite(api, "dev@example.com")
    return Api(sandbox.base_url, create_token(sandbox.db_path, "dev@example.com")), user


def test_create_returns_the_secret_once_and_reads_never(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    response = api.post(
        "/api_keys/", {"name": "ci-deploy", "workspace_id": workspace["id"], "user_id": admin_id(api)}
    )
    assert response.status_code == 201
    created = response.json()
    secret = created.pop("key")
    assert created["prefix"] and secret.startswith(created["prefix"]) and len(secret) > len(created["prefix"])
    assert (created["name"], created["workspace_id"], created["disabled"], created["last_used_at"]) == (
        "ci-deploy",
        workspace["id"],
        False,
        None,
    )
    assert response.headers["ETag"] == created["etag"]
    assert response.headers["Location"].endswith(f"/api/v1/api_keys/{created['id']}/")
    one = api.get(f"/api_keys/{created['id']}/")
    listed = api.get("/api_keys/")
    assert one.json() == created
    assert listed.json()["results"] == [created]
    for read in (one, listed):
        assert secret not in read.text and "key" not in read.json()
    # Only the hash is stored: the secret appears nowhere in the database.
    assert secret not in stored_text(sandbox.db_path)


def test_a_created_key_authenticates_as_its_user_and_records_its_use(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any], developer: tuple[Api, dict[str, Any]]
) -> None:
    _, dev = developer
    created = create_key(api, "dev-key", workspace["id"], dev["id"])
    assert api.get(f"/api_keys/{created['id']}/").json()["last_used_at"] is None
    as_key = Api(sandbox.base_url, created["key"])
    me = as_key.get("/me/")
    assert (me.status_code, me.json()["email"]) == (200, "dev@example.com")
    first_use = api.get(f"/api_keys/{created['id']}/").json()
    assert first_use["last_used_at"] is not None
    assert first_use["etag"] == created["etag"]  # use is not a change of the key
    # Timestamps have millisecond resolution: use the key until the clock has
    # moved on, which it does within a few requests (no sleeping).
    for _ in range(10_000):
        assert as_key.get("/me/").status_code == 200
        later = api.get(f"/api_keys/{created['id']}/").json()["last_used_at"]
        if later != first_use["last_used_at"]:
            break
    assert later > first_use["last_used_at"]
    # The server's own token is not an API key: using it changes no key.
    assert api.get(f"/api_keys/{created['id']}/").json()["last_used_at"] == later


def test_disabled_key_is_401_and_stays_disabled(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    created = create_key(api, "ci", workspace["id"], admin_id(api))
    as_key = Api(sandbox.base_url, created["key"])
    assert as_key.get("/users/").status_code == 200
    used = api.get(f"/api_keys/{created['id']}/").json()
    response = api.patch(
        f"/api_keys/{created['id']}/", {"disabled": True}, headers={"If-Match": used["etag"]}
    )
    assert response.status_code == 200
    disabled = response.json()
    assert disabled["disabled"] is True and disabled["etag"] != used["etag"]
    assert response.headers["ETag"] == disabled["etag"]
    refused = as_key.get("/me/")
    assert (refused.status_code, refused.json()["code"]) == (401, "authentication_failed")
    assert created["key"] not in refused.text
    # Refused use is not use; disabling again changes nothing; enabling is refused.
    assert api.get(f"/api_keys/{created['id']}/").json() == disabled
    again = api.patch(f"/api_keys/{created['id']}/", {"disabled": True})
    assert (again.status_code, again.json()) == (200, disabled)
    enable = api.patch(f"/api_keys/{created['id']}/", {"disabled": False})
    assert (enable.status_code, list(enable.json())) == (400, ["disabled"])
    assert as_key.get("/me/").status_code == 401


def test_only_a_disabled_key_can_be_deleted(api: Api, workspace: dict[str, Any]) -> None:
    created = create_key(api, "ci", workspace["id"], admin_id(api))
    live = api.delete(f"/api_keys/{created['id']}/")
    assert (live.status_code, live.json()["code"]) == (409, "key_not_disabled")
    assert api.get(f"/api_keys/{created['id']}/").status_code == 200
    assert api.patch(f"/api_keys/{created['id']}/", {"disabled": True}).status_code == 200
    assert api.delete(f"/api_keys/{created['id']}/").status_code == 204
    gone = api.get(f"/api_keys/{created['id']}/")
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")
    assert api.walk("/api_keys/") == []


def test_if_match_mismatch_is_412_and_changes_nothing(api: Api, workspace: dict[str, Any]) -> None:
    created = create_key(api, "ci", workspace["id"], admin_id(api))
    stale = '"not-the-etag"'
    patch = api.patch(f"/api_keys/{created['id']}/", {"disabled": True}, headers={"If-Match": stale})
    assert (patch.status_code, patch.json()["code"]) == (412, "precondition_failed")
    assert api.get(f"/api_keys/{created['id']}/").json()["disabled"] is False
    disabled = api.patch(f"/api_keys/{created['id']}/", {"disabled": True}, headers={"If-Match": "*"}).json()
    delete = api.delete(f"/api_keys/{created['id']}/", headers={"If-Match": created["etag"]})
    assert (delete.status_code, delete.json()["code"]) == (412, "precondition_failed")
    assert api.get(f"/api_keys/{created['id']}/").json() == disabled
    assert (
        api.delete(f"/api_keys/{created['id']}/", headers={"If-Match": disabled["etag"]}).status_code == 204
    )


def test_list_is_organization_wide_filterable_and_paged(
    api: Api, developer: tuple[Api, dict[str, Any]]
) -> None:
    _, dev = developer
    admin = admin_id(api)
    staging, production = create_workspace(api, "staging"), create_workspace(api, "production")
    made = [
        create_key(api, f"k{n}", (staging, production)[n % 2]["id"], (admin, dev["id"])[n // 3 % 2])
        for n in range(7)
    ]
    ids = [k["id"] for k in made]
    first = api.get("/api_keys/?page_size=3").json()
    assert len(first["results"]) == 3 and first["next"]
    assert [k["id"] for k in api.walk("/api_keys/?page_size=3")] == ids
    by_workspace = api.walk(f"/api_keys/?workspace_id={production['id']}&page_size=2")
    assert [k["id"] for k in by_workspace] == [k["id"] for k in made if k["workspace_id"] == production["id"]]
    by_user = api.walk(f"/api_keys/?user_id={dev['id']}")
    assert [k["id"] for k in by_user] == [k["id"] for k in made if k["user_id"] == dev["id"]]
    both = api.walk(f"/api_keys/?user_id={dev['id']}&workspace_id={staging['id']}")
    assert [k["id"] for k in both] == [
        k["id"] for k in made if k["user_id"] == dev["id"] and k["workspace_id"] == staging["id"]
    ]
    assert both  # the data above has such keys, so the filter is really tested


def test_developer_reads_every_keys_metadata_and_manages_only_their_own(
    api: Api, workspace: dict[str, Any], developer: tuple[Api, dict[str, Any]]
) -> None:
    dev_api, dev = developer
    admin = admin_id(api)
    admins_key = create_key(api, "admin-key", workspace["id"], admin)
    made_for_dev = create_key(api, "by-admin", workspace["id"], dev["id"])
    own = create_key(dev_api, "by-dev", workspace["id"], dev["id"])
    assert own["user_id"] == dev["id"] and own["key"]
    # Lists: every key's metadata (a least-privilege plan must see the keys it compares), no secret.
    listed = dev_api.walk("/api_keys/")
    assert [k["id"] for k in listed] == [admins_key["id"], made_for_dev["id"], own["id"]]
    assert all("key" not in k for k in listed)
    assert [k["id"] for k in dev_api.walk(f"/api_keys/?user_id={admin}")] == [admins_key["id"]]
    other = f"/api_keys/{admins_key['id']}/"
    assert dev_api.get(other).json()["name"] == "admin-key"
    # Another user's key cannot be changed; it stays as it was.
    for response in (dev_api.patch(other, {"disabled": True}), dev_api.delete(other)):
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert api.get(other).json()["disabled"] is False
    # Creating a key for someone else is forbidden.
    refused = dev_api.post("/api_keys/", {"name": "x", "workspace_id": workspace["id"], "user_id": admin})
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    # Only an admin's key records where a key was delivered: a developer cannot pass a key off as a tool's.
    forged = dev_api.post(
        "/api_keys/",
        {"name": "ci", "workspace_id": workspace["id"], "user_id": dev["id"], "delivered_to": "RECALL_X"},
    )
    assert (forged.status_code, forged.json()["code"]) == (403, "permission_denied")
    assert len(api.walk("/api_keys/")) == 3
    # Their own: read, disable, delete.
    mine = f"/api_keys/{made_for_dev['id']}/"
    assert dev_api.get(mine).status_code == 200
    assert dev_api.patch(mine, {"disabled": True}).json()["disabled"] is True
    assert dev_api.delete(mine).status_code == 204
    # The exception is for keys only: other writes stay forbidden to developers.
    assert dev_api.post("/workspaces/", {"name": "w"}).status_code == 403


def test_an_admin_records_where_a_keys_secret_was_delivered(api: Api, workspace: dict[str, Any]) -> None:
    made = api.post(
        "/api_keys/",
        {
            "name": "ci",
            "workspace_id": workspace["id"],
            "user_id": admin_id(api),
            "delivered_to": "RECALL_CI",
        },
    ).json()
    assert made["delivered_to"] == "RECALL_CI"
    assert api.get(f"/api_keys/{made['id']}/").json()["delivered_to"] == "RECALL_CI"
    bad = api.post(
        "/api_keys/",
        {"name": "ci", "workspace_id": workspace["id"], "user_id": admin_id(api), "delivered_to": "lower"},
    )
    assert bad.status_code == 400 and "delivered_to" in bad.json()


def test_an_admin_manages_another_users_key(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any], developer: tuple[Api, dict[str, Any]]
) -> None:
    dev_api, dev = developer
    own = create_key(dev_api, "by-dev", workspace["id"], dev["id"])
    assert api.patch(f"/api_keys/{own['id']}/", {"disabled": True}).status_code == 200
    assert Api(sandbox.base_url, own["key"]).get("/me/").status_code == 401
    assert api.delete(f"/api_keys/{own['id']}/").status_code == 204


def test_removing_a_user_removes_their_keys(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any], developer: tuple[Api, dict[str, Any]]
) -> None:
    _, dev = developer
    created = create_key(api, "dev-key", workspace["id"], dev["id"])
    assert api.delete(f"/users/{dev['id']}/").status_code == 204
    assert api.get(f"/api_keys/{created['id']}/").status_code == 404
    assert Api(sandbox.base_url, created["key"]).get("/me/").status_code == 401


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name", "workspace_id", "user_id"}),
        ({"name": "  ", "workspace_id": "nope", "user_id": "nope"}, {"name", "workspace_id", "user_id"}),
        ({"name": "x" * 101}, {"name", "workspace_id", "user_id"}),
    ],
)
def test_create_validates_its_fields(api: Api, body: dict[str, Any], fields: set[str]) -> None:
    response = api.post("/api_keys/", body)
    assert (response.status_code, set(response.json())) == (400, fields)
    assert api.walk("/api_keys/") == []


def test_idempotent_replay_returns_the_same_key_without_its_secret(
    sandbox: RunningSandbox, api: Api, workspace: dict[str, Any]
) -> None:
    body = {"name": "ci", "workspace_id": workspace["id"], "user_id": admin_id(api)}
    first = api.post("/api_keys/", body, headers={"Idempotency-Key": "create-ci"})
    replay = api.post("/api_keys/", body, headers={"Idempotency-Key": "create-ci"})
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    secret = first.json()["key"]
    assert "key" not in replay.json() and secret not in replay.text
    assert replay.json() == {k: v for k, v in first.json().items() if k != "key"}
    assert replay.headers["ETag"] == first.headers["ETag"]
    assert [k["id"] for k in api.walk("/api_keys/")] == [first.json()["id"]]  # one key, not two
    # The recorded replay does not keep the secret either.
    assert secret not in stored_text(sandbox.db_path)
    reused = api.post("/api_keys/", {**body, "name": "other"}, headers={"Idempotency-Key": "create-ci"})
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
