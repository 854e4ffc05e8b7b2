"""`provisioner review` end to end: the real CLI against a sandbox with a history of applies.

The organization is built by two applies from two commits of a git repository
(so the audit records carry commits), then changed out of band through the
sandbox's HTTP API, then reviewed with a config whose one grant has run out
since. Every format is checked for the same facts.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm  # type: ignore[import-untyped]  # cmarkgfm ships no type information
import jsonschema  # type: ignore[import-untyped]  # no stubs in the test extras
import pytest
from cmarkgfm.cmark import Options  # type: ignore[import-untyped]  # as above

from provisioner.sandbox import RunningSandbox
from tests.support import Api, Cli, org_config

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "review.schema.json").read_text())
# A reason that tries to break out of every format: a table cell, a tag, a
# task item, a link, a mention, a comment, a formula.
HOSTILE = '=HYPERLINK("http://x.invalid") </td><script>alert(1)</script> | - [x] **ok** [a](http://x.invalid) @team <!--'

TODAY = datetime.now(UTC).date()
SOON = (TODAY + timedelta(days=10)).isoformat()
LATER = (TODAY + timedelta(days=200)).isoformat()
YESTERDAY = (TODAY - timedelta(days=1)).isoformat()

V1 = """
environments:
  development: {members: ["@eng"]}
  production: {members: [alice@acme.com]}
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
  - {email: carol@acme.com, role: developer}
groups:
  eng: [alice@acme.com, bob@acme.com, carol@acme.com]
workspaces:
  - name: notetaker
    environments: [development, production]
"""

# The second commit: bob gets production until SOON for an incident, carol for a long while.
V2 = (
    V1
    + f"""    members:
      production:
        - {{user: bob@acme.com, expires: {SOON}, reason: "INC-4711 on-call"}}
        - {{user: carol@acme.com, expires: {LATER}, reason: {json.dumps(HOSTILE)}}}
"""
)
# Not applied: carol's grant ran out yesterday (it is still on the server).
V3 = V2.replace(LATER, YESTERDAY)


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.email=ci@acme.invalid", "-c", "user.name=ci", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def commit(repo: Path, config: Path, body: str, base_url: str, message: str) -> str:
    config.write_text(org_config(base_url, body))
    git(repo, "add", config.name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


class TaskItems(HTMLParser):
    """The task-list items of rendered markdown, and every tag it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.checkboxes = 0
        self.items: list[str] = []
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "li":
            self._depth += 1
            self._text = []
        if tag == "input" and dict(attrs).get("type") == "checkbox":
            self.checkboxes += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self._depth -= 1
            self.items.append("".join(self._text).strip())

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data)


@pytest.fixture
def history(sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path) -> dict[str, str]:
    """Two applies from two commits, an out-of-band grant, and a config edited since."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    config = repo / "org.yaml"
    log = tmp_path / "audit.jsonl"
    first = commit(repo, config, V1, sandbox.base_url, "v1")
    applied = cli("apply", "-c", str(config), "--auto-approve", "--audit-log", str(log))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    second = commit(repo, config, V2, sandbox.base_url, "v2: bob and carol on production")
    applied = cli("apply", "-c", str(config), "--auto-approve", "--audit-log", str(log))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    # Out of band: someone invites mallory and gives her production, through the API.
    status, user, _ = api.request("POST", "/users/", {"email": "mallory@evil.example", "role": "developer"})
    assert status == 201, user
    production = api.workspaces()["notetaker-production"]["id"]
    status, body, _ = api.request(
        "POST", "/workspace_memberships/", {"workspace_id": production, "user_id": user["id"]}
    )
    assert status == 201, body

    third = commit(repo, config, V3, sandbox.base_url, "v3: carol's grant ends")
    return {"config": str(config), "log": str(log), "first": first, "second": second, "third": third}


def review(cli: Cli, history: dict[str, str], fmt: str, tmp_path: Path) -> str:
    out = tmp_path / f"review.{fmt}"
    result = cli(
        "review", "-c", history["config"], "--audit-log", history["log"], "--format", fmt, "-o", str(out)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.name in result.stderr and result.stdout == ""
    return out.read_text(encoding="utf-8")


def test_review_json_holds_production_access_history_out_of_band_and_expiry(
    sandbox: RunningSandbox,
    cli: Cli,
    api: Api,
    history: dict[str, str],
    tmp_path: Path,
) -> None:
    doc = json.loads(review(cli, history, "json", tmp_path))
    jsonschema.validate(doc, SCHEMA)

    assert doc["summary"]["config_commit"] == history["third"]
    production = {g["user"]: g for g in doc["grants"] if g["production"]}
    assert set(production) == {"alice@acme.com", "bob@acme.com", "carol@acme.com", "mallory@evil.example"}
    assert {g["workspace"] for g in production.values()} == {"notetaker-production"}
    # Each with the commit that granted it.
    assert production["alice@acme.com"]["since"]["commit"] == history["first"]
    assert production["bob@acme.com"]["since"]["commit"] == history["second"]
    assert production["bob@acme.com"]["reason"] == "INC-4711 on-call"
    assert production["bob@acme.com"]["origin"] == "declared"
    # The out-of-band grant: marked, and no apply made it.
    assert production["mallory@evil.example"]["origin"] == "out-of-band"
    assert production["mallory@evil.example"]["provenance"] == "not-by-apply"
    assert production["mallory@evil.example"]["since"] is None
    assert doc["summary"]["counts"]["out_of_band"] == 1
    # Expiring soon, and past expiry yet on the server.
    assert [(g["user"], g["workspace"]) for g in doc["expiring"]] == [
        ("bob@acme.com", "notetaker-production")
    ]
    assert [(g["user"], g["origin"]) for g in doc["past_expiry"]] == [("carol@acme.com", "expired")]
    # Admins: both declared; admin@example.com was there before the log.
    admins = {a["email"]: a for a in doc["admins"]}
    assert set(admins) == {"admin@example.com", "alice@acme.com"}
    assert (
        admins["alice@acme.com"]["declared"]
        and admins["alice@acme.com"]["since"]["commit"] == history["first"]
    )
    assert admins["admin@example.com"]["provenance"] == "before-log"
    # Changes in the period: the second apply's two grants, with their commit.
    granted = [
        (c["user"], c["run"]["commit"])
        for c in doc["changes"]
        if c["type"] == "membership" and c["action"] == "create"
    ]
    assert ("bob@acme.com", history["second"]) in granted and ("alice@acme.com", history["first"]) in granted
    # Every membership on the server is a grant of the report.
    assert {(g["workspace"], g["user"]) for g in doc["grants"]} == api.memberships()


def test_review_csv_has_one_row_per_access_and_no_formula(
    sandbox: RunningSandbox,
    cli: Cli,
    api: Api,
    history: dict[str, str],
    tmp_path: Path,
) -> None:
    text = review(cli, history, "csv", tmp_path)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(api.memberships())
    by_key = {(r["workspace"], r["user"]): r for r in rows}
    mallory = by_key[("notetaker-production", "mallory@evil.example")]
    assert (mallory["origin"], mallory["in_config"], mallory["production"]) == ("out-of-band", "no", "yes")
    bob = by_key[("notetaker-production", "bob@acme.com")]
    assert bob["granted_commit"] == history["second"] and bob["expires"] == SOON
    carol = by_key[("notetaker-production", "carol@acme.com")]
    assert carol["reason"] == "'" + HOSTILE  # a spreadsheet shows it as text, never runs it
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


def test_review_markdown_is_a_checklist_a_reason_cannot_break(
    sandbox: RunningSandbox,
    cli: Cli,
    history: dict[str, str],
    tmp_path: Path,
) -> None:
    text = review(cli, history, "markdown", tmp_path)
    assert "- [ ] `bob@acme.com` — `notetaker-production` — `INC-4711 on-call`" in text
    rendered = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    parser = TaskItems()
    parser.feed(rendered)
    # One task per production grant (4) and per admin (2); nothing else is a task.
    assert parser.checkboxes == 6
    tasks = [i for i in parser.items if "notetaker-production" in i and "@" in i]
    assert len([t for t in tasks if "expires" in t or "since" in t]) >= 4
    # The hostile reason stayed inside its item, as code: no script, link, comment or extra task.
    assert "script" not in parser.tags and "a" not in parser.tags
    assert "<!--" not in rendered and "[x]" not in [i[:3] for i in parser.items]
    carol = next(i for i in parser.items if i.startswith("carol@acme.com"))
    assert "</td><script>alert(1)</script>" in carol and "past expiry" in carol
    mallory = next(i for i in parser.items if i.startswith("mallory@evil.example"))
    assert "out of band" in mallory


def test_review_html_marks_out_of_band_and_escapes_every_value(
    sandbox: RunningSandbox,
    cli: Cli,
    history: dict[str, str],
    tmp_path: Path,
) -> None:
    page = review(cli, history, "html", tmp_path)
    assert page.count("<script>") == 1  # the page's own filter script, nothing injected
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "out of band: not in the config" in page
    assert history["second"][:12] in page and history["first"][:12] in page
    # Self-contained: nothing is fetched from anywhere.
    for needle in ("src=", "<link", "@import", "url("):
        assert needle not in page
    # The default period starts 90 days before the read.
    assert f"Changes since {(TODAY - timedelta(days=90)).isoformat()}" in page


def test_review_refuses_an_unreadable_audit_log(sandbox: RunningSandbox, cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(org_config(sandbox.base_url, V1))
    log = tmp_path / "audit.jsonl"
    log.write_text('{"time": "2026-01-01T00:00:00+00:00", "organization": "x"}\nnot json\n')
    result = cli("review", "-c", str(config), "--audit-log", str(log), "--format", "json")
    assert result.returncode == 1
    assert f"{log}:2: not an audit record" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_review_refuses_a_bad_since_and_several_configs(
    sandbox: RunningSandbox, cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(org_config(sandbox.base_url, V1))
    bad = cli("review", "-c", str(config), "--since", "last spring")
    assert bad.returncode == 1 and "is not a date" in bad.stderr
    two = cli("review", "-c", str(config), "-c", str(config))
    assert two.returncode == 1 and "give one -c" in two.stderr


def test_review_notes_an_audit_log_without_this_organization(
    sandbox: RunningSandbox, cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(org_config(sandbox.base_url, V1))
    log = tmp_path / "audit.jsonl"
    log.write_text('{"time": "2026-01-01T00:00:00+00:00", "organization": "another org"}\n')
    result = cli("review", "-c", str(config), "--audit-log", str(log), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "records no apply of sandbox" in result.stderr
    doc = json.loads(result.stdout)
    assert {a["provenance"] for a in doc["admins"]} == {"before-log"}
