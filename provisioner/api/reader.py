"""The API's JSON shapes: the ONLY module that knows them.

It turns responses into the domain model (``read_identity``, ``read_state``)
and, for the applier, names the endpoints and builds the request bodies
(``users_path``, ``invite_body``, ...), so that ``provisioner.apply`` never
spells a JSON field. HTTP itself stays in ``provisioner.api.client``.

A read is all or nothing: if any page of any listing fails, the exception
propagates and no ``State`` is returned, because a partial listing would look
like deletions to the diff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from provisioner.api.client import ApiClient
from provisioner.errors import ApiError, NotABaseUrlError, NotFoundError
from provisioner.model import (
    DEFAULT_WORKSPACE_LIMIT,
    Identity,
    Membership,
    Organization,
    State,
    User,
    Workspace,
    identity_key,
)

log = logging.getLogger("provisioner.api")

T = TypeVar("T")

ME = "/me/"
USERS = "/users/"
WORKSPACES = "/workspaces/"
MEMBERSHIPS = "/workspace_memberships/"


# --- endpoints and request bodies (used by the applier) ----------------------


def user_path(user_id: str) -> str:
    """The path of one user."""
    return f"{USERS}{user_id}/"


def workspace_path(workspace_id: str) -> str:
    """The path of one workspace."""
    return f"{WORKSPACES}{workspace_id}/"


def membership_path(membership_id: str) -> str:
    """The path of one workspace membership."""
    return f"{MEMBERSHIPS}{membership_id}/"


def invite_body(user: User) -> dict[str, Any]:
    """The body of ``POST /users/``."""
    return {"email": user.email, "role": user.role}


def role_body(role: str) -> dict[str, Any]:
    """The body of ``PATCH /users/{id}/``."""
    return {"role": role}


def workspace_body(workspace: Workspace) -> dict[str, Any]:
    """The body of ``POST /workspaces/``."""
    return {"name": workspace.name}


def membership_body(workspace_id: str, user_id: str) -> dict[str, Any]:
    """The body of ``POST /workspace_memberships/``."""
    return {"workspace_id": workspace_id, "user_id": user_id}


# --- representations -> model -------------------------------------------------


def _shape(what: str, path: str, fn: Callable[[], T]) -> T:
    """Run a conversion; a missing or mistyped field becomes an ApiError."""
    try:
        return fn()
    except (KeyError, TypeError, AttributeError) as e:
        raise ApiError(
            f"the API answered {path} with an unexpected {what} ({type(e).__name__}: {e}); "
            "check that the API URL points at the v1 API"
        ) from None


def parse_user(data: dict[str, Any]) -> User:
    """A user representation as a ``User`` (email lowercased)."""
    return _shape(
        "user",
        USERS,
        lambda: User(
            email=identity_key(str(data["email"])),
            role=str(data["role"]),
            status=str(data.get("status") or "active"),
            id=str(data["id"]),
            etag=data.get("etag"),
        ),
    )


def parse_workspace(data: dict[str, Any]) -> Workspace:
    """A workspace representation as a ``Workspace``."""
    return _shape(
        "workspace",
        WORKSPACES,
        lambda: Workspace(name=str(data["name"]), id=str(data["id"]), etag=data.get("etag")),
    )


def _membership_ids(data: dict[str, Any]) -> tuple[str, str, str, str | None]:
    return _shape(
        "membership",
        MEMBERSHIPS,
        lambda: (str(data["id"]), str(data["workspace_id"]), str(data["user_id"]), data.get("etag")),
    )


def parse_identity(data: dict[str, Any]) -> Identity:
    """A ``GET /me/`` body as an ``Identity``."""

    def build() -> Identity:
        org = data["organization"]
        limits = org.get("limits") or {}
        return Identity(
            user_id=str(data["id"]),
            email=identity_key(str(data["email"])),
            role=str(data["role"]),
            organization=Organization(
                id=str(org["id"]),
                name=str(org["name"]),
                region=str(org["region"]),
                workspace_limit=int(limits.get("workspaces", DEFAULT_WORKSPACE_LIMIT)),
            ),
        )

    return _shape("identity", ME, build)


# --- reads ----------------------------------------------------------------------


def read_identity(client: ApiClient) -> Identity:
    """Who the API key belongs to, and its organization (``GET /me/``)."""
    try:
        body, _ = client.get(ME)
    except NotFoundError:
        raise _not_a_base_url(client) from None
    return parse_identity(body)


def read_state(client: ApiClient, *, parallelism: int = 8) -> State:
    """The organization's current state: every user, workspace and membership.

    Users and workspaces are listed concurrently, then the memberships of each
    workspace (``?workspace_id=``), at most ``parallelism`` listings at a time.
    Raises if anything fails; never returns a partial state.
    """
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="read") as pool:
        return _read_state(client, pool)


def read_state_and_identity(client: ApiClient, parallelism: int = 8) -> tuple[State, Identity]:
    """``read_state`` and ``read_identity`` at once (``/me/`` overlaps the listings)."""
    with ThreadPoolExecutor(max_workers=max(2, parallelism), thread_name_prefix="read") as pool:
        me = pool.submit(read_identity, client)
        try:
            state = _read_state(client, pool)
        except NotFoundError:
            # A listing answered 404. If /me/ does too, the base URL is wrong,
            # which says more than "it may have been removed meanwhile".
            if isinstance(me.exception(), NotABaseUrlError):
                raise me.exception() from None
            raise
        except BaseException:
            me.cancel()
            raise
        return state, me.result()


def _not_a_base_url(client: ApiClient) -> NotABaseUrlError:
    return NotABaseUrlError(
        f"{client.endpoint} is not an API base URL: GET {ME} answered 404. Did you forget "
        "/api/v1? A regional base URL looks like https://us-east-1.recall.ai/api/v1",
        status=404,
    )


def _list_membership_ids(client: ApiClient, workspace_id: str) -> list[tuple[str, str, str, str | None]]:
    """One workspace's memberships as (id, workspace id, user id, etag), page by page.

    Each page is reduced as it arrives, so that the 100,000 response dicts of
    a large organization are never all alive at once (peak memory).
    """
    ids: list[tuple[str, str, str, str | None]] = []
    for page in client.iter_pages(MEMBERSHIPS, {"workspace_id": workspace_id}):
        ids.extend(_membership_ids(raw) for raw in page)
    return ids


def _read_state(client: ApiClient, pool: ThreadPoolExecutor) -> State:
    users_f = pool.submit(client.list_all, USERS)
    workspaces_f = pool.submit(client.list_all, WORKSPACES)
    pending: list[Future] = [users_f, workspaces_f]
    try:
        workspaces = [parse_workspace(w) for w in workspaces_f.result()]
        member_fs = [pool.submit(_list_membership_ids, client, w.id) for w in workspaces]
        pending += member_fs
        users = [parse_user(u) for u in users_f.result()]
        membership_ids = [ids for f in member_fs for ids in f.result()]
    except BaseException:
        # Don't start listings that no longer matter; running ones finish.
        for f in pending:
            f.cancel()
        raise

    email_by_id = {u.id: u.email for u in users}
    name_by_id = {w.id: w.name for w in workspaces}
    memberships: list[Membership] = []
    for mid, workspace_id, user_id, etag in membership_ids:
        email, name = email_by_id.get(user_id), name_by_id.get(workspace_id)
        if email is None or name is None:
            # A user or workspace created or removed while we were listing.
            log.warning(
                "skipping membership %s: its %s %s is not in the listing (changed while reading?)",
                mid,
                "user" if email is None else "workspace",
                user_id if email is None else workspace_id,
            )
            continue
        memberships.append(Membership(workspace=name, user=email, id=mid, etag=etag))
    return State.build(users, workspaces, memberships)
