"""A plan to and from its plain document (``format_version`` 2), and the document's schema.

``plan_to_dict`` and ``plan_from_dict`` are inverses; ``validate_plan_document``
checks a document against ``schemas/plan.schema.json``. The JSON renderer
(``provisioner.render.plan_json``) and saved plan files
(``provisioner.plan.planfile``) both go through here, so what we emit, save
and read back is what we document.

Decisions worth knowing:

* A document is checked first by the plan schema's check generated ahead of
  time (``provisioner.fastcheck``); ``jsonschema`` is imported only when that
  check says no, to raise the located error. Commands that never touch a plan
  document (``validate``, ``--help``) pay for neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from provisioner import fastcheck
from provisioner.plan.model import (
    TEXT,
    Action,
    Change,
    Plan,
    PlanWarning,
    Resource,
    ResourceType,
    describe_warning,
)
from provisioner.plan.plain import to_plain
from provisioner.resources.membership import from_plain as membership_from_dict
from provisioner.resources.registry import REGISTRY

FORMAT_VERSION = 2
SCHEMA_FILE = "plan.schema.json"


@lru_cache(maxsize=1)
def plan_schema() -> Mapping[str, Any]:
    """The plan JSON Schema (draft 2020-12), read once from the package data.

    Not checked against the metaschema here: that took ~0.3 s of every
    ``plan --format json`` for a file that ships with the package, and
    ``tests/plan/test_plan_render.py`` checks it instead.
    """
    text = resources.files("provisioner.schemas").joinpath(SCHEMA_FILE).read_text("utf-8")
    schema: Mapping[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _fast_check() -> Callable[[Any], bool] | None:
    """The plan schema's yes/no check, generated ahead of time (``provisioner.fastcheck``)."""
    return fastcheck.PLAN.load_check()


def validate_plan_document(document: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``document`` is not a valid plan document.

    The generated check answers first: jsonschema took ~0.3 s of a 100-change
    ``plan --format json`` (its import and ~30 µs a node), and almost every
    document we emit is valid. Only on its "no" does jsonschema decide, and
    raise with the located error.
    """
    fast = _fast_check()
    if fast is not None and fast(document):
        return
    import jsonschema

    jsonschema.Draft202012Validator(plan_schema()).validate(document)


def _plain_or_none(resource: Resource | None) -> dict[str, Any] | None:
    return None if resource is None else to_plain(resource)


def change_to_dict(change: Change) -> dict[str, Any]:
    """One change as a plain dict; ``reason``/``expires`` only where given."""
    document: dict[str, Any] = {
        "action": change.action.value,
        "type": change.type.value,
        "key": change.key,
        "before": _plain_or_none(change.before),
        "after": _plain_or_none(change.after),
        "cascade": change.cascade,
    }
    if change.reason is not None:
        document["reason"] = change.reason
    if change.expires is not None:
        document["expires"] = change.expires.isoformat()
    return document


def plan_to_dict(plan: Plan, *, tool_version: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plan as the plain document described by ``schemas/plan.schema.json``.

    ``extra`` adds the optional top-level fields the schema describes (the
    digest and the organization's id and region, see ``provisioner.plan.digest``).
    """
    summary = plan.summary
    # The pin's fields (``extra``) come last: its ``region`` is the
    # organization's as the API reports it, which the digest covers.
    return {
        "format_version": FORMAT_VERSION,
        "tool_version": tool_version,
        "organization": plan.organization,
        "endpoint": plan.endpoint,
        "region": plan.region,
        "production": list(plan.production),
        "policy_changes": [list(c) for c in plan.policy_changes],
        "config_digest": plan.config_digest,
        "state_fingerprint": plan.state_fingerprint,
        "changes": [change_to_dict(c) for c in plan.changes],
        "warnings": [describe_warning(w) for w in plan.warnings],
        "warning_details": [w.to_dict() for w in plan.warnings],
        "summary": {"create": summary.create, "update": summary.update, "delete": summary.delete},
        "expiring_soon": [to_plain(m) for m in plan.expiring_soon],
        **(extra or {}),
    }


# --- back from a document -------------------------------------------------


def change_from_dict(d: Mapping[str, Any]) -> Change:
    """A ``Change`` from its plain form."""
    kind = ResourceType(d["type"])
    read = REGISTRY[kind].from_plain
    return Change(
        action=Action(d["action"]),
        type=kind,
        key=d["key"],
        before=None if d["before"] is None else read(d["before"]),
        after=None if d["after"] is None else read(d["after"]),
        cascade=d["cascade"],
    )


def _warnings_from(document: Mapping[str, Any]) -> tuple[PlanWarning, ...]:
    # ``warning_details`` carries the codes; a plan file from before them has the sentences only.
    if "warning_details" in document:
        return tuple(PlanWarning.from_dict(w) for w in document["warning_details"])
    return tuple(PlanWarning(TEXT, None, params={"text": w}) for w in document["warnings"])


def plan_from_dict(document: Mapping[str, Any]) -> Plan:
    """The ``Plan`` a validated plan document describes (``plan_to_dict``'s inverse)."""
    return Plan(
        organization=document["organization"],
        changes=tuple(change_from_dict(c) for c in document["changes"]),
        warnings=_warnings_from(document),
        state_fingerprint=document["state_fingerprint"],
        config_digest=document["config_digest"],
        expiring_soon=tuple(membership_from_dict(m) for m in document["expiring_soon"]),
        endpoint=document.get("endpoint", ""),
        region=document.get("region", ""),
        production=tuple(document.get("production") or ()),
        policy_changes=tuple((str(a), str(b), str(c)) for a, b, c in document.get("policy_changes") or ()),
    )
