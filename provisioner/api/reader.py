"""Reading an organization: ``GET /me/`` and the listings of every registered type.

``read_identity`` turns ``/me/`` into an ``Identity``; ``read_state`` runs each
registered type's ``read`` (``provisioner.resources``, which also hold the
types' JSON shapes and request bodies) and files the objects into a ``State``.
HTTP itself stays in ``provisioner.api.client``.

A read is all or nothing: if any page of any listing fails, the exception
propagates and no ``State`` is returned, because a partial listing would look
like deletions to the diff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, TypeVar

from provisioner.api.client import ApiClient
from provisioner.errors import NotABaseUrlError, NotFoundError, ProvisionerError
from provisioner.model import DEFAULT_WORKSPACE_LIMIT, Identity, Organization, State, identity_key
from provisioner.resources.base import API_FAMILIES, Lister, ResourceType, convert
from provisioner.resources.registry import REGISTRY

__all__ = ["ME", "parse_identity", "read_identity", "read_me", "read_state", "read_state_and_identity"]

T = TypeVar("T")

ME = "/me/"


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

    return convert("identity", ME, build)


def read_identity(client: ApiClient) -> Identity:
    """Who the API key belongs to, and its organization (``GET /me/``)."""
    return parse_identity(read_me(client))


def read_me(client: ApiClient) -> dict[str, Any]:
    """The body of ``GET /me/``; a 404 there says the base URL is wrong."""
    try:
        body, _ = client.get(ME)
    except NotFoundError:
        raise _not_a_base_url(client) from None
    return body


def read_state(
    client: Lister | None,
    *,
    parallelism: int = 8,
    workspace_clients: Mapping[str, ApiClient] | None = None,
    families: tuple[str, ...] = API_FAMILIES,
) -> State:
    """The organization's current state: every object of every registered type.

    The types' listings start in table order and run concurrently (users and
    workspaces at once, then each workspace's memberships as soon as the
    workspaces are known), at most ``parallelism`` at a time. Raises if
    anything fails; never returns a partial state.

    ``workspace_clients`` are the v2 clients of the instances with their own
    key; only the types of ``families`` are read (an integrations-only run
    reads ``RECALL_V2`` alone, and ``client`` may then be None).
    """
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="read") as pool:
        return _read_state(client, pool, workspace_clients or {}, families)


def read_state_and_identity(
    client: ApiClient, parallelism: int = 8, workspace_clients: Mapping[str, ApiClient] | None = None
) -> tuple[State, Identity]:
    """``read_state`` and ``read_identity`` at once (``/me/`` overlaps the listings)."""
    with ThreadPoolExecutor(max_workers=max(2, parallelism), thread_name_prefix="read") as pool:
        me = pool.submit(read_identity, client)
        try:
            state = _read_state(client, pool, workspace_clients or {}, API_FAMILIES)
        except NotFoundError:
            # A listing answered 404. If /me/ does too, the base URL is wrong,
            # which says more than "it may have been removed meanwhile".
            error = me.exception()
            if isinstance(error, NotABaseUrlError):
                raise error from None
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


class _Reading:
    """The ``Reading`` each type's ``read`` gets: the client, the pool, the other types' results."""

    def __init__(
        self, client: Lister | None, pool: ThreadPoolExecutor, workspace_clients: Mapping[str, ApiClient]
    ) -> None:
        self._client = client
        self._workspace_clients = workspace_clients
        self._pool = pool
        self.pending: list[Future[Any]] = []
        self.finishers: dict[ResourceType, Callable[[], list[Any]]] = {}
        self.results: dict[ResourceType, list[Any]] = {}

    @property
    def client(self) -> Lister:
        if self._client is None:  # only MANAGEMENT types ask, and they are not read then
            raise ProvisionerError(
                "internal error: a management type was read without the organization's key"
            )
        return self._client

    def workspace_clients(self) -> Mapping[str, ApiClient]:
        return self._workspace_clients

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future = self._pool.submit(fn, *args)
        self.pending.append(future)
        return future

    def result(self, type_: ResourceType) -> list[Any]:
        if type_ not in self.results:
            self.results[type_] = self.finishers[type_]()
        return self.results[type_]


def _read_state(
    client: Lister | None,
    pool: ThreadPoolExecutor,
    workspace_clients: Mapping[str, ApiClient],
    families: tuple[str, ...],
) -> State:
    reading = _Reading(client, pool, workspace_clients)
    try:
        for kind in REGISTRY:
            # A type of another API family is not read at all: it has no objects.
            reading.finishers[kind.type] = kind.read(reading) if kind.api in families else list
        objects = {kind.type: reading.result(kind.type) for kind in REGISTRY}
    except BaseException:
        # Don't start listings that no longer matter; running ones finish.
        for f in reading.pending:
            f.cancel()
        raise
    fields: dict[str, Any] = {
        kind.field: MappingProxyType({kind.identity(o): o for o in objects[kind.type]}) for kind in REGISTRY
    }
    return State(**fields)
