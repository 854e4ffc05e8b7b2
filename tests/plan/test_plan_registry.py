"""The resource registry: one table of types, and warnings as data (code, object, parameters)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from provisioner.model import Membership, Policy, State, User, Workspace
from provisioner.plan.diff import diff
from provisioner.plan.model import TEXT, Action, PlanWarning, ResourceType, describe_warning
from provisioner.plan.serialize import plan_from_dict, plan_to_dict
from provisioner.render.plan_json import render_json
from provisioner.render.plan_text import HEADINGS, LINE_RENDERERS
from provisioner.resources import api_key, credential, membership, user, webhook, workspace
from provisioner.resources.registry import REGISTRY, Registry

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_every_type_is_registered_once_in_plan_order() -> None:
    assert [k.type for k in REGISTRY] == [
        ResourceType.USER,
        ResourceType.WORKSPACE,
        ResourceType.MEMBERSHIP,
        ResourceType.WEBHOOK,
        ResourceType.CREDENTIAL,
        ResourceType.API_KEY,
        ResourceType.ZOOM_OAUTH_APP,
        ResourceType.GOOGLE_LOGIN_GROUP,
    ]
    assert [REGISTRY.order(t) for t in ResourceType] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert {k.field for k in REGISTRY} == {
        "users",
        "workspaces",
        "memberships",
        "webhooks",
        "credentials",
        "api_keys",
        "zoom_apps",
        "google_login_groups",
    }


def test_a_registry_refuses_a_type_twice_or_a_type_without_a_module() -> None:
    with pytest.raises(ValueError, match="twice"):
        Registry(
            (
                user.KIND,
                user.KIND,
                workspace.KIND,
                membership.KIND,
                webhook.KIND,
                credential.KIND,
                api_key.KIND,
            )
        )
    with pytest.raises(ValueError, match="membership"):
        Registry((user.KIND, workspace.KIND, webhook.KIND, credential.KIND, api_key.KIND))


def test_every_action_a_type_can_apply_renders_as_a_line_and_the_renderers_come_from_the_types() -> None:
    for kind in REGISTRY:
        assert set(kind.handlers) == set(kind.lines), kind.type
        for action, line in kind.lines.items():
            assert LINE_RENDERERS[(kind.type, action)] is line
        assert HEADINGS[kind.type] == kind.heading
    # The API cannot rename or delete workspaces, so neither does a plan.
    assert set(REGISTRY[ResourceType.WORKSPACE].handlers) == {Action.CREATE}


def _plan_with_every_warning():  # noqa: ANN202
    current = State.build(
        [User("a@x.io", "developer", id="u1")],
        [Workspace("p", id="w1"), Workspace("legacy", id="w2")],
        [Membership("legacy", "a@x.io", id="m1")],
    )
    desired = State.build(
        [User("a@x.io", "developer")],
        [Workspace("p")],
        [
            Membership("p", "a@x.io", expires=NOW - timedelta(days=1)),
            Membership("p", "b@x.io", expires=NOW + timedelta(days=2)),
        ],
    )
    return diff(current, desired, Policy(), now=NOW)


def test_warnings_are_codes_about_objects_in_table_order() -> None:
    plan = _plan_with_every_warning()
    assert [(w.code, w.type, w.key) for w in plan.warnings] == [
        ("below-min-admins", ResourceType.USER, ""),
        ("undeclared-workspace", ResourceType.WORKSPACE, "legacy"),
        ("grant-expired", ResourceType.MEMBERSHIP, "p/a@x.io"),
        ("grant-expiring", ResourceType.MEMBERSHIP, "p/b@x.io"),
    ]
    below, legacy, expired, expiring = plan.warnings
    assert dict(below.params) == {"active": 0, "min_admins": 1, "after": 0}
    assert dict(legacy.params) == {"memberships": 1}
    assert expired.params["until"] == (NOW - timedelta(days=1)).isoformat()
    # The sentence is made from the data, in one place.
    assert describe_warning(legacy).startswith(
        "workspace legacy exists in the organization but is not declared"
    )
    assert "1 membership is not managed" in describe_warning(legacy)
    assert describe_warning(expired).startswith("access p/a@x.io ran until 2026-05-30 ")
    assert describe_warning(expiring).startswith("access p/b@x.io runs until 2026-06-02; extend it")


def test_json_keeps_the_sentences_and_adds_the_codes_and_reads_them_back() -> None:
    plan = _plan_with_every_warning()
    document = json.loads(render_json(plan, tool_version="1.0"))
    assert document["warnings"] == [describe_warning(w) for w in plan.warnings]
    assert [d["code"] for d in document["warning_details"]] == [w.code for w in plan.warnings]
    assert document["warning_details"][1] == {
        "code": "undeclared-workspace",
        "type": "workspace",
        "key": "legacy",
        "params": {"memberships": 1},
    }
    assert plan_from_dict(document).warnings == plan.warnings


def test_a_plan_document_without_codes_still_reads_back_with_its_sentences() -> None:
    plan = _plan_with_every_warning()
    document = plan_to_dict(plan, tool_version="1.0")
    del document["warning_details"]
    warnings = plan_from_dict(document).warnings
    assert [describe_warning(w) for w in warnings] == [describe_warning(w) for w in plan.warnings]
    assert {w.code for w in warnings} == {TEXT}


def test_a_warning_is_frozen_data() -> None:
    warning = PlanWarning("undeclared-workspace", ResourceType.WORKSPACE, "w", {"memberships": 2})
    with pytest.raises(AttributeError):
        warning.code = "other"  # type: ignore[misc]  # the point: frozen dataclasses refuse assignment
    assert PlanWarning.from_dict(warning.to_dict()) == warning
