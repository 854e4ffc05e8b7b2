"""The plan as a pull-request comment (GitHub-flavoured Markdown).

In order: (1) a summary (counts, the changes that grant power, role changes,
production access and settings changes, warnings); (2) a per-person view; (3)
an access matrix of the workspace instances that change; (4) one section per
instance whose access changes, and one per instance whose settings (webhooks,
credentials) change; (5) the full text plan in a ``<details>`` block.
Production instances come first everywhere.

The comment stays under ``limit`` characters however large the plan. The
summary is bounded by construction (each call-out list is capped); the four
other sections share what is left, each getting an equal share of the rest in
turn, so a huge plan shows the start of every section. A truncated section
says how many changes it left out and how to see them all.

Decisions worth knowing:

* The author of the pull request writes the config, and anyone with dashboard
  access names things on the server. Every such value (email, instance name,
  role, reason, organization name, warning text) is shown through
  ``escape.markdown_code``, an inline code span (``table=True`` in table
  cells): it cannot open or close a block, comment, fence, ``<details>``, link
  or image, nor mention anyone. The full text plan sits in a fence from
  ``escape.markdown_fence`` that no line inside can close.
* Roles outside the known vocabulary (a hostile endpoint may send any) are
  shown as code too; ``admin`` and ``developer`` read as plain words.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from provisioner.escape import markdown_code, markdown_fence
from provisioner.frozen import frozen
from provisioner.model import (
    ROLES,
    Credential,
    GoogleLoginGroup,
    Membership,
    State,
    User,
    Webhook,
    ZoomApp,
    is_production_environment,
)
from provisioner.plan.deliveries import deliveries
from provisioner.plan.model import Action, Change, Plan, ResourceType, describe_warning
from provisioner.plan.power import plan_environments, power_grants
from provisioner.render.plan_text import LINE_RENDERERS, NO_CHANGES, grant_details, render_text
from provisioner.resources.api_key import KEY_IMPACT

__all__ = ["DEFAULT_LIMIT", "render_markdown"]

DEFAULT_LIMIT = 65000
CALLOUT_LIMIT = 10  # items per summary call-out list
WARNING_CHARS = 400  # longest warning text quoted in the summary
MATRIX_COLUMNS = 20  # a wider table is unreadable in a PR comment

GRANTED, REVOKED, UNCHANGED, NO_ACCESS = "✅", "❌", "·", ""
# Per-instance settings: each change names its instance (``.workspace``) and is shown by the
# text plan's line, under that instance. The v2 types (Zoom app, Google login groups) too.
SETTINGS_TYPES = frozenset(
    {
        ResourceType.WEBHOOK,
        ResourceType.CREDENTIAL,
        ResourceType.ZOOM_OAUTH_APP,
        ResourceType.GOOGLE_LOGIN_GROUP,
    }
)
SETTINGS_MARKS = {Action.CREATE: "➕", Action.UPDATE: "✏️", Action.DELETE: "➖"}
KEY_CALLOUT_LIMIT = 50  # API key changes and what removals break: listed in full up to this many
_LOCAL = "run `provisioner plan` locally for the full plan"
_SHORTENED = f"_This comment is shortened to stay under the size limit; {_LOCAL}._\n\n"
# Room kept free for the "shortened" note above.
_SAFETY = 200


@frozen
class _Section:
    """A section that can be cut: ``head`` and ``tail`` always go together.

    ``items`` are ``(text, number of changes it shows)``; a truncated section
    counts the changes of the items it left out.
    """

    head: str
    items: list[tuple[str, int]]
    tail: str = ""


def _md(text: str) -> str:
    """An untrusted value as inline code (outside tables)."""
    return markdown_code(text)


def _cell(text: str) -> str:
    """An untrusted value as inline code inside a table cell."""
    return markdown_code(text, table=True)


def _role(role: str) -> str:
    """A known role as a plain word; anything else (from a hostile endpoint) as code."""
    return role if role in ROLES else _md(role)


def _details_of(membership: Membership) -> str:
    """``" (until 2026-12-31, `INC-4711`)"``: the reason is untrusted free text."""
    return grant_details(membership, quote=_md)


def _truncation_notice(hidden: int) -> str:
    return f"_… truncated: {hidden:,} more change{'s' if hidden != 1 else ''}; {_LOCAL}._\n\n"


def _fit(section: _Section, budget: int) -> tuple[str, bool]:
    """The section in at most ``budget`` characters, cut at an item boundary if needed.

    Returns the text and whether it was cut.
    """
    full = section.head + "".join(text for text, _ in section.items) + section.tail
    if len(full) <= budget:
        return full, False
    total_hidden = sum(n for _, n in section.items)
    worst_notice = len(_truncation_notice(total_hidden)) + 1
    room = budget - len(section.head) - len(section.tail) - worst_notice
    if room < 0:
        omitted = f"_Section omitted to keep this comment under the size limit; {_LOCAL}._\n\n"
        return (omitted if len(omitted) <= budget else ""), True
    shown: list[str] = []
    used = 0
    hidden = total_hidden
    for text, n in section.items:
        if used + len(text) > room:
            break
        shown.append(text)
        used += len(text)
        hidden -= n
    return section.head + "".join(shown) + section.tail + "\n" + _truncation_notice(hidden), True


class _View:
    """What the sections need, gathered in one walk over the plan."""

    def __init__(self, plan: Plan, environments: Mapping[str, str | None], current: State | None):
        self.plan = plan
        self.environments = plan_environments(plan, environments)
        self.power = power_grants(plan, self.environments)
        new_admins = {c.key for c in self.power.new_admins}  # an admin invite is a role change too
        self.role_changes: list[Change] = []
        self.by_user: dict[str, list[Change]] = defaultdict(list)
        self.by_workspace: dict[str, list[Change]] = defaultdict(list)
        self.settings_by_workspace: dict[str, list[Change]] = defaultdict(list)
        self.key_changes: list[Change] = []
        self.new_workspaces: set[str] = set()
        self.cells: dict[tuple[str, str], str] = {}
        for change in plan.changes:
            if change.type is ResourceType.USER:
                self.by_user[change.key].append(change)
                if change.action is Action.UPDATE or change.key in new_admins:
                    self.role_changes.append(change)
            elif change.type is ResourceType.WORKSPACE:
                self.new_workspaces.add(change.key)
            elif change.type is ResourceType.API_KEY:
                self.key_changes.append(change)
            elif change.type in SETTINGS_TYPES:
                target = change.after if change.after is not None else change.before
                assert isinstance(target, (Webhook, Credential, ZoomApp, GoogleLoginGroup))
                self.settings_by_workspace[target.workspace].append(change)
            else:
                m = change.after if change.action is Action.CREATE else change.before
                assert isinstance(m, Membership)
                self.by_user[m.user].append(change)
                self.by_workspace[m.workspace].append(change)
                self.cells[(m.user, m.workspace)] = GRANTED if change.action is Action.CREATE else REVOKED
        self.current_access = (
            frozenset((m.user, m.workspace) for m in current.memberships.values())
            if current is not None
            else frozenset()
        )

    def is_production(self, workspace: str) -> bool:
        # The plan's own list first: it keeps what the base config had as production.
        return workspace in self.plan.production or is_production_environment(
            self.environments.get(workspace)
        )

    def workspace_order(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda name: (not self.is_production(name), name))

    def production_access_changes(self) -> list[Change]:
        return [
            c
            for name in self.workspace_order(self.by_workspace)
            if self.is_production(name)
            for c in self.by_workspace[name]
        ]

    def cell(self, user: str, workspace: str) -> str:
        if (user, workspace) in self.cells:
            return self.cells[(user, workspace)]
        return UNCHANGED if (user, workspace) in self.current_access else NO_ACCESS


# --- small renderers, one per kind of line ----------------------------------


def _access_line(change: Change) -> str:
    """``✅ `bob@acme.com` gets `notetaker-production` (until …)``, or ``❌ … loses …``."""
    if change.action is Action.CREATE:
        assert isinstance(change.after, Membership)
        m = change.after
        return f"{GRANTED} {_md(m.user)} gets {_md(m.workspace)}{_details_of(m)}"
    assert isinstance(change.before, Membership)
    m = change.before
    cascade = " (removed with user)" if change.cascade else ""
    return f"{REVOKED} {_md(m.user)} loses {_md(m.workspace)}{cascade}"


def _person_part(change: Change) -> str:
    """One change as seen from its user, e.g. ``developer → admin`` or ``+ notetaker-production``."""
    if change.type is ResourceType.USER:
        if change.action is Action.CREATE:
            assert isinstance(change.after, User)
            return f"invited as {_role(change.after.role)}"
        if change.action is Action.DELETE:
            return "removed"
        assert isinstance(change.before, User) and isinstance(change.after, User)
        return f"{_role(change.before.role)} → {_role(change.after.role)}"
    if change.action is Action.CREATE:
        assert isinstance(change.after, Membership)
        return f"+ {_md(change.after.workspace)}{_details_of(change.after)}"
    assert isinstance(change.before, Membership)
    return f"− {_md(change.before.workspace)}" + (" (removed with user)" if change.cascade else "")


def _workspace_line(change: Change) -> str:
    if change.action is Action.CREATE:
        assert isinstance(change.after, Membership)
        return f"- {GRANTED} granted: {_md(change.after.user)}{_details_of(change.after)}\n"
    assert isinstance(change.before, Membership)
    cascade = " (removed with user)" if change.cascade else ""
    return f"- {REVOKED} revoked: {_md(change.before.user)}{cascade}\n"


def _callout(title: str, lines: list[str], limit: int = CALLOUT_LIMIT) -> str:
    if not lines:
        return ""
    shown = [f"- {line}\n" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"- … and {len(lines) - limit:,} more\n")
    return f"**{title}**\n\n" + "".join(shown) + "\n"


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _warnings(plan: Plan) -> str:
    """The warnings call-out. A warning quotes names and emails, so it is shown as code.

    What a removal breaks is not repeated here: it heads the comment (``_breaks``).
    """
    return _callout(
        "Warnings",
        [
            f"⚠️ {_md(_clip(describe_warning(w), WARNING_CHARS))}"
            for w in plan.warnings
            if w.code != KEY_IMPACT
        ],
    )


def _breaks(plan: Plan) -> str:
    """What the plan's removals break, each on its own line, first in the comment."""
    return _callout(
        "⚠️ What this plan breaks",
        [_md(_clip(describe_warning(w), WARNING_CHARS)) for w in plan.warnings if w.code == KEY_IMPACT],
        limit=KEY_CALLOUT_LIMIT,
    )


def _power_line(change: Change) -> str:
    """One power-granting change: a new admin, a promotion, or a production grant."""
    if change.type is ResourceType.USER:
        return f"{_md(change.key)}: {_person_part(change)}"
    return _access_line(change)


# --- sections ---------------------------------------------------------------


def _title(plan: Plan) -> str:
    org = f" for {_md(plan.organization)}" if plan.organization else ""
    note = f" ⚠️ {markdown_code(plan.endpoint_note)}" if plan.endpoint_note else ""
    endpoint = f"Endpoint: {markdown_code(plan.endpoint)}{note}\n\n" if plan.endpoint else ""
    return f"### provisioner plan{org}\n\n{endpoint}"


DELIVERIES_LISTED = 100  # past this many, chosen names are listed alone and default names counted


def _deliveries(plan: Plan) -> str:
    """ "Secrets this apply writes": never shortened; it comes before everything that can be.

    Each line is ``NAME`` ← the object whose secret goes there. Past
    ``DELIVERIES_LISTED`` entries every name a config chose (``sink:``) is
    still listed, by name alone, and the names that follow the default
    pattern (``RECALL_<INSTANCE>_...``, unique by the config's check) are counted.
    """
    made = deliveries(plan)
    if not made:
        return ""
    head = f"**🔑 Secrets this apply writes ({len(made):,})**\n\n"
    if len(made) <= DELIVERIES_LISTED:
        return head + "".join(f"- {markdown_code(d.name)} ← {markdown_code(d.what)}\n" for d in made) + "\n"
    chosen = sorted({d.name for d in made if d.chosen})
    defaults = sum(1 for d in made if not d.chosen)
    listed = f"Names chosen by `sink:` ({len(chosen):,}): " + ", ".join(map(markdown_code, chosen)) + "\n\n"
    rest = (
        f"and {defaults:,} under their default names (`RECALL_<INSTANCE>_API_KEY_<NAME>`, "
        "`RECALL_<INSTANCE>_WEBHOOK_<HOST>_<HASH>`).\n\n"
    )
    return head + (listed if chosen else "") + (rest if defaults else "")


def _policy_changes(plan: Plan) -> str:
    """What the pull request changes in policy against its base: first, never shortened."""
    return _callout(
        f"⚠️ Policy changes ({len(plan.policy_changes)}; this plan's guards use the stricter side)",
        [f"{_md(path)}: {_md(before)} → {_md(after)}" for path, before, after in plan.policy_changes],
        limit=len(plan.policy_changes),
    )


def _summary(view: _View) -> str:
    plan = view.plan
    s = plan.summary
    text = f"**Plan: {s.create} to add, {s.update} to change, {s.delete} to remove.**\n\n"
    text += _deliveries(plan)
    text += _breaks(plan)
    text += _callout(
        "API keys (created, rotated, disabled)",
        [_settings_line(c) for c in view.key_changes],
        limit=KEY_CALLOUT_LIMIT,
    )
    power = view.power
    if power.total:
        text += _callout(
            f"⚠️ Changes that grant power ({power.total:,}): {power.counts()}",
            [_power_line(c) for c in power.changes],
        )
    text += _callout(
        "Role changes",
        [f"{_md(c.key)}: {_person_part(c)}" for c in view.role_changes],
    )
    text += _callout(
        "Production access changes",
        [_access_line(c) for c in view.production_access_changes()],
    )
    text += _callout(
        "Production settings changes",
        [
            _settings_line(c)
            for name in view.workspace_order(view.settings_by_workspace)
            if view.is_production(name)
            for c in view.settings_by_workspace[name]
        ],
    )
    text += _warnings(plan)
    return text


def _people(view: _View) -> _Section:
    items = []
    for email in sorted(view.by_user):
        changes = view.by_user[email]
        user_parts = [_person_part(c) for c in changes if c.type is ResourceType.USER]
        access = sorted(
            (c for c in changes if c.type is ResourceType.MEMBERSHIP),
            key=lambda c: (not view.is_production(c.key.split("/", 1)[0]), c.key),
        )
        parts = user_parts + [_person_part(c) for c in access]
        items.append((f"- {_md(email)}: {'; '.join(parts)}\n", len(changes)))
    if not items:
        return _Section("", [])
    return _Section("#### By person\n\n", items, "\n")


def _matrix(view: _View) -> _Section:
    columns = view.workspace_order(view.by_workspace)
    if not columns:
        return _Section("", [])
    shown, dropped = columns[:MATRIX_COLUMNS], len(columns) - MATRIX_COLUMNS
    head = (
        "#### Access matrix\n\n"
        f"{GRANTED} granted, {REVOKED} revoked, {UNCHANGED} unchanged (has access), "
        "blank: no access\n\n"
    )
    if dropped > 0:
        head += f"_{dropped:,} more changed instances are not shown here; see the sections below._\n\n"
    header = "| user | " + " | ".join(
        _cell(c) + (" (production)" if view.is_production(c) else "") for c in shown
    )
    head += header + " |\n|---|" + "---|" * len(shown) + "\n"
    rows = sorted({user for (user, ws) in view.cells if ws in shown})
    items = []
    for user in rows:
        cells = [view.cell(user, ws) for ws in shown]
        changed = sum(1 for cell in cells if cell in (GRANTED, REVOKED))
        items.append((f"| {_cell(user)} | " + " | ".join(cells) + " |\n", changed))
    return _Section(head, items, "\n")


def _workspaces(view: _View) -> list[_Section]:
    sections = []
    for name in view.workspace_order(view.by_workspace):
        notes = [
            note
            for note, on in (("production", view.is_production(name)), ("new", name in view.new_workspaces))
            if on
        ]
        head = f"#### {_md(name)}" + (f" ({', '.join(notes)})" if notes else "") + "\n\n"
        items = [(_workspace_line(c), 1) for c in view.by_workspace[name]]
        sections.append(_Section(head, items, "\n"))
    return sections


def _settings_line(change: Change) -> str:
    """``✏️ `credential deepgram (notetaker-production): api_key changed```."""
    line = LINE_RENDERERS[(change.type, change.action)](change, Counter())
    return f"{SETTINGS_MARKS[change.action]} {_md(line)}"


def _settings(view: _View) -> list[_Section]:
    """One section per instance whose settings change, production first.

    Each line is the text plan's line for the change, as inline code: it
    holds URLs and names from the config and the server. A secret shows as
    "changed" and where it comes from, never as a value.
    """
    sections = []
    for name in view.workspace_order(view.settings_by_workspace):
        notes = [
            note
            for note, on in (("production", view.is_production(name)), ("new", name in view.new_workspaces))
            if on
        ]
        head = f"#### {_md(name)}" + (f" ({', '.join(notes)})" if notes else "") + "\n\n"
        items = [(f"- {_settings_line(c)}\n", 1) for c in view.settings_by_workspace[name]]
        sections.append(_Section(head, items, "\n"))
    return sections


def _merge(sections: list[_Section], head: str) -> _Section:
    """Several sections cut as one (the per-instance sections share one budget)."""
    items: list[tuple[str, int]] = []
    for s in sections:
        items.append((s.head, 0))
        items.extend(s.items)
        items.append((s.tail, 0))
    return _Section(head, items) if items else _Section("", [])


def _details(view: _View) -> _Section:
    """The full text plan in a code block. Its values are escaped by ``render_text``."""
    markers = ("  + ", "  ~ ", "  - ")
    text = render_text(view.plan, environments=view.environments)
    fence = markdown_fence(text)
    lines: list[tuple[str, int]] = []
    counting = True  # lines after the "Plan:" summary repeat changes already counted
    for line in text.splitlines():
        counting = counting and not line.startswith("Plan: ")
        lines.append((line + "\n", 1 if counting and line.startswith(markers) else 0))
    return _Section(
        f"<details><summary>Full plan</summary>\n\n{fence}text\n", lines, f"{fence}\n\n</details>\n"
    )


def render_markdown(
    plan: Plan,
    *,
    environments: Mapping[str, str | None] | None = None,
    limit: int = DEFAULT_LIMIT,
    current: State | None = None,
) -> str:
    """The plan as a pull-request comment of fewer than ``limit`` characters.

    ``environments`` maps workspace instance name -> environment (from the
    desired ``State``'s ``Workspace.environment``); production instances come
    first and their access changes are called out. ``current`` (optional) lets
    the access matrix mark unchanged existing access with ``·``; without it
    those cells are blank.
    """
    view = _View(plan, environments or {}, current)
    title = _title(plan) + _policy_changes(plan)
    if plan.empty:
        text = title + NO_CHANGES + "\n\n" + _breaks(plan) + _warnings(plan)
    else:
        summary = _summary(view)
        text = title + summary
        sections = [
            _people(view),
            _matrix(view),
            _merge(_workspaces(view), "#### Access by workspace instance\n\n"),
            _merge(_settings(view), "#### Settings by workspace instance\n\n"),
            _details(view),
        ]
        # A section with nothing to show takes no share of the budget.
        sections = [s for s in sections if s.head or s.items]
        cut = False
        for i, section in enumerate(sections):
            budget = (limit - _SAFETY - len(text)) // (len(sections) - i)
            part, truncated = _fit(section, max(budget, 0))
            text += part
            cut = cut or truncated
        if cut:  # say so up front too; _SAFETY leaves room for this line
            text = text.replace(summary, summary + _SHORTENED, 1)
    text = text.rstrip("\n") + "\n"
    if len(text) >= limit:  # last resort; the budgets above should make this unreachable
        text = text[: max(limit - 200, 0)] + "\n\n" + _truncation_notice(plan.summary.total)
    return text
