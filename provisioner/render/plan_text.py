"""The Terraform-like text rendering of a plan.

One walk over ``plan.changes``: each change becomes one line through a small
renderer chosen from an explicit ``(type, action)`` mapping, and lines are
grouped under the headings Users / Workspaces / Access. After the ``Plan:``
line, the changes that grant power (``provisioner.plan.power``) are called out
again with their counts, so they are on screen at apply's prompt.

Decisions worth knowing:

* Every value from the config or the API (emails, names, roles, reasons,
  warnings) passes through ``escape.terminal`` on its own, where it joins a
  line: a value cannot span lines, move the cursor or erase a line, and our own
  colour codes, added around whole lines, survive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from provisioner.escape import terminal
from provisioner.model import Membership
from provisioner.plan.deliveries import deliveries
from provisioner.plan.model import Action, Change, Plan, ResourceType, describe_warning
from provisioner.plan.power import PowerGrants, power_grants
from provisioner.resources.base import LineRenderer
from provisioner.resources.membership import grant_details as grant_details  # render_markdown's import
from provisioner.resources.registry import REGISTRY

NO_CHANGES = "No changes. The organization matches the configuration."

MARKERS: Mapping[Action, str] = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}
HEADINGS: Mapping[ResourceType, str] = {kind.type: kind.heading for kind in REGISTRY}

_RESET = "\x1b[0m"
_COLORS: Mapping[Action, str] = {
    Action.CREATE: "\x1b[32m",  # green
    Action.UPDATE: "\x1b[33m",  # yellow
    Action.DELETE: "\x1b[31m",  # red
}
_BOLD = "\x1b[1m"
_WARN = "\x1b[1;33m"
POWER_LINES = 20  # power-granting changes listed again after the summary; the rest are counted


def cascade_counts(plan: Plan) -> Counter[str]:
    """How many cascaded membership removals each removed user brings along."""
    counts: Counter[str] = Counter()
    for change in plan.changes:
        if change.cascade and isinstance(change.before, Membership):
            counts[change.before.user] += 1
    return counts


# One small renderer per change type and action, from each type's module.
LINE_RENDERERS: Mapping[tuple[ResourceType, Action], LineRenderer] = {
    (kind.type, action): line for kind in REGISTRY for action, line in kind.lines.items()
}


def change_line(change: Change, cascades: Counter[str], *, color: bool = False) -> str:
    """One indented, marked line for one change, e.g. ``  + user bob@acme.com (developer)``."""
    text = f"  {MARKERS[change.action]} {LINE_RENDERERS[(change.type, change.action)](change, cascades)}"
    return f"{_COLORS[change.action]}{text}{_RESET}" if color else text


def summary_line(plan: Plan) -> str:
    """``Plan: N to add, N to change, N to remove.``"""
    s = plan.summary
    return f"Plan: {s.create} to add, {s.update} to change, {s.delete} to remove."


def power_callout(grants: PowerGrants, cascades: Counter[str], *, color: bool = False) -> str:
    """``Grants power: 1 new admin, …`` and the changes themselves, or ``""`` when none.

    At most ``POWER_LINES`` changes are listed; the count covers them all.
    """
    if not grants.total:
        return ""
    head = f"Grants power: {grants.counts()}"
    lines = [f"{_WARN}{head}{_RESET}" if color else head]
    lines += [change_line(c, cascades, color=color) for c in grants.changes[:POWER_LINES]]
    if grants.total > POWER_LINES:
        lines.append(f"  … and {grants.total - POWER_LINES:,} more, listed above")
    return "\n".join(lines)


def _deliveries(plan: Plan) -> list[str]:
    """ "Secrets this apply writes": each destination name and whose secret goes there."""
    made = deliveries(plan)
    if not made:
        return []
    lines = [f"  {terminal(d.name)} <- {terminal(d.what)}" for d in made]
    return ["\n".join([f"Secrets this apply writes ({len(made)}):", *lines])]


def _policy_changes(plan: Plan) -> list[str]:
    """What the pull request changes in policy against its base: first, since it judges the rest."""
    if not plan.policy_changes:
        return []
    lines = [
        f"  {terminal(path)}: {terminal(before)} -> {terminal(after)}"
        for path, before, after in plan.policy_changes
    ]
    head = f"Policy changes ({len(lines)}; the guards of this plan use the stricter side):"
    return ["\n".join([head, *lines])]


def render_text(
    plan: Plan, *, color: bool = False, environments: Mapping[str, str | None] | None = None
) -> str:
    """The plan as Terraform-like text. ANSI colour only when ``color`` (the caller decides).

    ``environments`` maps workspace instance name -> environment (as for
    ``render_markdown``); it tells which access grants are production access.
    """
    warnings = [
        f"{_WARN}Warning:{_RESET} {terminal(describe_warning(w))}"
        if color
        else f"Warning: {terminal(describe_warning(w))}"
        for w in plan.warnings
    ]
    note = f" ({terminal(plan.endpoint_note)})" if plan.endpoint_note else ""
    endpoint = [f"Endpoint: {terminal(plan.endpoint)}{note}"] if plan.endpoint else []
    if plan.empty:
        blocks = [*endpoint, *_policy_changes(plan), NO_CHANGES]
        return "\n\n".join([*blocks, *(["\n".join(warnings)] if warnings else [])]) + "\n"

    cascades = cascade_counts(plan)
    groups: dict[ResourceType, list[str]] = {kind.type: [] for kind in REGISTRY}
    for change in plan.changes:
        groups[change.type].append(change_line(change, cascades, color=color))

    blocks = (
        endpoint
        + _policy_changes(plan)  # first, as in the empty plan: it judges everything below
        + _deliveries(plan)
        + [
            "\n".join([f"{_BOLD}{HEADINGS[t]}:{_RESET}" if color else f"{HEADINGS[t]}:", *lines])
            for t, lines in groups.items()
            if lines
        ]
    )
    total = summary_line(plan)
    blocks.append(f"{_BOLD}{total}{_RESET}" if color else total)
    power = power_callout(power_grants(plan, environments), cascades, color=color)
    if power:
        blocks.append(power)
    if warnings:
        blocks.append("\n".join(warnings))
    return "\n\n".join(blocks) + "\n"
