"""A fingerprint of a ``State``, and the canonical plain form of its objects.

The fingerprint lets ``apply`` of a saved plan notice that the organization
changed since the plan was made: any difference on the server (an id, an
ETag, a status, a role) alters it. The plain form (``to_plain``) is shared by
the JSON renderer and plan files so there is one way to turn a resource into
JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from typing import Any

from provisioner.model import State


def _plain_value(value: Any) -> Any:
    # Datetimes are the only non-JSON field type in the model; ISO-8601 keeps
    # the offset, so ``datetime.fromisoformat`` restores an equal value.
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_plain(obj: Any) -> dict[str, Any]:
    """A resource (``User``, ``Workspace``, ``Membership``) as a plain dict of all its fields."""
    return {f.name: _plain_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_fingerprint(state: State) -> str:
    """sha256 (hex) over a canonical JSON of the whole state, ids, ETags and statuses included."""
    document = {
        "users": [to_plain(state.users[k]) for k in sorted(state.users)],
        "workspaces": [to_plain(state.workspaces[k]) for k in sorted(state.workspaces)],
        "memberships": [to_plain(state.memberships[k]) for k in sorted(state.memberships)],
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
