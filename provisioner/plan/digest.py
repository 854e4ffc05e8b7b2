"""The plan digest: one short identity for "these changes, to this organization".

A reviewer approves a plan; the job on merge makes a fresh plan and applies it.
``apply --expect DIGEST`` (and ``apply --plan FILE``) refuse unless the fresh
plan's digest equals the reviewed one, so what is applied is what was reviewed.
The digest is shown in every form of a plan (text, JSON field ``digest``,
the markdown comment, ``show`` of a saved plan) as ``sha256:<64 hex>``.

What the digest covers (and why):

* The organization the plan is for, as the API names it (``GET /me/``): its
  id, name and region. A plan reviewed for one organization never matches a
  plan for another, whichever key or endpoint URL made either. The endpoint
  URL itself is left out: the same organization is reached through different
  URLs (an embedded sandbox gets a new loopback port on every run, a proxy may
  sit in front), and the organization's id already says where the plan goes.
* Which declared instances count as production, and what the pull request
  changes in ``policy`` against its base (``plan --base``).
* Every change, in plan order: its action, type and key, whether it is a
  cascaded removal, and the values of ``before`` and ``after`` that say what
  the change does: a user's role; a workspace's environment; a grant's
  workspace, user, expiry and reason.

What it leaves out:

* Server bookkeeping that changes without changing what a change does: ids,
  ETags, and a user's invitation status (accepting an invitation does not
  change what removing or promoting that user means). These are also never
  taken from a reviewed plan: apply always executes the fresh plan, whose ids
  and ETags come from the server at apply time.
* Everything that depends on the moment or on the files rather than on the
  changes: warnings (their wording and "expires in N days" notes),
  ``expiring_soon``, the state fingerprint, the config digest (a merge commit
  that changes no access yields the same digest), the tool version and the
  save time of a plan file.

The digest is a sha256 over a canonical JSON of those values, prefixed by a
version tag inside the hashed text, so a future change to what is covered
cannot silently match an old digest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from provisioner.errors import ProvisionerError
from provisioner.frozen import frozen
from provisioner.model import Organization
from provisioner.plan.model import Change, Plan, ResourceType
from provisioner.plan.plain import canonical_json
from provisioner.resources.registry import REGISTRY

DIGEST_SCHEME = "provisioner-plan-digest/2"
PREFIX = "sha256:"
_HEX = re.compile(r"[0-9a-f]{64}")
# How a digest appears as a line of a plan: "Plan digest: sha256:…" in text,
# "Plan digest: `sha256:…`" in markdown. A job reads back the LAST such line.
_LINE = re.compile(r"^Plan digest: `?(sha256:[0-9a-f]{64})`?\s*$", re.MULTILINE)
_LABEL = "Plan digest"


class DigestError(ProvisionerError):
    """A digest given to provisioner is malformed, or none could be found."""


@frozen(slots=True)
class PlanTarget:
    """The organization a plan is for, as the API named it when the plan was made."""

    organization_id: str
    organization: str
    region: str

    @classmethod
    def of(cls, organization: Organization) -> PlanTarget:
        """The target of a plan made with a key of ``organization``."""
        return cls(organization.id, organization.name, organization.region)

    def fields(self) -> dict[str, str]:
        """The target as the plan document's fields (``organization_id``, ``region``)."""
        return {"organization_id": self.organization_id, "region": self.region}


def _material(type_: ResourceType, resource: Any) -> dict[str, Any] | None:
    """The values of a resource that say what a change to it does (see the module docstring)."""
    return None if resource is None else REGISTRY[type_].material(resource)


def material_change(change: Change) -> dict[str, Any]:
    """One change as the digest sees it."""
    return {
        "action": change.action.value,
        "type": change.type.value,
        "key": change.key,
        "cascade": change.cascade,
        "before": _material(change.type, change.before),
        "after": _material(change.type, change.after),
    }


def plan_digest(plan: Plan, target: PlanTarget) -> str:
    """``sha256:<hex>`` over the organization and the material content of every change."""
    document = {
        "scheme": DIGEST_SCHEME,
        "organization": {
            "id": target.organization_id,
            "name": target.organization,
            "region": target.region,
        },
        "changes": [material_change(c) for c in plan.changes],
        # What counts as production and what the policy change is: decisions a
        # reviewer must have seen, so a comment without them cannot pass --expect.
        "production": sorted(plan.production),
        "policy_changes": [list(c) for c in plan.policy_changes],
    }
    return PREFIX + hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def pin_fields(plan: Plan, target: PlanTarget) -> dict[str, str]:
    """The plan document's fields that pin it: ``digest``, ``organization_id``, ``region``."""
    return {"digest": plan_digest(plan, target), **target.fields()}


def parse_digest(text: str, *, source: str = "--expect") -> str:
    """A digest as given by a person (``sha256:<hex>`` or bare hex), normalised to ``sha256:<hex>``."""
    value = text.strip().strip("`").lower()
    hex_part = value[len(PREFIX) :] if value.startswith(PREFIX) else value
    if not _HEX.fullmatch(hex_part):
        raise DigestError(
            f"{source}: {text.strip()[:80]!r} is not a plan digest; expected sha256: followed by "
            "64 hex digits, as printed on the `Plan digest:` line of `provisioner plan`"
        )
    return PREFIX + hex_part


def find_digest(text: str) -> str | None:
    """The digest on the last ``Plan digest:`` line of ``text`` (a plan or a PR comment), if any.

    The last one, because the tool prints it as the final line of a plan; a
    quoted or forged line earlier in a comment cannot take its place.
    """
    found = _LINE.findall(text)
    return found[-1] if found else None


def text_line(digest: str) -> str:
    """The digest line of the text plan."""
    return f"{_LABEL}: {digest}"


def markdown_line(digest: str) -> str:
    """The digest line of the markdown comment: visible, and read back by ``find_digest``."""
    return f"{_LABEL}: `{digest}`"


# --- the difference between a reviewed and a fresh plan -----------------------


@frozen
class PlanDifference:
    """How a fresh plan differs from the reviewed one, change by change.

    ``added`` are changes in the fresh plan that nobody reviewed; ``dropped``
    reviewed changes that the fresh plan no longer makes; ``altered`` pairs
    ``(reviewed, fresh)`` of changes to the same object that now do something
    else (another role, expiry, reason, ...).
    """

    added: tuple[Change, ...]
    dropped: tuple[Change, ...]
    altered: tuple[tuple[Change, Change], ...]
    target_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.dropped or self.altered or self.target_changed)


def compare(reviewed: Plan, fresh: Plan, *, same_target: bool = True) -> PlanDifference:
    """The change-by-change difference of two plans, by object (type and key)."""

    def by_object(plan: Plan) -> Mapping[tuple[str, str, str], Change]:
        return {(c.type.value, c.key, c.action.value): c for c in plan.changes}

    before, after = by_object(reviewed), by_object(fresh)
    by_key_before = {(t, k): c for (t, k, _), c in before.items()}
    altered: list[tuple[Change, Change]] = []
    added: list[Change] = []
    paired: set[tuple[str, str]] = set()
    for ident, change in after.items():
        old = before.get(ident) or by_key_before.get(ident[:2])
        if old is None:
            added.append(change)
        elif material_change(old) != material_change(change):
            altered.append((old, change))
            paired.add(ident[:2])
        else:
            paired.add(ident[:2])
    dropped = [c for (t, k, _), c in before.items() if (t, k) not in paired]
    return PlanDifference(tuple(added), tuple(dropped), tuple(altered), target_changed=not same_target)


@frozen
class Expectation:
    """The reviewed plan an apply must match: its digest, where it came from, and its
    changes and target when the source carried them (a JSON plan or a saved plan)."""

    digest: str
    source: str
    reviewed: Plan | None = None
    target: PlanTarget | None = None
    # From a text plan or a plan comment: its change lines (``  + user …``), so a
    # refusal can still show the difference line by line; ``lines_complete`` is
    # False when the comment was shortened and some lines are missing.
    reviewed_lines: tuple[str, ...] | None = None
    lines_complete: bool = True


def _line_difference(expectation: Expectation, fresh: Plan) -> list[str]:
    """The difference as plan lines, when only the reviewed plan's text is known."""
    from provisioner.render.plan_text import cascade_counts, change_line

    assert expectation.reviewed_lines is not None
    cascades = cascade_counts(fresh)
    fresh_lines = [change_line(c, cascades) for c in fresh.changes]
    reviewed = set(expectation.reviewed_lines)
    shown = set(fresh_lines)
    added = [line for line in fresh_lines if line not in reviewed]
    dropped = [line for line in dict.fromkeys(expectation.reviewed_lines) if line not in shown]
    out: list[str] = []
    if added:
        out.append("Changes nobody reviewed (in the fresh plan only):")
        out += added
    if dropped:
        out.append("Reviewed changes the fresh plan no longer makes:")
        out += dropped
    if not expectation.lines_complete:
        out.append(
            "The reviewed comment was shortened, so some of its lines are missing here; run "
            "`provisioner plan` on the reviewed commit for the whole reviewed plan."
        )
    return out


def render_difference(expectation: Expectation, fresh: Plan, target: PlanTarget, digest: str) -> str:
    """The reviewed and the fresh plan side by side, as plan lines (for a refusal message)."""
    # Imported here: plan lines are the text renderer's, and digest sits below renderers.
    from provisioner.render.plan_text import cascade_counts, change_line

    lines = [
        f"  reviewed digest: {expectation.digest} (from {expectation.source})",
        f"  fresh digest:    {digest}",
    ]
    if expectation.reviewed is None and expectation.reviewed_lines is not None:
        return "\n".join(lines + _line_difference(expectation, fresh))
    if expectation.reviewed is None:
        lines += [
            "Only the reviewed digest is known, not the reviewed changes: compare the fresh plan "
            "above with the reviewed plan. To see the difference change by change, give the "
            "reviewed plan itself: --expect-file PLAN.json (from `plan --format json`) or "
            "--plan PLANFILE.",
        ]
        return "\n".join(lines)

    same = expectation.target is None or expectation.target == target
    difference = compare(expectation.reviewed, fresh, same_target=same)
    if difference.target_changed:
        reviewed_target = expectation.target
        assert reviewed_target is not None
        lines.append(
            f"The reviewed plan is for organization {reviewed_target.organization} "
            f"(id {reviewed_target.organization_id}, {reviewed_target.region}); the key in use "
            f"reaches {target.organization} (id {target.organization_id}, {target.region})."
        )
    fresh_cascades = cascade_counts(fresh)
    reviewed_cascades = cascade_counts(expectation.reviewed)
    if difference.added:
        lines.append("Changes nobody reviewed (in the fresh plan only):")
        lines += [change_line(c, fresh_cascades) for c in difference.added]
    if difference.dropped:
        lines.append("Reviewed changes the fresh plan no longer makes:")
        lines += [change_line(c, reviewed_cascades) for c in difference.dropped]
    if difference.altered:
        lines.append("Changes that now do something else:")
        for old, new in difference.altered:
            lines.append(f"  reviewed: {change_line(old, reviewed_cascades).strip()}")
            lines.append(f"  now:      {change_line(new, fresh_cascades).strip()}")
    if not (difference.added or difference.dropped or difference.altered):
        lines.append("The changes are the same; the organization they are for is not.")
    return "\n".join(lines)
