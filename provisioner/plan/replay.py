"""Replay a plan's changes onto a state, in memory.

Used to know what an apply left behind (for the audit record that ``drift``
reads) without reading the organization again. Pure; each type's module says
what one of its changes does (``ResourceKind.replay``).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from provisioner.model import State
from provisioner.plan.model import Change
from provisioner.resources.base import ResourceType
from provisioner.resources.registry import REGISTRY


def replay(state: State, changes: Iterable[Change]) -> State:
    """The state after ``changes`` (in the order given) were made to ``state``."""
    objects: dict[ResourceType, dict[Any, Any]] = {kind.type: dict(kind.of(state)) for kind in REGISTRY}
    for change in changes:
        REGISTRY[change.type].replay(objects, change)
    fields: dict[str, Any] = {
        kind.field: MappingProxyType({kind.identity(o): o for o in objects[kind.type].values()})
        for kind in REGISTRY
    }
    return State(**fields)
