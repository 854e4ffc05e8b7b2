"""The applier against a mocked API (responses): order, dependencies, conflicts, concurrency."""

from __future__ import annotations

import json
import threading

import pytest
import responses

from provisioner.api.client import ApiClient
from provisioner.apply.executor import RUN_PLAN_AGAIN, apply_plan, idempotency_key
from provisioner.apply.report import ChangeResult
from provisioner.model import Membership, State, User, Workspace
from provisioner.plan.model import Action, Change, Phase, Plan, ResourceType
from provisioner.plan.model import phase_of as change_phase
from provisioner.render.apply_report import render_report

BASE = "https://api.example.invalid/api/v1"
U, W, M = ResourceType.USER, ResourceType.WORKSPACE, ResourceType.MEMBERSHIP
C, UP, D = Action.CREATE, Action.UPDATE, Action.DELETE

ALICE = User("alice@x.io", "admin", id="u1", etag='"e1"')
BOB = User("bob@x.io", "developer", id="u2", etag='"e2"')
DAVE = User("dave@x.io", "developer", id="u4", etag='"e4"')
PROD = Workspace("app-production", id="w1", etag='"w1"')
CURRENT = State.build(
    [ALICE, BOB, DAVE],
    [PROD],
    [
        Membership("app-production", "dave@x.io", id="m2", etag='"m2"'),
        Membership("app-production", "bob@x.io", id="m3", etag='"m3"'),
    ],
)

INVITE = Change(C, U, "carol@x.io", None, User("carol@x.io", "developer"))
PROMOTE = Change(UP, U, "dave@x.io", DAVE, User("dave@x.io", "admin"))
CREATE_WS = Change(C, W, "app-staging", None, Workspace("app-staging"))
GRANT = Change(C, M, "app-staging/carol@x.io", None, Membership("app-staging", "carol@x.io"))
REVOKE = Change(D, M, "app-production/dave@x.io", CURRENT.memberships[("app-production", "dave@x.io")], None)
DEMOTE = Change(UP, U, "alice@x.io", ALICE, User("alice@x.io", "developer"))
REMOVE = Change(D, U, "bob@x.io", BOB, None)
CASCADE = Change(
    D, M, "app-production/bob@x.io", CURRENT.memberships[("app-production", "bob@x.io")], None, cascade=True
)
ALL = (INVITE, PROMOTE, CREATE_WS, GRANT, REVOKE, CASCADE, DEMOTE, REMOVE)


def make_plan(*changes: Change) -> Plan:
    ordered = tuple(sorted(changes, key=lambda c: (change_phase(c), c.key)))
    return Plan("Acme", ordered, state_fingerprint="f" * 64, config_digest="d" * 64)


def client(**kw) -> ApiClient:
    kw.setdefault("backoff_factor", 0)
    return ApiClient(BASE, "t0ken", **kw)


def user_json(uid: str, email: str, role: str) -> dict:
    return {"id": uid, "email": email, "role": role, "status": "invited", "etag": f'"{uid}"'}


def register_happy(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{BASE}/users/", status=201, json=user_json("u3", "carol@x.io", "developer"))
    rsps.patch(f"{BASE}/users/u4/", json=user_json("u4", "dave@x.io", "admin"))
    rsps.post(f"{BASE}/workspaces/", status=201, json={"id": "w2", "name": "app-staging", "etag": '"x"'})
    rsps.post(
        f"{BASE}/workspace_memberships/", status=201, json={"id": "m9", "workspace_id": "w2", "user_id": "u3"}
    )
    rsps.delete(f"{BASE}/workspace_memberships/m2/", status=204)
    rsps.patch(f"{BASE}/users/u1/", json=user_json("u1", "alice@x.io", "developer"))
    rsps.delete(f"{BASE}/users/u2/", status=204)


def phase_of(call) -> Phase:  # noqa: ANN001
    method, path = call.request.method, call.request.path_url
    body = json.loads(call.request.body) if call.request.body else {}
    if path == "/api/v1/users/":
        return Phase.INVITE
    if method == "PATCH":
        return Phase.PROMOTE if body["role"] == "admin" else Phase.DEMOTE
    if path == "/api/v1/workspaces/":
        return Phase.CREATE_WORKSPACE
    if path == "/api/v1/workspace_memberships/":
        return Phase.GRANT
    if path.startswith("/api/v1/workspace_memberships/"):
        return Phase.REVOKE
    return Phase.REMOVE_USER


@pytest.mark.parametrize("parallelism", [1, 4])
def test_a_clean_apply_makes_one_request_per_change_in_phase_order(parallelism: int) -> None:
    plan = make_plan(*ALL)
    seen: list[ChangeResult] = []
    with responses.RequestsMock() as rsps:
        register_happy(rsps)
        report = apply_plan(plan, client(), current=CURRENT, parallelism=parallelism, progress=seen.append)
        calls = list(rsps.calls)
    assert report.ok and len(report.applied) == len(ALL)
    assert [r.change for r in report.applied] == list(plan.changes)  # plan order
    assert len(seen) == len(ALL)
    assert len(calls) == len(ALL) - 1  # the cascade costs nothing
    phases = [phase_of(c) for c in calls]
    assert phases == sorted(phases)
    grant = next(c for c in calls if c.request.path_url == "/api/v1/workspace_memberships/")
    assert json.loads(grant.request.body) == {"workspace_id": "w2", "user_id": "u3"}
    by_path = {(c.request.method, c.request.path_url): c.request for c in calls}
    assert by_path[("PATCH", "/api/v1/users/u4/")].headers["If-Match"] == '"e4"'
    assert by_path[("DELETE", "/api/v1/users/u2/")].headers["If-Match"] == '"e2"'
    assert by_path[("DELETE", "/api/v1/workspace_memberships/m2/")].headers["If-Match"] == '"m2"'
    assert by_path[("POST", "/api/v1/users/")].headers["Idempotency-Key"] == idempotency_key(plan, INVITE)
    assert json.loads(by_path[("POST", "/api/v1/users/")].body) == {
        "email": "carol@x.io",
        "role": "developer",
    }
    assert render_report(report) == "Applied 8, failed 0, skipped 0."


def test_a_failed_invite_skips_its_grant_but_not_independent_changes() -> None:
    plan = make_plan(INVITE, CREATE_WS, GRANT, REVOKE)
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=400, json={"email": ["Enter a valid email address."]})
        rsps.post(f"{BASE}/workspaces/", status=201, json={"id": "w2", "name": "app-staging"})
        rsps.delete(f"{BASE}/workspace_memberships/m2/", status=204)
        report = apply_plan(plan, client(), current=CURRENT)
        assert not any(c.request.path_url == "/api/v1/workspace_memberships/" for c in rsps.calls)
    assert [r.change for r in report.failed] == [INVITE]
    assert "Enter a valid email address." in (report.failed[0].message or "")
    assert [(r.change, r.message) for r in report.skipped] == [
        (GRANT, "depends on inviting carol@x.io, which did not succeed")
    ]
    assert {r.change for r in report.applied} == {CREATE_WS, REVOKE}
    text = render_report(report)
    assert text.startswith("Applied 2, failed 1, skipped 1.")
    assert "skipped: create membership app-staging/carol@x.io: depends on inviting" in text


def test_a_failed_workspace_create_skips_its_grants() -> None:
    plan = make_plan(INVITE, CREATE_WS, GRANT)
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=201, json=user_json("u3", "carol@x.io", "developer"))
        rsps.post(
            f"{BASE}/workspaces/", status=400, json={"detail": "Limit.", "code": "workspace_limit_reached"}
        )
        report = apply_plan(plan, client(), current=CURRENT)
    assert [r.change for r in report.skipped] == [GRANT]
    assert "workspace_limit_reached" in (report.failed[0].message or "")


def test_412_then_reread_already_as_desired_counts_as_applied() -> None:
    with responses.RequestsMock() as rsps:
        rsps.patch(f"{BASE}/users/u4/", status=412, json={"detail": "changed", "code": "precondition_failed"})
        rsps.get(f"{BASE}/users/u4/", json=user_json("u4", "dave@x.io", "admin"), headers={"ETag": '"u4"'})
        report = apply_plan(make_plan(PROMOTE), client(), current=CURRENT)
        assert [c.request.method for c in rsps.calls] == ["PATCH", "GET"]
    assert report.ok and report.applied[0].message == "already had role admin"


def test_412_then_reread_with_another_value_fails_without_overwriting() -> None:
    with responses.RequestsMock() as rsps:
        rsps.patch(f"{BASE}/users/u1/", status=412, json={"detail": "changed"})
        rsps.get(f"{BASE}/users/u1/", json=user_json("u1", "alice@x.io", "admin"))
        report = apply_plan(make_plan(DEMOTE), client(), current=CURRENT)
        assert [c.request.method for c in rsps.calls] == ["PATCH", "GET"]  # no second PATCH
    assert [(r.change, r.message) for r in report.failed] == [(DEMOTE, RUN_PLAN_AGAIN)]


def test_412_on_delete_of_something_gone_meanwhile_is_applied() -> None:
    with responses.RequestsMock() as rsps:
        rsps.delete(f"{BASE}/users/u2/", status=412, json={"detail": "changed"})
        rsps.get(f"{BASE}/users/u2/", status=404, json={"detail": "Not found."})
        report = apply_plan(make_plan(REMOVE, CASCADE), client(), current=CURRENT)
    assert report.ok and len(report.applied) == 2


def test_idempotency_key_is_stable_across_a_retry() -> None:
    plan = make_plan(INVITE)
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=503, json={"detail": "try again"})
        rsps.post(f"{BASE}/users/", status=201, json=user_json("u3", "carol@x.io", "developer"))
        report = apply_plan(plan, client(), current=CURRENT)
        keys = [c.request.headers["Idempotency-Key"] for c in rsps.calls]
    assert report.ok
    assert len(keys) == 2 and keys[0] == keys[1] == idempotency_key(plan, INVITE)


def test_idempotency_keys_are_deterministic_and_distinct() -> None:
    plan = make_plan(*ALL)
    again = make_plan(*ALL)
    keys = [idempotency_key(plan, c) for c in plan.changes]
    assert keys == [idempotency_key(again, c) for c in again.changes]
    assert len(set(keys)) == len(keys)


def test_conflicts_and_missing_objects_are_tolerated() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=409, json={"detail": "exists", "code": "already_exists"})
        # 409 on an invite: one listing finds the id that the grant needs
        rsps.get(
            f"{BASE}/users/", json={"next": None, "results": [user_json("u3", "carol@x.io", "developer")]}
        )
        rsps.post(
            f"{BASE}/workspace_memberships/", status=409, json={"detail": "exists", "code": "already_exists"}
        )
        rsps.delete(f"{BASE}/workspace_memberships/m2/", status=404, json={"detail": "Not found."})
        rsps.delete(f"{BASE}/users/u2/", status=404, json={"detail": "Not found."})
        grant_prod = Membership("app-production", "carol@x.io")
        plan = make_plan(
            INVITE, REVOKE, REMOVE, CASCADE, Change(C, M, "app-production/carol@x.io", None, grant_prod)
        )
        report = apply_plan(plan, client(), current=CURRENT)
        grant = next(c for c in rsps.calls if c.request.path_url == "/api/v1/workspace_memberships/")
        assert json.loads(grant.request.body) == {"workspace_id": "w1", "user_id": "u3"}
    assert report.ok, render_report(report)
    notes = {r.change.key: r.message for r in report.applied}
    assert notes["carol@x.io"] == "already existed"
    assert notes["bob@x.io"] == "already gone"


def test_invite_conflict_with_another_role_fails() -> None:
    with responses.RequestsMock() as rsps:
        rsps.post(f"{BASE}/users/", status=409, json={"detail": "exists", "code": "already_exists"})
        rsps.get(f"{BASE}/users/", json={"next": None, "results": [user_json("u3", "carol@x.io", "admin")]})
        report = apply_plan(make_plan(INVITE), client(), current=CURRENT)
    assert "already exists with role admin" in (report.failed[0].message or "")


def test_cascades_make_no_request_and_are_skipped_when_the_removal_fails() -> None:
    with responses.RequestsMock() as rsps:
        rsps.delete(f"{BASE}/users/u2/", status=500, json={"detail": "boom"})
        report = apply_plan(make_plan(REMOVE, CASCADE), client(max_retries=0), current=CURRENT)
        assert [c.request.path_url for c in rsps.calls] == ["/api/v1/users/u2/"]
    assert [r.change for r in report.failed] == [REMOVE]
    assert [(r.change, r.message) for r in report.skipped] == [
        (CASCADE, "depends on removing bob@x.io, which did not succeed")
    ]


def test_a_failed_promotion_holds_back_demotions_and_admin_removals() -> None:
    admin_bob = User("bob@x.io", "admin", id="u2", etag='"e2"')
    remove_admin = Change(D, U, "bob@x.io", admin_bob, None)
    with responses.RequestsMock() as rsps:
        rsps.patch(f"{BASE}/users/u4/", status=400, json={"detail": "no"})
        report = apply_plan(make_plan(PROMOTE, DEMOTE, remove_admin), client(), current=CURRENT)
        assert len(rsps.calls) == 1
    assert {r.change for r in report.skipped} == {DEMOTE, remove_admin}
    assert all("too few admins" in (r.message or "") for r in report.skipped)


def test_authentication_error_stops_everything_not_yet_started() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/users/", status=401, json={"detail": "Invalid token."})
        register_happy(rsps)
        report = apply_plan(make_plan(*ALL), client(), current=CURRENT, parallelism=1)
        assert len(rsps.calls) == 1
    assert [r.change for r in report.failed] == [INVITE]
    assert len(report.skipped) == len(ALL) - 1 and not report.applied
    assert not report.ok


def test_parallelism_is_bounded_and_used() -> None:
    emails = [f"user{i}@x.io" for i in range(6)]
    current = State.build([User(e, "developer", id=f"id{i}") for i, e in enumerate(emails)], [PROD])
    grants = [Change(C, M, f"app-production/{e}", None, Membership("app-production", e)) for e in emails]
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    barrier = threading.Barrier(3, timeout=10)

    def answer(request):  # noqa: ANN001
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        barrier.wait()  # three must be in flight together, or this breaks
        with lock:
            in_flight -= 1
        return 201, {}, json.dumps({"id": "m", "workspace_id": "w1", "user_id": "x"})

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, f"{BASE}/workspace_memberships/", callback=answer)
        report = apply_plan(make_plan(*grants), client(), current=current, parallelism=3)
    assert report.ok, render_report(report)
    assert peak == 3
