"""The plain (JSON) form of model values, and canonical JSON text.

One way to turn a resource into JSON (``to_plain``), shared by the JSON
renderer and plan files, and one canonical text of a JSON value
(``canonical_json``), which the plan digest hashes.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

__all__ = ["canonical_json", "plain_value", "to_plain"]


def plain_value(value: Any) -> Any:
    """A field value as JSON can hold it.

    Datetimes become ISO-8601 text (which keeps the offset, so
    ``datetime.fromisoformat`` restores an equal value); tuples become lists
    and small value objects (``SecretRef``) dicts: each type's ``from_plain``
    turns them back.
    """
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):  # events, fields, secret references: lists in JSON
        return [plain_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # SecretRef, SecretDigest
        return to_plain(value)
    raise TypeError(f"no plain form for {type(value).__name__}")


def to_plain(obj: Any) -> dict[str, Any]:
    """A resource (``User``, ``Workspace``, ``Membership``, ...) as a plain dict of all its fields."""
    return {f.name: plain_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
