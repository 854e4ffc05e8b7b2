"""Saved plans (``provisioner plan --out FILE``, ``apply --plan FILE``, ``show FILE``).

A plan file is the JSON plan document (``schemas/plan.schema.json``) with the
plan's digest, the organization it is for (id, name and region, from the
API), the workspace environments (so ``show`` can mark production) and
``created_at``. It is written atomically with mode 0600 and holds no key.

What protects a saved plan, and against whom:

* Nothing secret. An earlier design signed the file with an HMAC keyed by the
  API key, or, on a sandbox, by a key derived from the database path; anyone
  who could read the path could re-sign an edited file, and a plan made with
  a developer's key could not be applied with an admin's. There is no
  signature now, and none is needed, because of what follows.
* ``apply --plan FILE`` never executes the file. It reads the organization
  fresh with the applying key, makes a fresh plan, and refuses unless (1) the
  organization's id from the API equals the file's, (2) the state the file
  was made from (its fingerprint) equals the state read now, and (3) the fresh
  plan's digest equals the digest of the file's changes. It then applies the
  fresh plan. So an edited file (another change, another id, another
  organization, a forged digest) can only make apply refuse; it cannot make
  apply do anything that a fresh, unedited plan would not show. A file's
  ``digest`` field that disagrees with its own changes is refused outright.
* The file is therefore not a secret and not a credential: any admin key of
  the same organization applies it, whichever key (a developer's, another
  admin's) made it. What the file pins is the reviewer's approval: a person
  (or ``apply --expect``) compares its digest with the reviewed one.
* ``created_at`` and the tool version are checked as hygiene (refuse stale or
  foreign files with a clear message), not as protection: anyone who can edit
  the file can edit them, and the fresh comparison above does not rely on them.
* Not protected: someone who can change the config or the organization AND
  the expectation given to apply (the reviewed digest) can apply what they
  like; that is the review process's job (branch protection, a protected CI
  environment), see docs/ci.md.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.frozen import frozen
from provisioner.plan.digest import (
    DigestError,
    Expectation,
    PlanTarget,
    find_digest,
    parse_digest,
    pin_fields,
)
from provisioner.plan.model import Plan
from provisioner.plan.serialize import plan_from_dict, plan_to_dict, validate_plan_document

FILE_MODE = 0o600


class PlanFileError(ProvisionerError):
    """A plan file could not be written."""


_REPLAN = "run `provisioner plan --out {path}` again"


@frozen
class SavedPlan:
    """A plan read back from a file, with what it was made for.

    ``digest`` is recomputed from the file's changes and target (and equals
    the file's own ``digest`` field, else the file is refused).
    """

    plan: Plan
    target: PlanTarget
    digest: str
    created_at: datetime
    environments: Mapping[str, str | None] = field(default_factory=dict)


def plan_document(
    plan: Plan,
    target: PlanTarget,
    *,
    tool_version: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The plan document with its digest and target: what ``--format json`` prints and files hold."""
    return plan_to_dict(plan, tool_version=tool_version, extra={**pin_fields(plan, target), **(extra or {})})


def save_plan(
    plan: Plan,
    path: str | os.PathLike[str],
    *,
    target: PlanTarget,
    tool_version: str,
    created_at: datetime,
    environments: Mapping[str, str | None] | None = None,
) -> str:
    """Write ``plan`` to ``path`` atomically (temp file + rename), mode 0600; return its digest.

    ``created_at`` must be timezone-aware. ``environments`` maps workspace
    instance names to environments, for ``show``.
    """
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    content = plan_document(
        plan,
        target,
        tool_version=tool_version,
        extra={"created_at": created_at.isoformat(), "environments": dict(environments or {})},
    )
    validate_plan_document(content)
    text = json.dumps(content, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    target_path = Path(path)
    # The temp file lives next to the target so os.replace is a rename on one
    # filesystem; mkstemp creates it 0600 already, chmod makes that explicit.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target_path.name}.", suffix=".tmp", dir=target_path.parent)
    except OSError as error:
        raise PlanFileError(
            f"cannot write the plan file {target_path}: {error.strerror}; check that its folder "
            "exists and is writable"
        ) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target_path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise PlanFileError(f"cannot write the plan file {target_path}: {error.strerror}") from None
        raise
    return str(content["digest"])


def _format_age(age: timedelta) -> str:
    """``2d 3h 4m``; under an hour exact to the second (``--max-age 1s`` is a real limit)."""
    total = max(int(age.total_seconds()), 0)
    minutes, seconds = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds if total < 3600 else 0, "s"))
    return " ".join(f"{n}{unit}" for n, unit in units if n) or "0s"


def read_plan_document(
    content: Any, *, source: str, replan: str, require: tuple[str, ...] = ()
) -> tuple[Plan, PlanTarget, str]:
    """A plan document (from a file or ``--format json``) checked and turned back into a plan.

    Returns the plan, its target and its digest, recomputed from the
    document's changes. Raises ``StalePlanError`` when the document is not a
    valid plan document, lacks a field of ``require``, or its ``digest`` field
    disagrees with its content (it was edited).
    """
    needed = ("digest", "organization_id", "region", *require)
    if not isinstance(content, dict) or any(name not in content for name in needed):
        raise StalePlanError(
            f"{source} is not a plan saved or printed by this provisioner (no digest or "
            f"organization id); {replan}"
        )
    # Imported here: only reading a plan document needs jsonschema, and a plan
    # or apply without --plan should not pay for importing it (benchmarks/startup.py).
    import jsonschema

    try:
        validate_plan_document(content)
        plan = plan_from_dict(content)
    except (jsonschema.ValidationError, ValueError, TypeError) as exc:
        reason = exc.message if isinstance(exc, jsonschema.ValidationError) else str(exc)
        raise StalePlanError(f"{source} is not a valid plan file: {reason[:200]}; {replan}") from None
    target = PlanTarget(content["organization_id"], content["organization"], content["region"])
    digest = pin_fields(plan, target)["digest"]
    if digest != content["digest"]:
        raise StalePlanError(
            f"{source} was modified after it was made: its changes give the digest {digest}, "
            f"but it says {content['digest']}; {replan}"
        )
    return plan, target, digest


def _not_a_plan_file(path: str | os.PathLike[str]) -> str:
    """The message for a file that is not JSON at all, such as a plan printed as markdown."""
    return (
        f"{path} is not a plan file: a plan file is the JSON file that "
        "`provisioner plan -c CONFIG --out PLANFILE` saves (the text or markdown that `plan` prints "
        "is not one); save a plan that way, then `provisioner show PLANFILE`"
    )


def load_plan(
    path: str | os.PathLike[str],
    *,
    tool_version: str,
    now: datetime,
    max_age: timedelta | None,
) -> SavedPlan:
    """Read, check and reconstruct a plan saved by ``save_plan``.

    Raises ``StalePlanError`` when the file is unreadable or not a plan file,
    was made by another tool version, its digest field disagrees with its
    changes, or it is older than ``max_age`` (``None``: any age, for ``show``).
    Whether the plan may be applied is decided against a fresh plan (see the
    module docstring), not here.
    """
    replan = _REPLAN.format(path=path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StalePlanError(f"cannot read plan file {path}: {exc.strerror or exc}; {replan}") from None
    except UnicodeDecodeError:
        raise StalePlanError(_not_a_plan_file(path)) from None
    try:
        content = json.loads(text)
    except ValueError:
        # A plan's text or markdown output, or any other file: say what a plan file is.
        raise StalePlanError(_not_a_plan_file(path)) from None
    if not isinstance(content, dict) or "created_at" not in content:
        raise StalePlanError(
            f"{path} is not a saved provisioner plan (no creation time); "
            f"save one with `provisioner plan --out {path}`"
        )
    made_by = content.get("tool_version")
    if made_by != tool_version:
        raise StalePlanError(
            f"plan file {path} was made by provisioner {str(made_by)[:40]}, this is provisioner "
            f"{tool_version}; {replan} with this version"
        )
    plan, target, digest = read_plan_document(
        content, source=f"plan file {path}", replan=replan, require=("created_at",)
    )
    try:
        created_at = datetime.fromisoformat(content["created_at"])
    except ValueError:
        raise StalePlanError(f"{path} has an unreadable creation time; {replan}") from None
    if created_at.tzinfo is None:
        raise StalePlanError(f"{path} has a creation time without a timezone; {replan}")
    if max_age is not None:
        age = now - created_at
        if age > max_age:
            raise StalePlanError(
                f"plan file {path} is {_format_age(age)} old, older than the limit of "
                f"{_format_age(max_age)}; {replan}"
            )
    return SavedPlan(plan, target, digest, created_at, dict(content.get("environments") or {}))


# A change line of the text plan, as the markdown comment's full plan repeats it.
_CHANGE_LINE = re.compile(r"^  [+~-] .+$", re.MULTILINE)


def read_expectation(path: str | os.PathLike[str]) -> Expectation:
    """The reviewed plan's digest from ``path`` (``apply --expect-file``).

    The file may hold the digest alone; a text plan or a saved plan comment
    (markdown), whose last ``Plan digest:`` line counts; or a JSON plan
    (``plan --format json``, or a saved plan file), which also brings the
    reviewed changes so that a refusal can show the difference change by
    change. A JSON plan's digest is recomputed from its changes.
    """
    source = f"--expect-file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"{source}: cannot read it: {exc}") from None
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            content = json.loads(stripped)
        except ValueError as exc:
            raise DigestError(f"{source}: looks like JSON but is not: {exc}") from None
        if isinstance(content, list):
            raise DigestError(
                f"{source} holds the plans of several organizations; --expect-file takes one: "
                "plan each organization with its own -c"
            )
        plan, target, digest = read_plan_document(
            content, source=source, replan="give the JSON of `provisioner plan --format json` unedited"
        )
        return Expectation(digest, source, reviewed=plan, target=target)
    if stripped and len(stripped.split()) == 1:
        return Expectation(parse_digest(stripped, source=source), source)
    found = find_digest(text)
    if found is None:
        raise DigestError(
            f"{source} holds no `Plan digest: sha256:…` line; give the digest, the plan comment "
            "or the JSON plan that was reviewed"
        )
    # The change lines of a text plan or a plan comment's full-plan block.
    changes = tuple(_CHANGE_LINE.findall(text))
    shortened = "truncated:" in text or "shortened to stay under the size limit" in text
    return Expectation(found, source, reviewed_lines=changes, lines_complete=not shortened)
