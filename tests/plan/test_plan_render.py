"""Renderers: golden files for text and markdown, schema-valid byte-stable JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import jsonschema
import pytest

from provisioner.model import INVITED, Membership, Policy, State, User, Workspace
from provisioner.plan.diff import diff
from provisioner.plan.model import TEXT, Plan, PlanWarning
from provisioner.plan.serialize import plan_from_dict, plan_schema
from provisioner.render.plan_json import render_json
from provisioner.render.plan_markdown import render_markdown
from provisioner.render.plan_text import render_text
from tests.plan.plan_testkit import assert_golden

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _small() -> tuple[State, State, Plan]:
    current = State.build(
        [
            User("alice@acme.com", "admin", id="u1", etag='"1"'),
            User("carol@acme.com", "developer", id="u3"),
            User("eve@acme.com", "developer", id="u4"),
            User("frank@acme.com", "developer", INVITED, id="u5"),
        ],
        [
            Workspace("notetaker-staging", id="w1"),
            Workspace("notetaker-production", id="w2"),
            Workspace("legacy", id="w3"),
        ],
        [
            Membership("notetaker-staging", "carol@acme.com", id="m1"),
            Membership("notetaker-production", "carol@acme.com", id="m2"),
            Membership("notetaker-staging", "eve@acme.com", id="m3"),
            Membership("notetaker-production", "eve@acme.com", id="m4"),
            Membership("notetaker-production", "alice@acme.com", id="m5"),
        ],
    )
    desired = State.build(
        [
            User("alice@acme.com", "admin"),
            User("bob@acme.com", "developer"),
            User("carol@acme.com", "admin"),
        ],
        [
            Workspace("notetaker-staging", environment="staging"),
            Workspace("notetaker-production", environment="production"),
            Workspace("recorder-production", environment="production"),
        ],
        [
            Membership(
                "notetaker-production",
                "bob@acme.com",
                expires=datetime(2027, 1, 1, tzinfo=UTC),
                reason="INC-4711",
            ),
            Membership(
                "recorder-production",
                "bob@acme.com",
                expires=datetime(2026, 6, 5, 14, 30, tzinfo=UTC),
            ),
            Membership("notetaker-staging", "bob@acme.com"),
            Membership("notetaker-production", "alice@acme.com"),
            Membership("notetaker-staging", "carol@acme.com"),
        ],
    )
    return (
        current,
        desired,
        diff(current, desired, Policy(), now=NOW, organization="acme", config_digest="c" * 64),
    )


def _environments(state: State) -> dict[str, str | None]:
    return {w.name: w.environment for w in state.workspaces.values()}


def _huge() -> tuple[State, Plan]:
    """20,000 membership changes: 10,000 grants and 10,000 revocations over 20 instances."""
    users = [User(f"user{i:04d}@acme.com", "developer", id=f"u{i}") for i in range(1000)]
    names = [f"app{j:02d}-{env}" for j in range(10) for env in ("production", "staging")]
    current = State.build(
        users,
        [Workspace(n, id=f"w-{n}") for n in names],
        [Membership(n, u.email, id=f"m-{n}-{u.email}") for u in users[:500] for n in names],
    )
    desired = State.build(
        users,
        [Workspace(n, environment=n.rsplit("-", 1)[1]) for n in names],
        [Membership(n, u.email) for u in users[500:] for n in names],
    )
    return desired, diff(
        current, desired, Policy(min_admins=0), now=NOW, organization="acme"
    )  # developers only


def test_text_golden() -> None:
    _, desired, plan = _small()
    assert_golden("small.txt", render_text(plan, environments=_environments(desired)))


def test_text_calls_out_every_change_that_grants_power() -> None:
    _, desired, plan = _small()
    text = render_text(plan, environments=_environments(desired))
    callout = text.split("Plan: 5 to add, 1 to change, 5 to remove.\n\n", 1)[1].split("\n\nWarning:")[0]
    assert callout.splitlines() == [
        "Grants power: 1 promotion, 2 production access grants",
        "  ~ user carol@acme.com: developer -> admin",
        "  + access notetaker-production: bob@acme.com (until 2026-12-31, INC-4711)",
        "  + access recorder-production: bob@acme.com (until 2026-06-05 14:30 UTC)",
    ]
    # Without the environments, the instances the plan creates still tell their own.
    assert "Grants power: 1 promotion, 1 production access grant\n" in render_text(plan)


def test_text_calls_out_a_new_admin() -> None:
    current = State.build([User("alice@acme.com", "admin", id="u1")], [], [])
    desired = State.build([User("alice@acme.com", "admin"), User("mallory@acme.com", "admin")], [], [])
    text = render_text(diff(current, desired, Policy(), now=NOW, organization="acme"))
    assert text.endswith("Grants power: 1 new admin\n  + user mallory@acme.com (admin)\n")


def test_text_shows_hostile_values_visibly_on_one_line() -> None:
    reason = "INC-1\r\x1b[2K\x1b[1A\u202e"
    current = State.build([User("alice@acme.com", "admin", id="u1")], [Workspace("app", id="w1")], [])
    desired = State.build(
        [User("alice@acme.com", "admin")],
        [Workspace("app")],
        [Membership("app", "alice@acme.com", reason=reason)],
    )
    text = render_text(diff(current, desired, Policy(), now=NOW, organization="acme"), color=True)
    assert "  + access app: alice@acme.com (INC-1\\r\\x1b[2K\\x1b[1A\\u202e)" in text
    assert "\r" not in text and "\u202e" not in text and "\x1b[2K" not in text


def test_text_lines_say_what_changes() -> None:
    text = render_text(_small()[2])
    assert "  + user bob@acme.com (developer)\n" in text
    assert "  ~ user carol@acme.com: developer -> admin\n" in text
    assert "  - user eve@acme.com (and 2 memberships)\n" in text
    assert "  - user frank@acme.com (invitation pending)\n" in text
    assert "  + access notetaker-production: bob@acme.com (until 2026-12-31, INC-4711)\n" in text
    assert "  + access recorder-production: bob@acme.com (until 2026-06-05 14:30 UTC)\n" in text
    assert "  - access notetaker-staging: eve@acme.com (removed with user)\n" in text
    assert "  - access notetaker-production: carol@acme.com\n" in text
    assert "Plan: 5 to add, 1 to change, 5 to remove.\n" in text
    assert "\x1b[" not in text


def test_text_colour_only_when_asked() -> None:
    text = render_text(_small()[2], color=True)
    assert "\x1b[32m  + user bob@acme.com (developer)\x1b[0m" in text
    assert "\x1b[31m  - user eve@acme.com" in text
    assert re.sub(r"\x1b\[[0-9;]*m", "", text) == render_text(_small()[2])


def test_text_for_no_changes() -> None:
    assert render_text(Plan("acme", ())) == "No changes. The organization matches the configuration.\n"
    assert render_text(Plan("acme", (), warnings=(PlanWarning(TEXT, None, params={"text": "w"}),))).endswith(
        "\n\nWarning: w\n"
    )


def test_markdown_golden_small() -> None:
    current, desired, plan = _small()
    text = render_markdown(plan, environments=_environments(desired), current=current)
    assert_golden("small.md", text)


def test_markdown_order_and_call_outs() -> None:
    current, desired, plan = _small()
    text = render_markdown(plan, environments=_environments(desired), current=current)
    headings = [
        "**Plan:",
        "**⚠️ Changes that grant power (3): 1 promotion, 2 production access grants**",
        "**Role changes**",
        "**Production access changes**",
        "**Warnings**",
        "#### By person",
        "#### Access matrix",
        "#### Access by workspace instance",
        "<details>",
    ]
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "- `carol@acme.com`: developer → admin" in text
    assert (
        "- `bob@acme.com`: invited as developer; + `notetaker-production` (until 2026-12-31, `INC-4711`); "
        "+ `recorder-production`"
    ) in text
    # production columns first; existing unchanged access shows as ·
    assert (
        "| user | `notetaker-production` (production) | `recorder-production` (production) | `notetaker-staging` |"
        in text
    )
    assert "| `alice@acme.com` | ✅ |  |  |" not in text  # alice already had production: unchanged
    assert "| `carol@acme.com` | ❌ |  | · |" in text
    assert "truncated" not in text


def test_markdown_role_changes_include_an_admin_invite() -> None:
    current = State.build([User("alice@acme.com", "admin", id="u1")], [], [])
    desired = State.build([User("alice@acme.com", "admin"), User("mallory@acme.com", "admin")], [], [])
    text = render_markdown(diff(current, desired, Policy(), now=NOW, organization="acme"))
    role_changes = text.split("**Role changes**\n\n", 1)[1].split("\n\n", 1)[0]
    assert role_changes == "- `mallory@acme.com`: invited as admin"
    assert (
        "**⚠️ Changes that grant power (1): 1 new admin**\n\n- `mallory@acme.com`: invited as admin\n" in text
    )


def test_markdown_golden_no_changes() -> None:
    text = render_markdown(
        Plan("acme", (), warnings=(PlanWarning(TEXT, None, params={"text": "workspace legacy exists …"}),))
    )
    assert_golden("no_changes.md", text)
    assert "No changes" in text and len(text) < 500


def test_markdown_huge_plan_stays_under_the_limit_and_says_so() -> None:
    desired, plan = _huge()
    assert plan.summary.total == 20_000
    text = render_markdown(plan, environments=_environments(desired))
    assert len(text) < 65_000
    assert text.index("**Plan: 10000 to add, 0 to change, 10000 to remove.**") < text.index("#### By person")
    assert "This comment is shortened to stay under the size limit" in text
    hidden = [int(n.replace(",", "")) for n in re.findall(r"truncated: ([\d,]+) more changes", text)]
    assert len(hidden) == 4 and all(0 < n < 20_000 for n in hidden)
    assert text.count("```") % 2 == 0 and text.rstrip().endswith(
        "run `provisioner plan` locally for the full plan._"
    )
    assert_golden("huge.md", text)


@pytest.mark.parametrize("limit", [2_000, 10_000, 30_000])
def test_markdown_respects_any_limit(limit: int) -> None:
    desired, plan = _huge()
    text = render_markdown(plan, environments=_environments(desired), limit=limit)
    assert len(text) < limit
    assert "**Plan: 10000 to add" in text


def test_json_is_schema_valid_stable_and_round_trips() -> None:
    _, _, plan = _small()
    text = render_json(plan, tool_version="0.1.0")
    document = json.loads(text)
    jsonschema.Draft202012Validator(plan_schema()).validate(document)
    assert text == render_json(_small()[2], tool_version="0.1.0")
    assert text.endswith("}\n")
    assert document["summary"] == {"create": 5, "update": 1, "delete": 5}
    assert document["format_version"] == 2 and document["tool_version"] == "0.1.0"
    grant = next(c for c in document["changes"] if c["key"] == "notetaker-production/bob@acme.com")
    assert (grant["reason"], grant["expires"]) == ("INC-4711", "2027-01-01T00:00:00+00:00")
    assert grant["after"]["expires"] == "2027-01-01T00:00:00+00:00"
    assert [m["user"] for m in document["expiring_soon"]] == ["bob@acme.com"]
    assert plan_from_dict(document) == plan


def test_the_plan_schema_is_a_valid_draft_2020_12_schema() -> None:
    # Checked here, not on every `plan --format json` (that cost ~0.3 s a run).
    jsonschema.Draft202012Validator.check_schema(plan_schema())


def test_json_schema_rejects_what_we_never_emit() -> None:
    document = json.loads(render_json(_small()[2], tool_version="0.1.0"))
    validator = jsonschema.Draft202012Validator(plan_schema())
    bad_workspace_delete = {**document["changes"][0], "type": "workspace", "action": "delete"}
    for broken in (
        {**document, "format_version": 1},
        {**document, "extra": 1},
        {**document, "changes": [{**document["changes"][0], "after": None}]},  # a create without after
        {**document, "changes": [bad_workspace_delete]},
    ):
        assert not validator.is_valid(broken)
