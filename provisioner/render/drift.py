"""A drift report as text, JSON or markdown: one walk, three formats, one registry.

``_sections`` walks the report once and describes every item as a sequence of
parts: literal words of ours, and ``Name``s, the untrusted values (emails,
workspace names, roles, the organization's name) that come from the config
or the server. Each format joins the parts and escapes every ``Name`` for its
destination in one place: ``terminal`` for text, ``markdown_code`` for
markdown, nothing for JSON (the encoder escapes). So the three formats carry
the same items, the same counts and the same words.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from provisioner import __version__
from provisioner.drift import DriftItem, DriftReport, Origin, Reach
from provisioner.escape import markdown_code, terminal
from provisioner.frozen import frozen
from provisioner.model import Membership
from provisioner.plan.model import Action, ResourceType
from provisioner.render.plan_text import LINE_RENDERERS


@frozen(slots=True)
class Name:
    """An untrusted value inside a description; each format escapes it."""

    text: str


Part = str | Name
Escape = Callable[[str], str]

_HINT = "Run `provisioner plan` to see what apply would do."
_MARKERS: Mapping[Origin, Mapping[Action, str]] = {
    Origin.OUT_OF_BAND: {a: "!" for a in Action},
    Origin.UNKNOWN: {a: "!" for a in Action},
    Origin.UNAPPLIED: {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"},
}


@frozen
class _Section:
    title: str
    items: tuple[DriftItem, ...]


def _sections(report: DriftReport) -> list[_Section]:
    if not report.with_audit_log:
        return [_Section("Differences (no audit log, so every difference counts as drift)", report.items)]
    return [
        _Section("Out-of-band changes since the last apply", report.out_of_band),
        _Section("Config not applied yet", report.unapplied),
    ]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _headline(report: DriftReport) -> str:
    if not report.drifted:
        return "No drift: the organization matches the configuration."
    if not report.with_audit_log:
        return f"Drift: {_plural(len(report.items), 'difference')} (no audit log)."
    return (
        f"Drift: {_plural(len(report.out_of_band), 'out-of-band change')}, "
        f"{_plural(len(report.unapplied), 'config change')} not applied yet."
    )


# --- what each item says --------------------------------------------------------


def _workspaces(reach: Sequence[Reach]) -> list[Part]:
    parts: list[Part] = []
    for i, r in enumerate(reach):
        parts += [", " if i else "", Name(r.workspace), " (production)" if r.production else ""]
    return parts or ["no workspace"]


def _user_access(item: DriftItem) -> list[Part]:
    verb = "reaches " if item.reach_on_server else "the config grants "
    return ["; ", verb, *_workspaces(item.reach)]


def _role_or_none(role: str | None, absent: str) -> list[Part]:
    return [Name(role)] if role is not None else [absent]


def _config_view(item: DriftItem) -> list[Part]:
    if item.config_role is None:
        return [" (not in the config)"]
    return [" (config: ", Name(item.config_role), ")"]


def _describe_user(item: DriftItem) -> list[Part]:
    email = Name(item.change.key)
    if item.origin is Origin.OUT_OF_BAND:
        # What the server did since the last apply, then what the config says.
        if item.last_role is None:
            what = [" was added on the server as ", *_role_or_none(item.server_role, "?")]
        elif item.server_role is None:
            what = [" was removed on the server"]
        else:
            what = [
                ": role changed on the server from ",
                Name(item.last_role),
                " to ",
                *_role_or_none(item.server_role, "?"),
            ]
        return ["user ", email, *what, *_config_view(item), *_user_access(item)]
    if item.origin is Origin.UNKNOWN:
        if item.change.action is Action.DELETE:
            what = [
                " (",
                *_role_or_none(item.server_role, "?"),
                ") is in the organization but not in the config",
            ]
        elif item.change.action is Action.CREATE:
            what = [
                " (",
                *_role_or_none(item.config_role, "?"),
                ") is in the config but not in the organization",
            ]
        else:
            what = [
                " is ",
                *_role_or_none(item.server_role, "?"),
                " in the organization, ",
                *_role_or_none(item.config_role, "?"),
                " in the config",
            ]
        return ["user ", email, *what, *_user_access(item)]
    if item.change.action is Action.CREATE:
        what = ["invite user ", email, " as ", *_role_or_none(item.config_role, "?")]
    elif item.change.action is Action.DELETE:
        what = ["remove user ", email, " (", *_role_or_none(item.server_role, "?"), ")"]
    else:
        what = [
            "change the role of ",
            email,
            " from ",
            *_role_or_none(item.server_role, "?"),
            " to ",
            *_role_or_none(item.config_role, "?"),
        ]
    return [*what, *_user_access(item)]


def _describe_workspace(item: DriftItem) -> list[Part]:
    # Workspaces are only ever created, so the change is always a CREATE.
    name = _workspaces(item.reach)
    if item.origin is Origin.OUT_OF_BAND:
        return ["workspace ", *name, " was deleted on the server"]
    if item.origin is Origin.UNKNOWN:
        return ["workspace ", *name, " is in the config but not in the organization"]
    return ["create workspace ", *name]


def _describe_membership(item: DriftItem) -> list[Part]:
    membership = item.change.before if item.change.before is not None else item.change.after
    assert isinstance(membership, Membership)
    user, where = Name(membership.user), _workspaces(item.reach)
    grant = item.change.action is Action.CREATE  # the plan would grant it
    if item.origin is Origin.OUT_OF_BAND:
        done = " was revoked on the server" if grant else " was granted on the server"
        return ["access of ", user, " to ", *where, done]
    if item.origin is Origin.UNKNOWN:
        return [
            "access of ",
            user,
            " to ",
            *where,
            " is granted by the config but not in the organization"
            if grant
            else " is in the organization but not granted by the config",
        ]
    if grant:
        return ["grant ", user, " access to ", *where]
    return ["revoke the access of ", user, " to ", *where]


_SETTING_ORIGIN = {
    Origin.OUT_OF_BAND: "changed on the server since the last apply; the plan would do: ",
    Origin.UNKNOWN: "the organization differs from the config; the plan would do: ",
    Origin.UNAPPLIED: "not applied yet: ",
}


def _describe_setting(item: DriftItem) -> list[Part]:
    """A webhook or credential: the plan's own line for it (a secret shows as "changed", never a value)."""
    change = item.change
    line = LINE_RENDERERS[(change.type, change.action)](change, Counter())
    return [_SETTING_ORIGIN[item.origin], Name(line)]


_DESCRIBE: Mapping[ResourceType, Callable[[DriftItem], list[Part]]] = {
    ResourceType.USER: _describe_user,
    ResourceType.WORKSPACE: _describe_workspace,
    ResourceType.MEMBERSHIP: _describe_membership,
    ResourceType.WEBHOOK: _describe_setting,
    ResourceType.CREDENTIAL: _describe_setting,
    ResourceType.API_KEY: _describe_setting,
}


def describe(item: DriftItem, escape: Escape) -> str:
    """One item as a sentence, every untrusted value passed through ``escape``."""
    # A type without its own sentence is described by its plan line (as settings are).
    parts = _DESCRIBE.get(item.change.type, _describe_setting)(item)
    return "".join(escape(p.text) if isinstance(p, Name) else p for p in parts)


def _marker(item: DriftItem) -> str:
    return _MARKERS[item.origin][item.change.action]


# --- the three formats ------------------------------------------------------------


def render_drift_text(report: DriftReport) -> str:
    """Lines for a terminal or a CI log; no control character of a name gets through."""
    org = terminal(report.organization)
    if not report.drifted:
        # Warnings still show (e.g. API keys nobody declared, under policy.api_keys.unmanaged: report).
        warnings = "".join(f"Warning: {terminal(w)}\n" for w in report.warnings)
        return f"No drift: {org} matches the configuration.\n" + warnings
    lines = [f"{_headline(report)} Organization: {org}."]
    for section in _sections(report):
        lines.append(f"{section.title} ({len(section.items)}):")
        lines += [f"  {_marker(i)} {describe(i, terminal)}" for i in section.items] or ["  (none)"]
    lines += [f"Warning: {terminal(w)}" for w in report.warnings]
    lines.append(_HINT)
    return "\n".join(lines) + "\n"


def render_drift_markdown(report: DriftReport) -> str:
    """GitHub-flavoured markdown for an issue or comment; every name is a code span."""
    out = [f"### provisioner drift for {markdown_code(report.organization)}\n"]
    out.append(f"**{_headline(report)}**\n")
    if report.drifted:
        for section in _sections(report):
            out.append(f"#### {section.title} ({len(section.items)})\n")
            # The marker is backslash-escaped: "- + …" would open a nested list.
            lines = [f"- \\{_marker(i)} {describe(i, markdown_code)}" for i in section.items]
            out.append("\n".join(lines or ["_None._"]) + "\n")
    if report.warnings:
        out.append("**Warnings**\n")
        out.append("\n".join(f"- ⚠️ {markdown_code(w)}" for w in report.warnings) + "\n")
    if report.drifted:
        out.append(_HINT + "\n")
    return "\n".join(out)


def _item_json(item: DriftItem) -> dict[str, object]:
    out: dict[str, object] = {
        "action": item.change.action.value,
        "type": item.change.type.value,
        "key": item.change.key,
        "origin": item.origin.value,
        "description": describe(item, str),
        "workspaces": [{"name": r.workspace, "production": r.production} for r in item.reach],
    }
    if item.change.type is ResourceType.USER:
        out.update(
            server_role=item.server_role,
            config_role=item.config_role,
            last_applied_role=item.last_role,
            workspaces_on_server=item.reach_on_server,
        )
    return out


def render_drift_json(report: DriftReport) -> str:
    """One JSON document; ``unapplied`` is null without an audit log (nobody can tell)."""
    unapplied = [_item_json(i) for i in report.unapplied] if report.with_audit_log else None
    return (
        json.dumps(
            {
                "tool_version": __version__,
                "organization": report.organization,
                "drifted": report.drifted,
                "audit_log": report.with_audit_log,
                "counts": {
                    "out_of_band": len(report.out_of_band),
                    "unapplied": len(report.unapplied) if report.with_audit_log else None,
                    "total": len(report.items),
                },
                "out_of_band": [_item_json(i) for i in report.out_of_band],
                "unapplied": unapplied,
                "warnings": list(report.warnings),
            },
            sort_keys=True,
            indent=2,
            ensure_ascii=True,
        )
        + "\n"
    )


DriftRenderer = Callable[[DriftReport], str]

# The order is the order of ``--format``'s choices in ``--help``.
DRIFT_RENDERERS: Mapping[str, DriftRenderer] = {
    "text": render_drift_text,
    "json": render_drift_json,
    "markdown": render_drift_markdown,
}


def render_drift(report: DriftReport, fmt: str) -> str:
    """The report in ``fmt`` (a key of ``DRIFT_RENDERERS``)."""
    return DRIFT_RENDERERS[fmt](report)
