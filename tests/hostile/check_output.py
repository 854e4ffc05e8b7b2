"""Checks of the hostile corpus: output. See tests/hostile/test_hostile_corpus.py.

Promise 1, "what a reviewer sees is what apply does", for every place a plan or
an error is shown. The kinds:

* ``output-markdown`` -- a plan built in-process from ``current`` and
  ``desired`` (so a hostile ``reason`` is tested whatever the config loader
  accepts), rendered as the pull-request comment;
* ``output-markdown-e2e`` -- the real CLI's ``plan --format markdown`` against a
  sandbox whose names were set out of band (``server``);
* ``output-terminal`` -- an in-process plan's coloured text plus apply's prompt,
  replayed on an emulated terminal (``pyte``);
* ``output-terminal-apply`` -- the real CLI's ``apply`` on a pseudo-terminal
  against such a sandbox, replayed on ``pyte`` up to the "yes" prompt, then
  answered "no";
* ``output-annotations`` -- ``validate --format github`` and ``plan`` on a
  hostile config (and optionally a hostile server): no output line may start a
  workflow command other than the tool's own one-line ``::error``.
* ``output-every-form`` -- an in-process plan whose newer sections carry the
  hostile values ("Secrets this apply writes": destination names and instance
  names; ``--base``'s policy-change lines; Zoom app and Google login group
  lines), checked in every form: the comment as ``output-markdown`` checks it,
  the coloured text on an emulated terminal (no cursor control, every value
  visible), and the JSON (each value read back exactly, no raw control
  character). ``policy_changes`` is a list of ``[path, before, after]``.

How markdown is judged: with ``cmarkgfm``, GitHub's own cmark-gfm, with the
GFM extensions GitHub enables (table, autolink, tagfilter, strikethrough,
tasklist, footnotes) and ``CMARK_OPT_UNSAFE``. GitHub renders raw HTML and
then sanitizes it; rendering unsafe shows every tag a value could smuggle in
before any sanitizer, which is the strict view (and the safe mode would turn
our own ``<details>`` into HTML comments). The rendered HTML may then hold only
the tags the renderer itself writes (``ALLOWED_TAGS``): no comment, link,
image or foreign heading; ``<details>`` is opened and closed once, at the end;
no ``@name`` outside code (GitHub links mentions in text, never in code).

A change line is what ``render_text`` writes for one change; the expected
lines come from the plan itself (in-process) or from ``plan --format json``
(end to end), never from the output under test.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm
import pyte

from provisioner.escape import terminal
from provisioner.model import (
    ApiKey,
    Credential,
    GoogleLogin,
    GoogleLoginGroup,
    Membership,
    Policy,
    SecretRef,
    State,
    User,
    Webhook,
    Workspace,
    ZoomApp,
)
from provisioner.plan.deliveries import deliveries
from provisioner.plan.diff import diff
from provisioner.plan.model import Change, Plan, ResourceType
from provisioner.plan.power import power_grants
from provisioner.plan.serialize import plan_from_dict
from provisioner.render.plan_json import render_json
from provisioner.render.plan_markdown import render_markdown
from provisioner.render.plan_text import cascade_counts, change_line, render_text
from provisioner.sandbox import RunningSandbox, seed, start_sandbox
from tests.support import TOKEN_ENV, org_config

NOW = datetime(2026, 6, 1, tzinfo=UTC)
PROMPT = "Do you want to apply these changes? Only 'yes' will be accepted: "
GFM_OPTIONS = cmarkgfm.Options.CMARK_OPT_UNSAFE | cmarkgfm.Options.CMARK_OPT_FOOTNOTES
ALLOWED_TAGS = frozenset(
    {
        "h3",
        "h4",
        "p",
        "strong",
        "em",
        "ul",
        "li",
        "code",
        "pre",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "details",
        "summary",
    }
)
OWN_HEADINGS = frozenset(
    {"By person", "Access matrix", "Access by workspace instance", "Settings by workspace instance"}
)
# GitHub links @name in text (not in code); the @ must not follow a word character.
MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")
SCREEN_COLUMNS, SCREEN_LINES = 400, 300
WAIT_SECONDS = 60.0


# --- building plans from a case ----------------------------------------------------


def _state(spec: dict[str, Any], *, current: bool) -> State:
    """A ``State`` from a case's ``current`` or ``desired`` mapping (ids on the current side)."""
    users = [
        User(u["email"], u["role"], u.get("status", "active"), id=f"u{i}" if current else None)
        for i, u in enumerate(spec.get("users", []))
    ]
    workspaces = []
    for i, w in enumerate(spec.get("workspaces", [])):
        name, environment = (w, None) if isinstance(w, str) else (w["name"], w.get("environment"))
        manages = () if isinstance(w, str) else tuple(w.get("manages", ()))
        workspaces.append(
            Workspace(name, id=f"w{i}" if current else None, environment=environment, manages=manages)
        )
    memberships = []
    for i, m in enumerate(spec.get("memberships", [])):
        if isinstance(m, list):
            m = {"workspace": m[0], "user": m[1]}
        expires = datetime.fromisoformat(m["expires"]) if "expires" in m else None
        memberships.append(
            Membership(
                m["workspace"],
                m["user"],
                id=f"m{i}" if current else None,
                reason=m.get("reason"),
                expires=expires,
            )
        )
    webhooks = [
        Webhook(
            h["workspace"],
            h["url"],
            tuple(sorted(h.get("events", ["bot.done"]))),
            h.get("enabled", True),
            id=f"h{i}" if current else None,
            sink_name=h.get("sink"),
        )
        for i, h in enumerate(spec.get("webhooks", []))
    ]
    credentials = [
        Credential(
            c["workspace"],
            c["provider"],
            fields=tuple(sorted(c.get("fields", {}).items())),
            secrets=tuple((n, SecretRef("env", r)) for n, r in c.get("secrets", {}).items()),
            write=tuple(c.get("secrets", {})),
            id=f"c{i}" if current else None,
        )
        for i, c in enumerate(spec.get("credentials", []))
    ]
    api_keys = [
        ApiKey(
            k["workspace"],
            k["name"],
            k["owner"],
            id=f"k{i}" if current else None,
            prefix=k.get("prefix", f"ak_{i:08x}") if current else None,
            created_at=datetime.fromisoformat(k.get("created_at", "2026-05-01T00:00:00+00:00"))
            if current
            else None,
            last_used_at=datetime.fromisoformat(k["last_used_at"])
            if current and "last_used_at" in k
            else None,
            sink_name=k.get("sink"),
        )
        for i, k in enumerate(spec.get("api_keys", []))
    ]
    zoom_apps = [
        ZoomApp(
            z["workspace"],
            z["client_id"],
            secrets=(
                ("client_secret", SecretRef("env", "ZOOM_CS")),
                ("webhook_secret", SecretRef("env", "ZOOM_WS")),
            ),
            id=f"z{i}" if current else None,
            webhook_url=z.get("webhook_url") if current else None,
            webhook_last_validation=z.get("webhook_last_validation") if current else None,
        )
        for i, z in enumerate(spec.get("zoom_apps", []))
    ]
    groups = [
        GoogleLoginGroup(
            g["workspace"],
            g["name"],
            logins=tuple(
                GoogleLogin(
                    login["email"], login.get("domain", "acme.com"), id=f"l{i}{j}" if current else None
                )
                for j, login in enumerate(g.get("logins", []))
            ),
            id=f"g{i}" if current else None,
        )
        for i, g in enumerate(spec.get("google_login_groups", []))
    ]
    return State.build(users, workspaces, memberships, webhooks, credentials, api_keys, zoom_apps, groups)


def _plan(case: dict[str, Any]) -> tuple[Plan, dict[str, str | None]]:
    desired = _state(case["desired"], current=False)
    plan = diff(
        _state(case["current"], current=True),
        desired,
        Policy(unmanaged_keys=case.get("unmanaged_keys", "keep")),
        now=NOW,
        organization=case.get("organization", "acme"),
    )
    assert not plan.empty, "a hostile output case needs changes to show"
    return plan, {w.name: w.environment for w in desired.workspaces.values()}


def change_lines(plan: Plan) -> list[str]:
    """What ``render_text`` writes for each change, without colour or indentation."""
    cascades = cascade_counts(plan)
    return [change_line(c, cascades).strip() for c in plan.changes]


def _names(change: Change) -> list[str]:
    """The untrusted names a reviewer must see for one change, as they are shown."""
    if change.type is ResourceType.MEMBERSHIP:
        m = change.after if change.after is not None else change.before
        assert isinstance(m, Membership)
        return [terminal(m.user), terminal(m.workspace)]
    setting = change.after if change.after is not None else change.before
    if isinstance(setting, Webhook):
        return [terminal(setting.url), terminal(setting.workspace)]
    if isinstance(setting, ApiKey):
        return [terminal(setting.name), terminal(setting.workspace), terminal(setting.owner)]
    if isinstance(setting, ZoomApp):
        return [terminal(setting.client_id), terminal(setting.workspace)]
    if isinstance(setting, GoogleLoginGroup):
        return [terminal(setting.name), terminal(setting.workspace)]
    if isinstance(setting, Credential):
        return [
            terminal(setting.provider),
            terminal(setting.workspace),
            *(terminal(v) for _, v in setting.fields),
        ]
    return [terminal(change.key)]


# --- markdown -----------------------------------------------------------------------


class _Html(HTMLParser):
    """What a reader of the rendered comment gets: tags, comments, text by place."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.end_tags: list[str] = []
        self.comments: list[str] = []
        self.body = ""  # text before <details>
        self.details = ""  # text inside <details>
        self.after_details = ""
        self.plain = ""  # text outside code and pre, where GitHub links mentions
        self.headings: list[tuple[str, bool, str]] = []  # (tag, starts with <code>, text)
        self.row_widths: list[int] = []  # cells per table row, header first
        self._code = 0
        self._details_state = "before"
        self._heading: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.row_widths.append(0)
        elif tag in ("td", "th"):
            self.row_widths[-1] += 1
        if tag in ("code", "pre"):
            self._code += 1
        if tag == "details":
            self._details_state = "inside"
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = [tag, None, ""]
        elif self._heading is not None and self._heading[1] is None:
            self._heading[1] = tag == "code"

    def handle_endtag(self, tag: str) -> None:
        self.end_tags.append(tag)
        if tag in ("code", "pre"):
            self._code -= 1
        if tag == "details":
            self._details_state = "after"
        if self._heading is not None and tag == self._heading[0]:
            name, code, text = self._heading
            self.headings.append((name, bool(code), text.strip()))
            self._heading = None

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            if self._heading[1] is None and data.strip():
                self._heading[1] = False
            self._heading[2] += data
        if not self._code:
            self.plain += data
        if self._details_state == "before":
            self.body += data
        elif self._details_state == "inside":
            self.details += data
        else:
            self.after_details += data


DIGEST_LINE = re.compile(r"Plan digest: sha256:[0-9a-f]{64}")


def render_html(markdown: str) -> str:
    """The comment as GitHub's cmark-gfm renders it (see the module docstring)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=GFM_OPTIONS)


def assert_markdown_safe(markdown: str, plan: Plan, case: dict[str, Any]) -> None:
    """Every change visible in the rendered comment, and nothing a value smuggled in."""
    html = render_html(markdown)
    page = _Html()
    page.feed(html)
    page.close()
    assert not page.comments, f"the comment renders an HTML comment: {page.comments}"
    foreign = set(page.tags) - ALLOWED_TAGS
    assert not foreign, f"a value produced tags the renderer never writes: {sorted(foreign)}\n{html}"
    assert page.tags.count("details") == 1 and page.end_tags.count("details") == 1, html
    # Only the plan's digest line (the tool's own, read back by CI) may follow the full plan.
    after = page.after_details.strip()
    assert after == "" or DIGEST_LINE.fullmatch(after), f"something follows the full-plan block: {after!r}"
    assert len(set(page.row_widths)) <= 1, f"a value split a table row: {page.row_widths}"
    for tag, starts_with_code, text in page.headings:
        assert (
            tag == "h3"
            and text.startswith("provisioner plan")
            or (tag == "h4" and (starts_with_code or text in OWN_HEADINGS))
        ), f"a value produced a heading: <{tag}> {text!r}"
    mention = MENTION.search(page.plain)
    assert mention is None, (
        f"a mention outside code: {page.plain[mention.start() - 20 : mention.end() + 20]!r}"
    )
    for line in change_lines(plan):
        assert line in page.details, f"change line not visible in the full plan: {line!r}"
    for change in plan.changes:
        for name in _names(change):
            assert name in page.body, f"{name!r} is not visible in the comment's body"
    for value in case.get("hostile", []):
        assert terminal(value) in page.body, f"the hostile value {value!r} is not shown visibly"
    power = power_grants(plan, case.get("environments"))
    if "power" in case:
        assert power.counts() == case["power"], power.counts()
    if power.total:
        assert f"Changes that grant power ({power.total})" in page.body
    role_changes = re.search(r"<strong>Role changes</strong></p>\n<ul>(.*?)</ul>", html, re.S)
    for change in power.new_admins + power.promotions:
        assert role_changes and terminal(change.key) in _text(role_changes.group(1)), (
            f"{change.key!r} gets admin but is missing from Role changes"
        )


def _text(html: str) -> str:
    page = _Html()
    page.feed(html)
    return page.body


def check_markdown(case: dict[str, Any], tmp_path: Path) -> None:
    plan, environments = _plan(case)
    case = {**case, "environments": environments}
    assert_markdown_safe(render_markdown(plan, environments=environments), plan, case)


def check_markdown_e2e(case: dict[str, Any], tmp_path: Path) -> None:
    with _sandbox(case, tmp_path) as (sandbox, config):
        plan = _json_plan(sandbox, config, tmp_path)
        result = _run(tmp_path, sandbox.token, "plan", "-c", config, "--format", "markdown")
        assert result.returncode == 0, result.stderr
        assert_markdown_safe(result.stdout, plan, case)


# --- the terminal -------------------------------------------------------------------


def screen_of(output: bytes) -> list[str]:
    """What a terminal shows after ``output``: its lines, trailing blanks dropped."""
    screen = pyte.Screen(SCREEN_COLUMNS, SCREEN_LINES)
    stream = pyte.ByteStream(screen)
    stream.feed(output)
    return [line.rstrip() for line in screen.display]


def assert_lines_on_screen(screen: list[str], plan: Plan) -> None:
    shown = set(screen)
    for line in change_lines(plan):
        assert f"  {line}" in shown, f"change line not on the screen at the prompt: {line!r}\n" + "\n".join(
            row for row in screen if row
        )
    prompt = [i for i, line in enumerate(screen) if line.startswith(PROMPT.rstrip())]
    assert prompt, "the prompt is not on the screen"


def check_terminal(case: dict[str, Any], tmp_path: Path) -> None:
    plan, environments = _plan(case)
    text = render_text(plan, color=True, environments=environments)
    # A terminal turns LF into CR LF (onlcr); the prompt follows the plan as apply prints it.
    screen = screen_of((text + PROMPT).replace("\n", "\r\n").encode())
    assert_lines_on_screen(screen, plan)
    for value in case.get("hostile", []):
        assert any(terminal(value) in line for line in screen), f"{value!r} is not shown visibly"


# Cursor movement, erasing, scrolling and resets: none may reach a terminal from a value.
CURSOR_CONTROL = re.compile(rb"\x1b\[[0-9;?]*[A-HJKLMPSTXZf@`dhlr]|\x1b[cDEM78]|\r(?!\n)|\x08")


def check_terminal_apply(case: dict[str, Any], tmp_path: Path) -> None:
    """Apply on a pty; a case with ``config_may_be_refused`` may instead be refused by validation."""
    with _sandbox(case, tmp_path) as (sandbox, config):
        planned = _run(tmp_path, sandbox.token, "plan", "-c", config, "--format", "json")
        sandbox.reset_stats()
        output, returncode = _apply_on_a_pty(tmp_path, sandbox.token, config, answer="no")
        writes = [route for route in sandbox.stats()["by_route"] if not route.startswith("GET ")]
        assert not writes, f"apply changed something: {writes}"
        if planned.returncode != 0:
            # Refused up front: then the refusal itself must be safe on the terminal.
            assert case.get("config_may_be_refused"), planned.stderr
            assert returncode == 1 and PROMPT.encode() not in output
            assert "error" in planned.stderr.lower() and "Traceback" not in planned.stderr
            control = CURSOR_CONTROL.search(output)
            assert control is None, (
                f"the refusal moves the cursor: {output[control.start() - 20 : control.end() + 20]!r}"
            )
            return
        plan = plan_from_dict(json.loads(planned.stdout))
        at_prompt = screen_of(output[: output.index(PROMPT.encode()) + len(PROMPT)])
        assert_lines_on_screen(at_prompt, plan)
        for value in case.get("hostile", []):
            assert any(terminal(value) in line for line in at_prompt), f"{value!r} is not shown visibly"
        assert returncode == 1 and b"apply cancelled: nothing was changed" in output
        plan_text = output[: output.index(PROMPT.encode())]
        control = CURSOR_CONTROL.search(plan_text)
        assert control is None, (
            f"the plan moves the cursor: {plan_text[control.start() - 20 : control.end() + 20]!r}"
        )


def _apply_on_a_pty(cwd: Path, token: str, config: str, *, answer: str) -> tuple[bytes, int]:
    """Run ``apply`` with a pseudo-terminal as stdin, stdout and stderr; type ``answer`` at the prompt.

    Returns everything the terminal received (the typed answer echoed in it) and
    the exit code. When apply ends without prompting, nothing is typed.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SCREEN_LINES, SCREEN_COLUMNS, 0, 0))
    env = _env(token)
    env.pop("NO_COLOR", None)  # colour on: our own escape codes must survive, a value's must not
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "apply", "-c", config],
        cwd=cwd,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    try:
        output = _read_until(master, output, PROMPT.encode())
        if PROMPT.encode() in output:
            os.write(master, answer.encode() + b"\n")
            output = _read_until(master, output, None)
        return output, process.wait(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def _read_until(master: int, output: bytes, marker: bytes | None) -> bytes:
    """Read the terminal until ``marker`` has been printed, or until it closes."""
    deadline = WAIT_SECONDS
    while marker is None or marker not in output:
        ready, _, _ = select.select([master], [], [], deadline)
        assert ready, f"no output for {WAIT_SECONDS}s; so far:\n{output.decode(errors='replace')}"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the program exited and closed the terminal
            chunk = b""
        if not chunk:
            return output
        output += chunk
    return output


# --- workflow commands --------------------------------------------------------------


def assert_no_workflow_command(stream: str, what: str, *, own_errors: int | None = None) -> None:
    """No line starts a workflow command, except ``own_errors`` one-line ``::error`` lines."""
    errors = 0
    for line in stream.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("::error ") or stripped.startswith("::error::"):
            assert own_errors is not None and line == stripped, f"{what}: a stray ::error line {line!r}"
            errors += 1
        else:
            assert not stripped.startswith(("::", "##[")), f"{what}: a workflow command {line!r}"
    if own_errors is not None:
        assert errors == own_errors, f"{what}: {errors} ::error lines for {own_errors} issues:\n{stream}"


def check_annotations(case: dict[str, Any], tmp_path: Path) -> None:
    with _sandbox(case, tmp_path) as (sandbox, config):
        as_json = _run(tmp_path, sandbox.token, "validate", "-c", config, "--format", "json")
        issues = json.loads(as_json.stdout)["errors"]
        github = _run(tmp_path, sandbox.token, "validate", "-c", config, "--format", "github")
        assert github.returncode == (1 if issues else 0)
        if issues:
            # Every stdout line is one of our ::error commands, one per issue: none spans lines.
            assert_no_workflow_command(
                github.stdout, "validate --format github stdout", own_errors=len(issues)
            )
            assert len(github.stdout.splitlines()) == len(issues), github.stdout
        else:
            assert_no_workflow_command(github.stdout, "validate --format github stdout")
        assert_no_workflow_command(github.stderr, "validate --format github stderr")
        exit_codes = case.get("exit_codes", {"validate": 1, "plan": 1})
        for args in (("validate",), ("plan",), ("plan", "--format", "markdown")):
            result = _run(tmp_path, sandbox.token, *args, "-c", config)
            assert result.returncode == exit_codes[args[0]], (args, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            assert_no_workflow_command(result.stdout, f"{' '.join(args)} stdout")
            assert_no_workflow_command(result.stderr, f"{' '.join(args)} stderr")


# --- the sandbox and the CLI ----------------------------------------------------------


@contextmanager
def _sandbox(case: dict[str, Any], tmp_path: Path) -> Iterator[tuple[RunningSandbox, str]]:
    """A sandbox seeded from the case's ``server`` (names set out of band), and a config for it.

    The seed writes the store directly, as a dashboard would: the API's own
    input checks do not stand between an out-of-band attacker and the names.
    """
    server = case.get("server", {})
    db = tmp_path / "sandbox.db"
    org_name = server.get("organization", "sandbox")
    seed(
        db,
        org_name=org_name,
        users=[
            (u["email"], u.get("role", "developer"), u.get("status", "active"))
            for u in server.get("users", [])
        ],
        workspaces=server.get("workspaces", []),
        memberships=[tuple(m) for m in server.get("memberships", [])],
    )
    running = start_sandbox(db, org_name=org_name)
    try:
        config = tmp_path / "org.yaml"
        body = case.get("config", "users:\n  - {email: admin@example.com, role: admin}\n")
        config.write_text(org_config(running.base_url, body, name=case.get("config_name")), encoding="utf-8")
        yield running, str(config)
    finally:
        running.stop()


def _env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env[TOKEN_ENV] = token
    env["NO_COLOR"] = "1"
    return env


def _run(cwd: Path, token: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=cwd,
        env=_env(token),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _json_plan(sandbox: RunningSandbox, config: str, tmp_path: Path) -> Plan:
    """The plan as ``plan --format json`` states it: the expected lines come from here."""
    result = _run(tmp_path, sandbox.token, "plan", "-c", config, "--format", "json")
    assert result.returncode == 0, result.stderr
    return plan_from_dict(json.loads(result.stdout))


# --- every form of a plan's newer sections ---------------------------------------------

# A raw C0 control character: JSON's encoder must have escaped each.
RAW_CONTROL = re.compile(r"[\x00-\x1f]")


def _plan_with_policy_changes(case: dict[str, Any]) -> tuple[Plan, dict[str, str | None]]:
    plan, environments = _plan(case)
    changes = tuple((str(p), str(b), str(a)) for p, b, a in case.get("policy_changes", ()))
    return replace(plan, policy_changes=changes), environments


def check_every_form(case: dict[str, Any], tmp_path: Path) -> None:
    """The newer sections' hostile values, safe and visible in markdown, text and JSON."""
    plan, environments = _plan_with_policy_changes(case)
    hostile = case.get("hostile", [])
    assert hostile, "an every-form case names the hostile values it plants"
    # The sections under test are there at all (else the case tests nothing).
    for section, present in (
        ("deliveries", bool(deliveries(plan))),
        ("policy_changes", bool(plan.policy_changes)),
    ):
        assert present or section not in case.get("sections", ()), f"the plan has no {section}"
    # Markdown: the pull-request comment.
    assert_markdown_safe(
        render_markdown(plan, environments=environments), plan, {**case, "environments": environments}
    )
    # Text: on a terminal, with colour; the values move no cursor and each is seen as escaped.
    text = render_text(plan, color=True, environments=environments)
    control = CURSOR_CONTROL.search(text.encode())
    assert control is None, (
        f"the text plan moves the cursor: {text[control.start() - 20 : control.end() + 20]!r}"
    )
    screen = screen_of((text + PROMPT).replace("\n", "\r\n").encode())
    assert_lines_on_screen(screen, plan)
    for value in hostile:
        assert any(terminal(value) in line for line in screen), f"{value!r} is not shown visibly"
    for name in {d.name for d in deliveries(plan)}:
        assert any(line.startswith(f"  {terminal(name)} <- ") for line in screen), (
            f"destination {name!r} not listed"
        )
    for path, before, after in plan.policy_changes:
        line = f"  {terminal(path)}: {terminal(before)} -> {terminal(after)}"
        assert line in screen, f"policy change not on the screen: {line!r}"
    # JSON: every value read back exactly, none as a raw control character.
    document_text = render_json(plan, tool_version="0")
    raw = RAW_CONTROL.search(document_text.replace("\n", ""))
    assert raw is None, (
        f"a raw control character in the JSON: {document_text[raw.start() - 20 : raw.end() + 20]!r}"
    )
    document = json.loads(document_text)
    assert [tuple(c) for c in document["policy_changes"]] == list(plan.policy_changes)
    assert [(d["name"], d["object"]) for d in document["secrets_written"]] == [
        (d.name, d.what) for d in deliveries(plan)
    ]
    strings = json.dumps(document, ensure_ascii=False)
    for value in hostile:
        assert json.dumps(value, ensure_ascii=False)[1:-1] in strings, (
            f"{value!r} is not in the JSON as it is"
        )


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "output-every-form": check_every_form,
    "output-markdown": check_markdown,
    "output-markdown-e2e": check_markdown_e2e,
    "output-terminal": check_terminal,
    "output-terminal-apply": check_terminal_apply,
    "output-annotations": check_annotations,
}
