"""The Terraform-like text rendering of a plan.

One walk over ``plan.changes``: each change becomes one line through a small
renderer chosen from an explicit ``(type, action)`` mapping, and lines are
grouped under the headings Users / Workspaces / Access.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Mapping

from provisioner.escape import terminal
from provisioner.model import INVITED, Membership, User, Workspace
from provisioner.plan.model import Action, Change, Plan, ResourceType, format_expiry

NO_CHANGES = "No changes. The organization matches the configuration."

MARKERS: Mapping[Action, str] = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}
HEADINGS: Mapping[ResourceType, str] = {
    ResourceType.USER: "Users",
    ResourceType.WORKSPACE: "Workspaces",
    ResourceType.MEMBERSHIP: "Access",
}

_RESET = "\x1b[0m"
_COLORS: Mapping[Action, str] = {
    Action.CREATE: "\x1b[32m",  # green
    Action.UPDATE: "\x1b[33m",  # yellow
    Action.DELETE: "\x1b[31m",  # red
}
_BOLD = "\x1b[1m"
_WARN = "\x1b[1;33m"


def grant_details(membership: Membership) -> str:
    """``" (until 2026-12-31, INC-4711)"``, or ``""`` for a grant without expiry or reason."""
    parts = []
    if membership.expires is not None:
        parts.append(f"until {format_expiry(membership.expires)}")
    if membership.reason:
        parts.append(membership.reason)
    return f" ({', '.join(parts)})" if parts else ""


def cascade_counts(plan: Plan) -> Counter[str]:
    """How many cascaded membership removals each removed user brings along."""
    counts: Counter[str] = Counter()
    for change in plan.changes:
        if change.cascade and isinstance(change.before, Membership):
            counts[change.before.user] += 1
    return counts


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# One small renderer per change type and action. Each gets the change and the
# cascade counts and returns the line's text after the marker.
_LineRenderer = Callable[[Change, Counter[str]], str]


def _invite_user(change: Change, _: Counter[str]) -> str:
    assert isinstance(change.after, User)
    return f"user {change.key} ({change.after.role})"


def _update_user(change: Change, _: Counter[str]) -> str:
    assert isinstance(change.before, User) and isinstance(change.after, User)
    pending = " (invitation pending)" if change.before.status == INVITED else ""
    return f"user {change.key}: {change.before.role} -> {change.after.role}{pending}"


def _remove_user(change: Change, cascades: Counter[str]) -> str:
    assert isinstance(change.before, User)
    notes = []
    if change.before.status == INVITED:
        notes.append("invitation pending")
    if cascades[change.key]:
        notes.append(f"and {_plural(cascades[change.key], 'membership')}")
    return f"user {change.key}" + (f" ({', '.join(notes)})" if notes else "")


def _create_workspace(change: Change, _: Counter[str]) -> str:
    assert isinstance(change.after, Workspace)
    return f"workspace {change.key}"


def _grant(change: Change, _: Counter[str]) -> str:
    assert isinstance(change.after, Membership)
    m = change.after
    return f"access {m.workspace}: {m.user}{grant_details(m)}"


def _revoke(change: Change, _: Counter[str]) -> str:
    assert isinstance(change.before, Membership)
    m = change.before
    return f"access {m.workspace}: {m.user}" + (" (removed with user)" if change.cascade else "")


LINE_RENDERERS: Mapping[tuple[ResourceType, Action], _LineRenderer] = {
    (ResourceType.USER, Action.CREATE): _invite_user,
    (ResourceType.USER, Action.UPDATE): _update_user,
    (ResourceType.USER, Action.DELETE): _remove_user,
    (ResourceType.WORKSPACE, Action.CREATE): _create_workspace,
    (ResourceType.MEMBERSHIP, Action.CREATE): _grant,
    (ResourceType.MEMBERSHIP, Action.DELETE): _revoke,
}


def change_line(change: Change, cascades: Counter[str], *, color: bool = False) -> str:
    """One indented, marked line for one change, e.g. ``  + user bob@acme.com (developer)``."""
    text = f"  {MARKERS[change.action]} {LINE_RENDERERS[(change.type, change.action)](change, cascades)}"
    return f"{_COLORS[change.action]}{text}{_RESET}" if color else text


def summary_line(plan: Plan) -> str:
    """``Plan: N to add, N to change, N to remove.``"""
    s = plan.summary
    return f"Plan: {s.create} to add, {s.update} to change, {s.delete} to remove."


def render_text(plan: Plan, *, color: bool = False) -> str:
    """The plan as Terraform-like text. ANSI colour only when ``color`` (the caller decides)."""
    warnings = [f"{_WARN}Warning:{_RESET} {w}" if color else f"Warning: {w}" for w in plan.warnings]
    note = f" ({terminal(plan.endpoint_note)})" if plan.endpoint_note else ""
    endpoint = [f"Endpoint: {terminal(plan.endpoint)}{note}"] if plan.endpoint else []
    if plan.empty:
        return "\n\n".join([*endpoint, NO_CHANGES, *(["\n".join(warnings)] if warnings else [])]) + "\n"

    cascades = cascade_counts(plan)
    groups: dict[ResourceType, list[str]] = {t: [] for t in ResourceType}
    for change in plan.changes:
        groups[change.type].append(change_line(change, cascades, color=color))

    blocks = endpoint + [
        "\n".join([f"{_BOLD}{HEADINGS[t]}:{_RESET}" if color else f"{HEADINGS[t]}:", *lines])
        for t, lines in groups.items()
        if lines
    ]
    total = summary_line(plan)
    blocks.append(f"{_BOLD}{total}{_RESET}" if color else total)
    if warnings:
        blocks.append("\n".join(warnings))
    return "\n\n".join(blocks) + "\n"
