"""Checks of the hostile corpus: the access review (HTML, CSV, markdown).

A case names hostile values that come from the server (a workspace instance
the config does not declare, an email; and on the v2 API a Zoom app's
client_id and when Zoom validated its webhook, a Google login group's name and
a login's email, for the Integrations section) and from the config (a grant's
reason). The review is built in memory through the real ``build_review`` and
rendered by the real renderers; the checks look at what a browser, a
spreadsheet and GitHub would make of it. See tests/hostile/test_hostile_corpus.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm

from provisioner.escape import terminal
from provisioner.model import GoogleLogin, GoogleLoginGroup, Membership, State, User, Workspace, ZoomApp
from provisioner.review.build import build_review
from provisioner.review.render_csv import render_csv
from provisioner.review.render_html import render_html
from provisioner.review.render_json import render_json
from provisioner.review.render_markdown import render_markdown
from tests.review.factory import IDENTITY, NOW, config

# Markup the HTML renderer writes itself; a value must add nothing else.
_OWN_SCRIPTS = 1


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.comments: list[str] = []
        self.end_tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [(tag, name) for name, _ in attrs if name.lower().startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self.end_tags.append(tag)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _integrations(case: dict[str, Any]) -> tuple[list[ZoomApp], list[GoogleLoginGroup]]:
    """The server's Zoom app and Google login group of app-production, if the case has them."""
    zoom = case.get("server_zoom")
    group = case.get("server_login_group")
    apps = (
        [
            ZoomApp(
                "app-production", zoom["client_id"], id="z1", webhook_last_validation=zoom.get("checked_at")
            )
        ]
        if zoom
        else []
    )
    groups = (
        [
            GoogleLoginGroup(
                "app-production",
                group["name"],
                logins=(GoogleLogin(group["email"], "acme.com", id="l1"),),
                id="g1",
            )
        ]
        if group
        else []
    )
    return apps, groups


def integration_values(case: dict[str, Any]) -> list[str]:
    """The hostile v2 values a reader of the review must see, as given."""
    zoom, group = case.get("server_zoom") or {}, case.get("server_login_group") or {}
    return [
        v for v in (zoom.get("client_id"), zoom.get("checked_at"), group.get("name"), group.get("email")) if v
    ]


def _review(case: dict[str, Any]) -> tuple[Any, str, str, str]:
    """The review of an organization with the case's hostile names, and its three values."""
    workspace = case.get("server_workspace", "app-production")
    email = case.get("server_email", "alice@acme.com")
    reason = case.get("reason", "on-call")
    users = [User("admin@example.com", "admin"), User(email, "developer")]
    desired = State.build(
        users,
        [Workspace("app-production", environment="production")],
        [Membership("app-production", email, reason=reason)],
    )
    apps, groups = _integrations(case)
    current = State.build(
        users,
        [Workspace("app-production", id="w1"), Workspace(workspace, id="w2")],
        [Membership("app-production", email, id="m1"), Membership(workspace, email, id="m2")],
        zoom_apps=apps,
        google_login_groups=groups,
    )
    review = build_review(config(desired), current, IDENTITY, None, NOW, NOW)
    return review, workspace, email, reason


def check_html(case: dict[str, Any], _tmp: Path) -> None:
    review, workspace, email, reason = _review(case)
    html = render_html(review)
    page = _Page()
    page.feed(html)
    page.close()
    for value in (workspace, email, reason, *integration_values(case)):
        assert "<" not in value or value not in html, f"{value!r} reaches the page unescaped"
    assert page.tags.count("script") == _OWN_SCRIPTS, "a value opened a script"
    for tag in ("img", "iframe", "object", "embed", "svg", "form"):
        assert tag not in page.tags, f"a value produced <{tag}>"
    assert not page.handlers, f"a value produced an event handler: {page.handlers}"
    assert not page.comments, f"a value produced an HTML comment: {page.comments}"
    # An unclosed comment or tag swallows the rest of the page: the page's own end must be seen.
    assert page.end_tags[-2:] == ["body", "html"], f"the page's end was swallowed: {page.end_tags[-5:]}"
    shown = "".join(page.text)
    for value in (workspace, email, reason, *integration_values(case)):
        assert terminal(value) in shown, f"{value!r} is not shown as plain text"


def check_csv(case: dict[str, Any], _tmp: Path) -> None:
    review, _workspace, _email, _reason = _review(case)
    rows = list(csv.DictReader(io.StringIO(render_csv(review), newline="")))
    assert rows, "the CSV lists the access"
    for row in rows:
        for column, cell in row.items():
            assert not (cell or "").startswith(("=", "+", "-", "@", "\t", "\r")), (
                f"{column} would run as a spreadsheet formula: {cell!r}"
            )


def check_markdown(case: dict[str, Any], _tmp: Path) -> None:
    review, _workspace, _email, _reason = _review(case)
    text = render_markdown(review)
    html = cmarkgfm.github_flavored_markdown_to_html(text, options=cmarkgfm.Options.CMARK_OPT_UNSAFE)
    page = _Page()
    page.feed(html)
    page.close()
    assert not page.comments, "a value opened an HTML comment in the checklist"
    for tag in ("img", "script", "a", "details", "h1"):
        assert tag not in page.tags, f"a value produced <{tag}> in the checklist"
    assert page.tags.count("h2") == 1, "a value produced a heading in the checklist"
    boxes = page.tags.count("input")
    expected = case.get("checkboxes", 2)
    assert boxes == expected, f"one checkbox per production grant and per admin ({expected}), got {boxes}"
    shown = "".join(page.text)
    for value in integration_values(case):
        assert terminal(value) in shown, f"{value!r} is not shown in the checklist"


def check_json(case: dict[str, Any], _tmp: Path) -> None:
    """The review's JSON: each integration value read back exactly, no raw control character."""
    review, _workspace, _email, _reason = _review(case)
    text = render_json(review)
    assert not re.search(r"[\x00-\x09\x0b-\x1f]", text), "a raw control character in the review's JSON"
    document = json.loads(text)
    found = {(i["name"], i.get("checked_at")) for i in document["integrations"]}
    zoom, group = case.get("server_zoom") or {}, case.get("server_login_group") or {}
    if zoom:
        assert (zoom["client_id"], zoom.get("checked_at")) in found, found
    if group:
        assert any(name == f"{group['name']} / {group['email']}" for name, _ in found), found


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "review-html": check_html,
    "review-csv": check_csv,
    "review-markdown": check_markdown,
    "review-json": check_json,
}
