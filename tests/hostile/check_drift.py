"""Checks of the hostile corpus: drift output. See tests/hostile/test_hostile_corpus.py.

Kind ``drift-server-names``: someone with out-of-band access names things on
the server (``workspaces``, ``users`` as ``{email, role}``, ``memberships`` as
``[workspace, email]``). The check seeds an embedded sandbox with them beside
a small declared baseline, runs the real ``provisioner drift`` in each format
and asserts:

* markdown, rendered by cmark-gfm (GitHub's renderer, raw HTML let through as
  GitHub's comment pipeline would see it): the only headings are drift's own,
  no HTML comment, image or link appears, and every item of the JSON report
  is a visible list item that names its user and workspace;
* text: no raw control character but the newline is printed, and every item
  of the JSON report is one line.

A case may set ``server_may_be_refused: true`` for names the tool may refuse
to read at all (hostile emails): then exit 1 with a clean error is also
acceptable, provided that error prints no raw control character either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm

from provisioner.escape import terminal
from provisioner.sandbox import seed

CONFIG = """\
version: 1
organization: {region: us-east-1}
users:
  - {email: admin@example.com, role: admin}
workspaces:
  - {name: app, members: [admin@example.com]}
"""


class _Html(HTMLParser):
    """The tags of rendered HTML, the text of each list item, and any comment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.headings: list[str] = []
        self.items: list[str] = []
        self.comments: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open.append(tag)
        if tag == "li":
            self.items.append("")
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if "li" in self._open:
            self.items[-1] += data
        if any(t.startswith("h") and t[1:].isdigit() for t in self._open):
            self.headings[-1] += data

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _raw_controls(text: str) -> list[str]:
    return sorted({repr(c) for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")})


def check_server_names(case: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "org.db"
    users = [(u["email"], u.get("role", "developer"), "active") for u in case.get("users", [])]
    seed(
        db,
        users=users,
        workspaces=["app", *case.get("workspaces", [])],
        memberships=[("app", "admin@example.com"), *[tuple(m) for m in case.get("memberships", [])]],
    )
    config = tmp_path / "access.yaml"
    config.write_text(CONFIG)
    base = ["drift", "-c", str(config), "--sandbox", str(db)]
    runs = {fmt: _run([*base, "--format", fmt], tmp_path) for fmt in ("json", "text", "markdown")}

    if case.get("server_may_be_refused") and runs["json"].returncode == 1:
        for run in runs.values():
            assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
            assert not _raw_controls(run.stdout + run.stderr), run.stdout + run.stderr
        return
    for fmt, run in runs.items():
        assert run.returncode == 2, (fmt, run.stdout, run.stderr)

    doc = json.loads(runs["json"].stdout)
    items = doc["out_of_band"] + (doc["unapplied"] or [])
    assert len(items) == doc["counts"]["total"] > 0
    # What must be visible of each item: its user (if any) and its workspaces, as terminal() shows them.
    needles = [
        [terminal(i["key"].rsplit("/", 1)[-1])] * (i["type"] != "workspace")
        + [terminal(w["name"]) for w in i["workspaces"]]
        for i in items
    ]

    text = runs["text"].stdout
    assert not _raw_controls(text), _raw_controls(text)
    lines = [line for line in text.splitlines() if line.startswith("  ! ")]
    assert len(lines) == len(items), text
    for line, wanted in zip(lines, needles):
        for needle in wanted:
            assert needle in line, (needle, line)

    html = cmarkgfm.markdown_to_html(runs["markdown"].stdout, options=cmarkgfm.Options.CMARK_OPT_UNSAFE)
    html_gfm = cmarkgfm.github_flavored_markdown_to_html(
        runs["markdown"].stdout, options=cmarkgfm.Options.CMARK_OPT_UNSAFE
    )
    for rendered in (html, html_gfm):
        parsed = _Html()
        parsed.feed(rendered)
        assert not parsed.comments, parsed.comments
        assert "<!--" not in rendered
        assert not {"img", "a", "details", "script", "h1", "h2", "pre"} & set(parsed.tags), parsed.tags
        assert parsed.headings[0].startswith("provisioner drift for "), parsed.headings
        assert all(h.startswith("Differences (no audit log") for h in parsed.headings[1:]), parsed.headings
        drift_items = [li for li in parsed.items if li.startswith("! ")]
        assert len(drift_items) == len(items), parsed.items
        for li, wanted in zip(drift_items, needles):
            for needle in wanted:
                assert needle in li, (needle, li)


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "drift-server-names": check_server_names,
}
