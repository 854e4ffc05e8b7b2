"""The registration table: every resource type provisioner manages, in one place.

The order of ``REGISTRY`` is the order the diff walks the types (a type's
diff rules see the changes of the types before it), the reader starts their
listings, and a plan lists them within one phase. Adding a type is one
module under ``provisioner.resources`` and one row here (see
``docs/architecture.md``, "Adding a resource type").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from provisioner.resources import (
    api_key,
    credential,
    google_login_group,
    membership,
    user,
    webhook,
    workspace,
    zoom_oauth_app,
)
from provisioner.resources.base import ResourceKind, ResourceType


class Registry:
    """The registered resource types, in order, by type name.

    Built once, from an explicit tuple; never changed afterwards.
    """

    __slots__ = ("_kinds", "_order")

    def __init__(self, kinds: tuple[ResourceKind, ...]) -> None:
        by_type = {k.type: k for k in kinds}
        if len(by_type) != len(kinds):
            raise ValueError("a resource type is registered twice")
        missing = set(ResourceType) - by_type.keys()
        if missing:
            raise ValueError(f"resource types without a module: {sorted(t.value for t in missing)}")
        self._kinds: Mapping[ResourceType, ResourceKind] = MappingProxyType(by_type)
        self._order: Mapping[ResourceType, int] = MappingProxyType({k.type: i for i, k in enumerate(kinds)})

    def __getitem__(self, type_: ResourceType) -> ResourceKind:
        return self._kinds[type_]

    def __iter__(self) -> Iterator[ResourceKind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)

    def order(self, type_: ResourceType) -> int:
        """The position of ``type_`` in the table (the plan's order within a phase)."""
        return self._order[type_]


REGISTRY = Registry(
    (
        user.KIND,
        workspace.KIND,
        membership.KIND,
        webhook.KIND,
        credential.KIND,
        api_key.KIND,
        zoom_oauth_app.KIND,
        google_login_group.KIND,
    )
)
