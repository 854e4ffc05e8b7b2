"""Pagination, concurrent writes, ETag/If-Match and Idempotency-Key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from provisioner.sandbox import RunningSandbox, create_token, seed
from tests.sandbox.conftest import Api


def test_pages_follow_next_and_previous(make_sandbox, tmp_path) -> None:
    db = tmp_path / "paged.db"
    seed(db, users=[(f"u{n:03d}@example.com", "developer", "active") for n in range(11)])
    sandbox = make_sandbox(db_path=db)
    api = Api(sandbox.base_url, sandbox.token)
    first = api.get("/users/?page_size=5").json()
    assert first["previous"] is None
    assert first["next"].startswith(sandbox.url + "/api/v1/users/?")
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()
    assert third["next"] is None
    emails = [u["email"] for page in (first, second, third) for u in page["results"]]
    assert emails == ["admin@example.com"] + [f"u{n:03d}@example.com" for n in range(11)]
    back = api.get(third["previous"]).json()
    assert back["results"] == second["results"]
    assert api.get(back["previous"]).json()["results"] == first["results"]


def test_page_size_above_100_is_rejected_not_clamped(api: Api) -> None:
    for bad in ("101", "0", "x"):
        response = api.get(f"/users/?page_size={bad}")
        assert response.status_code == 400
        assert list(response.json()) == ["page_size"]
    assert api.get("/users/?page_size=100").status_code == 200


def test_a_garbled_cursor_is_a_field_error(api: Api) -> None:
    response = api.get("/users/?cursor=%%%")
    assert (response.status_code, list(response.json())) == (400, ["cursor"])


def test_paging_while_another_thread_inserts_neither_skips_nor_repeats(make_sandbox, tmp_path) -> None:
    db = tmp_path / "busy.db"
    seeded = [f"seed{n:04d}@example.com" for n in range(300)]
    seed(db, users=[(email, "developer", "active") for email in seeded])
    sandbox = make_sandbox(db_path=db)
    walker, writer = Api(sandbox.base_url, sandbox.token), Api(sandbox.base_url, sandbox.token)
    first_insert, stop = threading.Event(), threading.Event()
    inserted: list[str] = []

    def insert_until_stopped() -> None:
        while not stop.is_set():
            email = f"new{len(inserted):04d}@example.com"
            assert writer.post("/users/", {"email": email, "role": "developer"}).status_code == 201
            inserted.append(email)
            first_insert.set()

    thread = threading.Thread(target=insert_until_stopped)
    thread.start()
    try:
        assert first_insert.wait(10)
        seen = [u["email"] for u in walker.walk("/users/?page_size=7")]
        inserted_during_walk = len(inserted)
    finally:
        stop.set()
        thread.join()
    assert inserted_during_walk > 1, "the writer must have run during the walk"
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert set(seeded) <= set(seen), "an item that existed throughout was skipped"
    new_seen = [email for email in seen if email.startswith("new")]
    assert new_seen == inserted[: len(new_seen)], "new items appear at the end, in creation order"


def test_concurrent_writes_lose_nothing(api: Api, sandbox: RunningSandbox) -> None:
    emails = [f"c{n:03d}@example.com" for n in range(60)]
    clients = [Api(sandbox.base_url, sandbox.token) for _ in range(6)]

    def create(n: int) -> int:
        return (
            clients[n % len(clients)].post("/users/", {"email": emails[n], "role": "developer"}).status_code
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(create, range(len(emails))))
    assert statuses == [201] * len(emails)
    listed = {u["email"] for u in api.walk("/users/?page_size=100")}
    assert set(emails) <= listed


def test_list_items_carry_the_etag_of_their_resource(api: Api) -> None:
    api.post("/users/", {"email": "a@example.com", "role": "developer"})
    api.post("/workspaces/", {"name": "w"})
    for collection in ("/users/", "/workspaces/"):
        for item in api.walk(collection):
            single = api.get(f"{collection}{item['id']}/")
            assert item["etag"] == single.headers["ETag"] == single.json()["etag"]


def test_if_match_guards_patch_and_delete(api: Api) -> None:
    user = api.post("/users/", {"email": "a@example.com", "role": "developer"}).json()
    path = f"/users/{user['id']}/"
    changed = api.patch(path, {"role": "admin"}, headers={"If-Match": user["etag"]})
    assert changed.status_code == 200
    stale = api.patch(path, {"role": "developer"}, headers={"If-Match": user["etag"]})
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed")
    assert api.get(path).json()["role"] == "admin"
    stale_delete = api.delete(path, headers={"If-Match": user["etag"]})
    assert stale_delete.status_code == 412
    assert api.delete(path, headers={"If-Match": changed.json()["etag"]}).status_code == 204


def test_if_match_star_and_lists(api: Api) -> None:
    workspace = api.post("/workspaces/", {"name": "w"}).json()
    path = f"/workspaces/{workspace['id']}/"
    assert api.patch(path, {"name": "x"}, headers={"If-Match": "*"}).status_code == 200
    current = api.get(path).json()["etag"]
    either = f'"other", {current}'
    assert api.patch(path, {"name": "y"}, headers={"If-Match": either}).status_code == 200


def test_membership_delete_honours_if_match(api: Api) -> None:
    user = api.post("/users/", {"email": "a@example.com", "role": "developer"}).json()
    workspace = api.post("/workspaces/", {"name": "w"}).json()
    membership = api.post(
        "/workspace_memberships/", {"workspace_id": workspace["id"], "user_id": user["id"]}
    ).json()
    path = f"/workspace_memberships/{membership['id']}/"
    assert api.delete(path, headers={"If-Match": '"stale"'}).status_code == 412
    assert api.delete(path, headers={"If-Match": membership["etag"]}).status_code == 204


def test_idempotency_key_replays_the_first_response(api: Api) -> None:
    headers = {"Idempotency-Key": "k1"}
    body = {"email": "a@example.com", "role": "developer"}
    first = api.post("/users/", body, headers=headers)
    again = api.post("/users/", {"role": "developer", "email": "a@example.com"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"]
    assert [u["email"] for u in api.walk("/users/")].count("a@example.com") == 1


def test_idempotency_key_replays_errors_too(api: Api) -> None:
    api.post("/workspaces/", {"name": "w"})
    first = api.post("/workspaces/", {"name": "w"}, headers={"Idempotency-Key": "dup"})
    again = api.post("/workspaces/", {"name": "w"}, headers={"Idempotency-Key": "dup"})
    assert first.status_code == again.status_code == 409
    assert again.json() == first.json()


def test_idempotency_key_reused_with_another_body_is_422(api: Api) -> None:
    headers = {"Idempotency-Key": "k2"}
    assert api.post("/workspaces/", {"name": "a"}, headers=headers).status_code == 201
    reused = api.post("/workspaces/", {"name": "b"}, headers=headers)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    assert [w["name"] for w in api.walk("/workspaces/")] == ["a"]


def test_idempotency_keys_are_scoped_per_user(api: Api, sandbox: RunningSandbox) -> None:
    api.post("/users/", {"email": "second-admin@example.com", "role": "admin"})
    other = Api(sandbox.base_url, create_token(sandbox.db_path, "second-admin@example.com"))
    headers = {"Idempotency-Key": "shared"}
    assert api.post("/workspaces/", {"name": "a"}, headers=headers).status_code == 201
    response = other.post("/workspaces/", {"name": "b"}, headers=headers)
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
