"""The diff: ``(current, desired) -> Plan``. Pure; no I/O, no clock.

Generic over the registered resource types (``provisioner.resources.registry``):
each type's module keys its objects by identity and says how current and
desired become changes and warnings (creates and deletes from set
differences, as in octoDNS's ``Zone.changes``). This module only runs those
rules in table order and puts the results together.

Decisions worth knowing:

* Ignored users/workspaces (``policy.ignore_*`` globs) are removed from both
  sides before anything else, and so are the objects that touch them (each
  type says what "touches" means: ``ResourceKind.ignored``).
* Changes sort deterministically: by phase, then by the type's place in the
  table, then by key. Warnings come in table order, each type's in key order.
* ``state_fingerprint`` is computed over the unfiltered ``current``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from provisioner.model import Membership, Policy, State
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.plan.model import Change, Plan, PlanWarning, phase_of
from provisioner.resources.base import DiffContext, IgnoreRules
from provisioner.resources.membership import membership_key
from provisioner.resources.registry import REGISTRY
from provisioner.resources.user import active_admins, users_after
from provisioner.secrets.refs import SecretValues

# Shared with the guards and drift, which reason in the diff's terms.
__all__ = ["active_admins", "diff", "filter_ignored", "membership_key", "users_after"]


def filter_ignored(state: State, policy: Policy) -> State:
    """``state`` without ignored objects (and the objects touching them).

    Keys are normalized on the way (users by lowercased email, memberships by
    ``(workspace, lowercased email)``): each type's ``identity``.
    """
    ignore = IgnoreRules.of(policy)
    if ignore.empty and _keys_normalized(state):
        return state  # nothing to drop or re-key: skip rebuilding 100,000 entries
    fields: dict[str, Any] = {
        kind.field: MappingProxyType(
            {kind.identity(o): o for o in kind.of(state).values() if not kind.ignored(o, ignore)}
        )
        for kind in REGISTRY
    }
    return State(**fields)


def _keys_normalized(state: State) -> bool:
    """Whether every key is already in identity form (as the reader and the loader make them)."""
    return all(kind.normalized_keys(kind.of(state)) for kind in REGISTRY)


def _sort_key(change: Change) -> tuple[int, int, str]:
    return (int(phase_of(change)), REGISTRY.order(change.type), change.key)


def diff(
    current: State,
    desired: State,
    policy: Policy,
    *,
    now: datetime,
    organization: str = "",
    config_digest: str = "",
    expiring_within: timedelta = timedelta(days=7),
    secrets: SecretValues | None = None,
    key_clock: datetime | None = None,
) -> Plan:
    """The plan that takes ``current`` to ``desired``.

    ``now`` (timezone-aware) decides which grants have expired (``expires <=
    now`` counts as absent) and which expire within ``expiring_within``
    (reported in ``Plan.expiring_soon`` and as a warning). A management
    contract secret compares by the source the server recorded for it, never
    by value; ``secrets`` holds only the values of secrets Recall.ai's real
    API returns, which its types compare in memory. ``key_clock`` is the
    server's time, on which API key ages are measured (``now`` when None).
    """
    cur = filter_ignored(current, policy)
    des = filter_ignored(desired, policy)
    changes: list[Change] = []
    warnings: list[PlanWarning] = []
    expiring: list[Membership] = []
    for kind in REGISTRY:
        context = DiffContext(
            current=cur,
            desired=des,
            unfiltered_current=current,
            policy=policy,
            now=now,
            expiring_within=expiring_within,
            earlier=tuple(changes),
            key_clock=key_clock,
            secrets=secrets if secrets is not None else SecretValues(),
        )
        part = kind.diff(context)
        changes += part.changes
        warnings += part.warnings
        expiring += part.expiring_soon
    changes.sort(key=_sort_key)
    return Plan(
        organization=organization,
        changes=tuple(changes),
        warnings=tuple(warnings),
        state_fingerprint=state_fingerprint(current),
        config_digest=config_digest,
        expiring_soon=tuple(expiring),
    )
