"""What each change was about, from the audit record to every review format, without a server.

A rotation's old and new keys, a role's before and after, a webhook's URL: the
record names them in fields (``provisioner.audit.subject``), the review reads
them back, and the formats show them in words and in the right columns.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import cmarkgfm  # type: ignore[import-untyped]  # cmarkgfm ships no type information
import jsonschema  # type: ignore[import-untyped]  # no stubs in the test extras

from provisioner.audit import subject
from provisioner.escape import html
from provisioner.model import ApiKey, Membership, State, User, Webhook, Workspace
from provisioner.plan.model import Action, Change
from provisioner.resources.base import ResourceType
from provisioner.review.audit_history import AppliedChange
from provisioner.review.build import build_review
from provisioner.review.model import Review
from provisioner.review.render_csv import render_csv
from provisioner.review.render_html import render_html
from provisioner.review.render_json import render_json
from provisioner.review.render_markdown import render_markdown
from provisioner.review.text import change_detail, change_text
from tests.review.factory import IDENTITY, NOW, config, entry, four_user_review

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "review.schema.json").read_text())
OLD, NEW = (
    ApiKey("app-production", "ci", "svc@acme.com", id="k1", prefix="rk_old1"),
    ApiKey("app-production", "ci", "svc@acme.com"),
)


def test_a_rotation_s_record_names_the_old_and_the_new_key_by_prefix() -> None:
    rotation = Change(Action.UPDATE, ResourceType.API_KEY, "app-production ci rk_old1", OLD, NEW)
    found = subject(rotation, "key rk_new2 made, its secret delivered to sink/app-production/api-key-ci")
    assert found == {
        "workspace": "app-production",
        "target": "ci",
        "user": "svc@acme.com",
        "prefix_before": "rk_old1",
        "prefix_after": "rk_new2",
    }
    disabled = subject(Change(Action.DELETE, ResourceType.API_KEY, "app-production ci rk_old1", OLD, None))
    assert disabled["prefix_before"] == "rk_old1" and "prefix_after" not in disabled


def test_a_role_change_s_record_keeps_before_and_after() -> None:
    change = Change(
        Action.UPDATE,
        ResourceType.USER,
        "eli@example.com",
        User("eli@example.com", "developer"),
        User("eli@example.com", "admin"),
    )
    assert subject(change) == {"user": "eli@example.com", "role_before": "developer", "role_after": "admin"}


def test_a_webhook_s_record_puts_the_instance_and_the_url_in_their_fields() -> None:
    hook = Webhook("app-staging", "https://hooks.example.invalid/x", ("bot.done",))
    assert subject(
        Change(Action.CREATE, ResourceType.WEBHOOK, "app-staging https://hooks.example.invalid/x", None, hook)
    ) == {
        "workspace": "app-staging",
        "target": "https://hooks.example.invalid/x",
    }


def review_of(applied: list[AppliedChange]) -> Review:
    history = [replace(entry(1, [], set()), applied=tuple(applied))]
    return build_review(config(State()), State(), IDENTITY, history, NOW, NOW - timedelta(days=90))


def test_every_format_shows_the_rotation_the_promotion_and_labels_in_words() -> None:
    rotation = AppliedChange(
        "update",
        "api_key",
        "app-production ci rk_old1",
        (
            ("prefix_after", "rk_new2"),
            ("prefix_before", "rk_old1"),
            ("target", "ci"),
            ("user", "svc@acme.com"),
            ("workspace", "app-production"),
        ),
    )
    disabled = AppliedChange(
        "delete",
        "api_key",
        "app-production ci rk_old1",
        (
            ("prefix_before", "rk_old1"),
            ("target", "ci"),
            ("user", "svc@acme.com"),
            ("workspace", "app-production"),
        ),
    )
    promotion = AppliedChange(
        "update",
        "user",
        "eli@example.com",
        (("role_after", "admin"), ("role_before", "developer"), ("user", "eli@example.com")),
    )
    legacy = AppliedChange(
        "create", "webhook", "app-staging https://hooks.example.invalid/x"
    )  # an older record
    review = review_of([rotation, disabled, promotion, legacy])
    changes = review.changes
    assert [change_text(c) for c in changes] == [
        "API key rotated",
        "API key disabled",
        "role changed",
        "webhook added",
    ]
    assert [change_detail(c) for c in changes] == [
        "ci rk_old1 -> rk_new2",
        "ci rk_old1",
        "developer -> admin",
        "https://hooks.example.invalid/x",
    ]
    assert (changes[0].user, changes[0].workspace) == ("svc@acme.com", "app-production")
    assert (changes[3].user, changes[3].workspace, changes[3].target) == (
        None,
        "app-staging",
        "https://hooks.example.invalid/x",
    )
    document = json.loads(render_json(review))
    jsonschema.validate(document, SCHEMA)
    assert [c["label"] for c in document["changes"]][:2] == ["API key rotated", "API key disabled"]
    page = render_html(review)
    assert "ci rk_old1 -&gt; rk_new2" in page and "developer -&gt; admin" in page and "api_key" not in page
    checklist = render_markdown(review)
    assert "API key rotated `svc@acme.com` `app-production` `ci rk_old1 -> rk_new2`" in checklist
    assert "role changed `eli@example.com` `developer -> admin`" in checklist


def test_the_html_page_has_landmarks_a_keys_link_a_sign_off_and_no_stale_footer() -> None:
    page = render_html(four_user_review())
    assert "not part of this report yet" not in page and "<footer" not in page
    assert '<a href="#api-keys">' in page and 'id="api-keys"' in page
    assert page.count("<main>") == 1 and "</main>" in page and '<nav aria-label="Sections">' in page
    assert 'id="sign-off"' in page and "Reviewer:" in page and "approved / changes needed" in page
    # Every matrix mark has its words beside it.
    assert '<td class="g"><i>declared</i></td>' in page and 'td.g::before{content:"✓"/""}' in page
    assert "@page{size:A4 landscape" in page


def test_the_markdown_checklist_ends_with_a_sign_off_block() -> None:
    checklist = render_markdown(four_user_review())
    block = checklist[checklist.index("### Sign-off") :]
    assert "Reviewer: ____" in block and "Date: ____" in block
    for section in ("Admins", "Production access", "Access matrix", "API keys", "Expiring grants"):
        assert f"| {section} | approved / changes needed | | |" in block


HOSTILE_PR = "https://x.invalid/pull/1</th><script>alert(1)</script>"
HOSTILE_NAME = '=HYPERLINK("http://x.invalid") @team [x](http://x.invalid)'


def test_approvals_are_untrusted_and_escaped_in_every_format() -> None:
    members = {("app-production", "eli@example.com")}
    history = [
        replace(
            entry(1, [("create", "membership", "app-production/eli@example.com")], members),
            pull_request=HOSTILE_PR,
            approvers=(HOSTILE_NAME,),
            merged_by=HOSTILE_NAME,
        )
    ]
    users = [User("eli@example.com", "developer")]
    current = State.build(
        users,
        [Workspace("app-production", id="w")],
        [Membership("app-production", "eli@example.com", id="m")],
    )
    desired = State.build(
        users,
        [Workspace("app-production", environment="production")],
        [Membership("app-production", "eli@example.com")],
    )
    review = build_review(config(desired), current, IDENTITY, history, NOW, NOW - timedelta(days=90))
    page = render_html(review)
    assert page.count("<script>") == 1 and html(HOSTILE_PR) in page
    checklist = render_markdown(review)
    rendered = cmarkgfm.github_flavored_markdown_to_html(checklist)
    assert "<script>" not in rendered and "<a " not in rendered
    rows = list(csv.DictReader(io.StringIO(render_csv(review), newline="")))
    assert rows[0]["granted_merged_by"] == "'" + HOSTILE_NAME  # text in a spreadsheet, never a formula


def test_a_gap_in_history_is_said_at_the_top_with_its_values_escaped() -> None:
    hostile_log = "<script>x</script>[a](http://x.invalid).jsonl"
    review = build_review(
        config(State()),
        State(),
        IDENTITY,
        (),
        NOW,
        NOW - timedelta(days=90),
        audit_log=hostile_log,
        audit_log_missing=True,
    )
    checklist = render_markdown(review)
    top = checklist[: checklist.index("Tick each grant")]
    assert "does not exist" in top and "no history is known" in top
    rendered = cmarkgfm.github_flavored_markdown_to_html(checklist)
    assert "<script>" not in rendered and "<a " not in rendered
    page = render_html(review)
    assert page.count("<script>") == 1 and '<p class="flag">The audit log' in page
    # A log that covers the whole period adds nothing at the top.
    covered = build_review(
        config(State()),
        State(),
        IDENTITY,
        [entry(1, [], set(), when=NOW - timedelta(days=100))],
        NOW,
        NOW - timedelta(days=90),
        audit_log="audit.jsonl",
    )
    assert "History starts at" not in render_markdown(covered).split("Tick each grant")[0]


def test_a_pull_request_is_a_link_only_when_it_is_a_web_address() -> None:
    members = {("app-production", "eli@example.com")}
    grant = [("create", "membership", "app-production/eli@example.com")]
    history = [
        replace(entry(1, grant, members), pull_request="https://github.invalid/acme/access/pull/9"),
        replace(entry(2, grant, members), pull_request="javascript:alert(1)"),
    ]
    review = build_review(config(State()), State(), IDENTITY, history, NOW, NOW - timedelta(days=90))
    page = render_html(review)
    assert '<a href="https://github.invalid/acme/access/pull/9" rel="noreferrer noopener">' in page
    assert 'href="javascript' not in page and "PR javascript:alert(1)" in page


def test_the_schema_knows_every_resource_type_and_the_text_labels_each_change() -> None:
    """A new resource type must reach the review's schema and its words, or this fails."""
    types = {t.value for t in ResourceType}
    assert set(SCHEMA["properties"]["changes"]["items"]["properties"]["type"]["enum"]) == types
    for kind in types:
        for action in ("create", "update", "delete"):
            label = change_text(review_of([AppliedChange(action, kind, "x y")]).changes[0])
            assert "_" not in label and label != f"{kind} {action}", label
