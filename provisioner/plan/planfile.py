"""Saved plans (``provisioner plan --out FILE``, ``provisioner apply --plan FILE``).

A plan file is the JSON plan document plus ``created_at`` and ``hmac``: an
HMAC-SHA256 over the canonical content, keyed by the signing key the caller
passes (the API key). The key itself is never written. A file that was
modified, or saved with another key (hence for another organization), fails
the HMAC check. ``load_plan`` also refuses other tool versions and files older
than ``max_age``. Checking the state fingerprint against a fresh read of the
organization is the caller's job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema

from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.plan.fingerprint import canonical_json
from provisioner.plan.model import Plan
from provisioner.plan.render_json import plan_from_dict, plan_to_dict, validate_plan_document

FILE_MODE = 0o600


class PlanFileError(ProvisionerError):
    """A plan file could not be written."""
_REPLAN = "run `provisioner plan --out {path}` again"


def _signature(content: dict[str, Any], signing_key: str) -> str:
    # The signature covers everything but itself, in canonical form, so that
    # key order or whitespace in the file do not matter but any value does.
    unsigned = {k: v for k, v in content.items() if k != "hmac"}
    return hmac.new(
        signing_key.encode("utf-8"), canonical_json(unsigned).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def save_plan(
    plan: Plan,
    path: str | os.PathLike[str],
    *,
    signing_key: str,
    tool_version: str,
    created_at: datetime,
) -> None:
    """Write ``plan`` to ``path`` atomically (temp file + rename), mode 0600, signed with ``signing_key``.

    ``created_at`` must be timezone-aware. ``signing_key`` is never written.
    """
    if not signing_key:
        raise ValueError("save_plan needs a non-empty signing key")
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    content = plan_to_dict(plan, tool_version=tool_version)
    content["created_at"] = created_at.isoformat()
    content["hmac"] = _signature(content, signing_key)
    validate_plan_document(content)
    text = json.dumps(content, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    target = Path(path)
    # The temp file lives next to the target so os.replace is a rename on one
    # filesystem; mkstemp creates it 0600 already, chmod makes that explicit.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise PlanFileError(
            f"cannot write the plan file {target}: {error.strerror}; check that its folder "
            "exists and is writable"
        ) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise PlanFileError(f"cannot write the plan file {target}: {error.strerror}") from None
        raise


def _format_age(age: timedelta) -> str:
    """``2d 3h 4m``; under an hour exact to the second (``--max-age 1s`` is a real limit)."""
    total = max(int(age.total_seconds()), 0)
    minutes, seconds = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds if total < 3600 else 0, "s"))
    return " ".join(f"{n}{unit}" for n, unit in units if n) or "0s"


def load_plan(
    path: str | os.PathLike[str],
    *,
    signing_key: str,
    tool_version: str,
    now: datetime,
    max_age: timedelta,
) -> Plan:
    """Read, verify and reconstruct a plan saved by ``save_plan``.

    Raises ``StalePlanError`` when the file is unreadable or not a plan file,
    was made by another tool version, was modified or signed with another key,
    or is older than ``max_age``.
    """
    replan = _REPLAN.format(path=path)
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StalePlanError(
            f"cannot read plan file {path}: {exc}; {replan}"
        ) from exc
    if not isinstance(content, dict) or "hmac" not in content or "created_at" not in content:
        raise StalePlanError(
            f"{path} is not a saved provisioner plan (no signature or creation time); "
            f"save one with `provisioner plan --out {path}`"
        )

    made_by = content.get("tool_version")
    if made_by != tool_version:
        raise StalePlanError(
            f"plan file {path} was made by provisioner {made_by}, this is provisioner "
            f"{tool_version}; {replan} with this version"
        )

    expected = _signature(content, signing_key)
    if not isinstance(content["hmac"], str) or not hmac.compare_digest(expected, content["hmac"]):
        raise StalePlanError(
            f"plan file {path} does not match its signature: it was modified after it was saved, "
            f"or it was saved with a different API key (another organization); {replan} "
            f"with the key you apply with"
        )

    try:
        validate_plan_document(content)
        created_at = datetime.fromisoformat(content["created_at"])
    except (jsonschema.ValidationError, ValueError) as exc:
        raise StalePlanError(f"{path} is not a valid plan file: {exc}; {replan}") from exc
    if created_at.tzinfo is None:
        raise StalePlanError(f"{path} has a creation time without a timezone; {replan}")
    age = now - created_at
    if age > max_age:
        raise StalePlanError(
            f"plan file {path} is {_format_age(age)} old, older than the limit of "
            f"{_format_age(max_age)}; {replan}"
        )
    return plan_from_dict(content)
