"""The workspace: one instance (e.g. ``notetaker-production``), identified by its full name.

* Wire shape: ``GET /workspaces/`` objects (``id``, ``name``, ``etag``);
  ``POST /workspaces/`` creates one. The API cannot rename or delete workspaces.
* Diff: workspaces are only ever created. One that exists but is not declared
  is left alone with a warning, and its memberships are unmanaged (the
  membership rules read the same set difference).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.escape import terminal
from provisioner.model import Workspace
from provisioner.plan.change import Action, Change, PlanWarning
from provisioner.resources.base import (
    ApplyContext,
    DiffContext,
    Diffed,
    Phase,
    Reading,
    ResourceKind,
    ResourceType,
    convert,
    create_or_adopt,
    sorted_items,
)

TYPE = ResourceType.WORKSPACE
WORKSPACES = "/workspaces/"

UNDECLARED = "undeclared-workspace"


# --- wire shape -------------------------------------------------------------------


def workspace_body(workspace: Workspace) -> dict[str, Any]:
    """The body of ``POST /workspaces/``."""
    return {"name": workspace.name}


def parse_workspace(data: dict[str, Any]) -> Workspace:
    """A workspace representation as a ``Workspace``."""
    return convert(
        "workspace",
        WORKSPACES,
        lambda: Workspace(name=str(data["name"]), id=str(data["id"]), etag=data.get("etag")),
    )


def _from_plain(d: Mapping[str, Any]) -> Workspace:
    return Workspace(**{**d, "manages": tuple(d.get("manages") or ())})


def _read(reading: Reading) -> Callable[[], list[Any]]:
    listing = reading.submit(reading.client.list_all, WORKSPACES)
    return lambda: [parse_workspace(w) for w in listing.result()]


# --- diff rules -------------------------------------------------------------------


def undeclared(ctx: DiffContext) -> frozenset[str]:
    """Workspaces the organization has but the configuration does not declare."""
    return frozenset(ctx.current.workspaces.keys() - ctx.desired.workspaces.keys())


def _diff(ctx: DiffContext) -> Diffed:
    current, desired = ctx.current.workspaces, ctx.desired.workspaces
    changes = tuple(
        Change(Action.CREATE, TYPE, name, None, after)
        for name, after in sorted_items(desired, desired.keys() - current.keys())
    )
    names = sorted(undeclared(ctx))
    # One pass over the memberships, and only when there is something to count (100,000 of them).
    held = Counter(ws for ws, _ in ctx.current.memberships) if names else Counter[str]()
    warnings = tuple(PlanWarning(UNDECLARED, TYPE, name, {"memberships": held[name]}) for name in names)
    return Diffed(changes=changes, warnings=warnings)


def _undeclared_text(w: PlanWarning) -> str:
    held = w.params["memberships"]
    return (
        f"workspace {w.key} exists in the organization but is not declared in the "
        f"configuration; the API cannot delete workspaces, so it is left as it is and its "
        f"{held} membership{'s are' if held != 1 else ' is'} not managed. Declare it, or add it "
        f"to policy.ignore.workspaces to silence this warning."
    )


def _phase(change: Change) -> Phase:
    return Phase.CREATE_WORKSPACE


def _replay(objects: dict[ResourceType, dict[Any, Any]], change: Change) -> None:
    assert isinstance(change.after, Workspace)
    objects[TYPE][change.after.name] = change.after


# --- API calls --------------------------------------------------------------------


def _create(c: Change, ctx: ApplyContext) -> str | None:
    wanted = c.after
    assert isinstance(wanted, Workspace)
    _, existed = create_or_adopt(
        ctx, c, WORKSPACES, workspace_body(wanted), parse_workspace, lambda w: w.name
    )
    return "already existed" if existed else None


# --- text -------------------------------------------------------------------------


def create_line(change: Change, _: Counter[str]) -> str:
    """``workspace app-staging``."""
    assert isinstance(change.after, Workspace)
    return f"workspace {terminal(change.key)}"


KIND = ResourceKind(
    type=TYPE,
    model=Workspace,
    field="workspaces",
    heading="Workspaces",
    identity=lambda w: w.name,
    normalized_keys=lambda names: True,
    text_key=lambda w: w.name,
    of=lambda state: state.workspaces,
    ignored=lambda w, ignore: ignore.workspace(w.name),
    read=_read,
    from_plain=_from_plain,
    material=lambda w: {"name": w.name, "environment": w.environment},
    diff=_diff,
    phase=_phase,
    replay=_replay,
    handlers={Action.CREATE: _create},
    lines={Action.CREATE: create_line},
    warning_texts={UNDECLARED: _undeclared_text},
)

__all__ = ["KIND", "WORKSPACES", "parse_workspace", "undeclared", "workspace_body"]
