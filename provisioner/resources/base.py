"""What a resource type is: the interface each module under ``provisioner.resources`` fills in.

A ``ResourceKind`` is a frozen record of plain functions, one per concern:

* identity: ``field`` (the ``State`` mapping it lives in), ``identity`` (the
  key an object is filed under) and ``text_key`` (that key as a change's text);
* wire shape: ``read`` (list it from the API; each module also has its own
  ``parse_*`` and request bodies),
  ``from_plain`` (one object from a plan file), ``material`` (the values
  the plan digest covers: what a change does, not server bookkeeping);
* diff rules: ``diff`` (current vs desired -> changes and warnings),
  ``phase`` (when a change runs), ``ignored`` (``policy.ignore_*``),
  ``replay`` (a change made to an in-memory state);
* apply: ``handlers`` (the API calls per action), ``blocked_by`` (the
  dependency skips), ``settle_cascade`` (a removal the server makes for us);
* text: ``heading`` and ``lines`` (one line per change), ``warning_texts``
  (the sentence of each warning code).

Decisions worth knowing:

* ``ResourceType`` and ``Phase`` live in ``provisioner.plan.change`` (the
  bottom of the package: it imports no resource type) and are re-exported here.
* Types talk to each other only through the contexts below (``DiffContext``,
  ``Reading``, ``ApplyContext``), never by importing each other.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from provisioner.errors import ApiError, ConflictError, NotFoundError, PreconditionFailedError
from provisioner.frozen import frozen
from provisioner.model import Membership, Policy, ReadSecretDigest, SecretRef, State
from provisioner.plan.change import Action, Change, ChangeResult, PlanWarning
from provisioner.plan.change import Phase as Phase  # re-exported: the type modules import it from here
from provisioner.plan.change import ResourceType as ResourceType  # likewise
from provisioner.secrets.refs import (
    READ_ALGORITHM,
    SecretValues,
    read_digest_of,
)

if TYPE_CHECKING:
    from collections import Counter

    from provisioner.api.client import ApiClient

T = TypeVar("T")

RUN_PLAN_AGAIN = "changed on the server since the plan; run plan again"


# Which API a type speaks, and so which key it needs (``ResourceKind.api``):
# the management contract (schemas/openapi.yaml) with the organization's key,
# or Recall.ai's own v2 API (schemas/recall-v2.yaml), where a key reaches one
# workspace, with each workspace instance's own key.
MANAGEMENT = "management"
RECALL_V2 = "recall-v2"
API_FAMILIES = (MANAGEMENT, RECALL_V2)
ORGANIZATION_KEY = "organization"
WORKSPACE_KEY = "workspace"
KEY_OF_FAMILY = {MANAGEMENT: ORGANIZATION_KEY, RECALL_V2: WORKSPACE_KEY}


class Failed(Exception):
    """A change that cannot be applied, with the reason for the report."""


# --- ignore rules -------------------------------------------------------------


def _matches(value: str, globs: Iterable[str]) -> bool:
    # fnmatchcase: os-independent; emails are compared lowercased on both sides.
    return any(fnmatchcase(value, glob) for glob in globs)


@frozen(slots=True)
class IgnoreRules:
    """``policy.ignore_users`` / ``ignore_workspaces``, compiled once per diff.

    User globs are lowercased here, once, not once per object (100,000 memberships).
    """

    users: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()

    @classmethod
    def of(cls, policy: Policy) -> IgnoreRules:
        return cls(
            tuple(g.lower() for g in policy.ignore_users),
            tuple(policy.ignore_workspaces),
            tuple(policy.ignore_webhooks),
            tuple(policy.ignore_credentials),
        )

    @property
    def empty(self) -> bool:
        return not (self.users or self.workspaces or self.webhooks or self.credentials)

    def webhook(self, url: str) -> bool:
        """Whether the webhook globs match ``url``."""
        return bool(self.webhooks) and _matches(url, self.webhooks)

    def credential(self, provider: str) -> bool:
        """Whether the credential globs match ``provider``."""
        return bool(self.credentials) and _matches(provider, self.credentials)

    def user(self, email: str) -> bool:
        """Whether the user globs match ``email`` (case-insensitively)."""
        return bool(self.users) and _matches(email.lower(), self.users)

    def workspace(self, name: str) -> bool:
        """Whether the workspace globs match ``name`` (case-sensitively)."""
        return bool(self.workspaces) and _matches(name, self.workspaces)


# --- diff -----------------------------------------------------------------------


@frozen(slots=True)
class DiffContext:
    """What one type's diff rules see.

    ``current`` and ``desired`` are already without ignored objects;
    ``unfiltered_current`` is the organization as read. ``earlier`` holds the
    changes of the types registered before this one (a membership's removal
    is a cascade when its user's removal is among them). No secret value is
    here: a plan is the same with or without them.
    """

    current: State
    desired: State
    unfiltered_current: State
    policy: Policy
    now: datetime
    expiring_within: timedelta
    earlier: tuple[Change, ...]
    # The server's clock (its ``Date``), which stamped the API keys: their ages
    # are measured on it. None: ``now``.
    key_clock: datetime | None = None
    # The values of the secrets Recall.ai's real API returns (compared by value
    # there, as it reads them back); no management-contract secret is here.
    secrets: SecretValues = field(default_factory=lambda: SecretValues())


@frozen(slots=True)
class Diffed:
    """One type's part of a plan."""

    changes: tuple[Change, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()
    expiring_soon: tuple[Membership, ...] = ()


def all_lowercase(texts: Iterable[str]) -> bool:
    """Whether every text equals its ``str.lower()``.

    One join and one ``lower`` over all of them rather than a comparison per
    text: the same answer (``lower`` maps each character on its own, but for
    Σ, which it always changes), a fraction of the time on 100,000 keys.
    """
    joined = "\n".join(texts)
    return joined == joined.lower()


def sorted_items(mapping: Mapping[Any, T], keys: Iterable[Any]) -> list[tuple[Any, T]]:
    """``(key, mapping[key])`` for ``keys`` in sorted order (the diff's determinism)."""
    return [(k, mapping[k]) for k in sorted(keys)]


# --- reading --------------------------------------------------------------------


class Lister(Protocol):
    """The part of the client a type's ``read`` uses: listings, and which key the run uses.

    ``ApiClient`` is one; ``provisioner.api.snapshot`` answers the same calls
    from a verified snapshot, so every type reads the same way from either.
    """

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def iter_pages(
        self, path: str, params: dict[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]: ...

    def authenticates_with(self, prefix: str) -> bool: ...


class Reading(Protocol):
    """What a type's ``read`` gets from the reader: the client, the pool, the other types."""

    @property
    def client(self) -> Lister: ...

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on the reader's pool; the reader cancels it if the read fails."""
        ...

    def result(self, type_: ResourceType) -> list[Any]:
        """The parsed objects of an earlier-registered type (waits for its listing)."""
        ...

    def workspace_clients(self) -> Mapping[str, ApiClient]:
        """The v2 client of each workspace instance with its own key (``RECALL_V2`` types)."""
        ...


# A type's read: starts its listings, returns the function that finishes them.
Read = Callable[[Reading], Callable[[], list[Any]]]


# --- applying -------------------------------------------------------------------


class ApplyContext(Protocol):
    """What a type's API calls get from the executor while a plan is applied."""

    @property
    def client(self) -> ApiClient: ...

    def idempotency_key(self, change: Change) -> str:
        """The ``Idempotency-Key`` for a create (see ``apply.executor.idempotency_key``)."""
        ...

    def id_of(self, type_: ResourceType, key: str) -> str | None:
        """The server id of an object: from the current state, or learned during this run."""
        ...

    def learn_id(self, type_: ResourceType, key: str, value: str | None) -> None:
        """Remember an id a create (or a 409's listing) revealed; later changes need it."""
        ...

    def not_applied(self, type_: ResourceType, key: str) -> bool:
        """Whether a change to this object was in the plan and did not succeed."""
        ...

    def planned(self, type_: ResourceType, action: Action) -> frozenset[str]:
        """The keys of the plan's changes of this type and action."""
        ...

    def phase_failed(self, phase: Phase) -> bool:
        """Whether any change of ``phase`` did not succeed."""
        ...

    def secret_value(self, ref: SecretRef) -> str:
        """The value of a config secret reference, for a request body (never to show)."""
        ...

    def client_for(self, workspace: str) -> ApiClient:
        """The v2 client of ``workspace`` (its own key), for ``RECALL_V2`` types; Failed if none."""
        ...

    def deliver(self, workspace: str, what: str, slug: str, value: str, name: str | None = None) -> str:
        """Hand a server-made secret to the operator's sink; where it went, or ProvisionerError.

        ``name`` is the secret's name in the sink when the config chose one.
        """
        ...


class _Keyed(Protocol):
    @property
    def key(self) -> Any: ...


class _InWorkspace(Protocol):
    @property
    def workspace(self) -> str: ...


def keyed_replay(type_: ResourceType) -> Callable[[dict[ResourceType, dict[Any, Any]], Change], None]:
    """The replay of a type whose objects carry ``key``.

    A create or an update files ``after``; a delete drops ``before``.
    """

    def replay(objects: dict[ResourceType, dict[Any, Any]], change: Change) -> None:
        if change.after is None:
            objects[type_].pop(cast(_Keyed, change.before).key, None)
        else:
            objects[type_][cast(_Keyed, change.after).key] = change.after

    return replay


def workspace_dependency(change: Change, ctx: ApplyContext) -> str | None:
    """A change to an object of a workspace instance waits for that instance's creation."""
    target = cast(_InWorkspace, change.after if change.after is not None else change.before)
    if ctx.not_applied(ResourceType.WORKSPACE, target.workspace):
        return f"depends on creating workspace {target.workspace}, which did not succeed"
    return None


def workspace_id(ctx: ApplyContext, workspace: str) -> str:
    """The server id of a workspace instance (known, or learnt when this run created it)."""
    found = ctx.id_of(ResourceType.WORKSPACE, workspace)
    if found is None:
        raise Failed(f"the workspace {workspace} is unknown to the API; run plan again")
    return found


Handler = Callable[["Change", ApplyContext], "str | None"]
LineRenderer = Callable[["Change", "Counter[str]"], str]


def delete(client: ApiClient, path: str, etag: str | None) -> str | None:
    """DELETE with ``If-Match``. 404 means already gone; 412 is read again, never overridden."""
    try:
        client.delete(path, if_match=etag)
    except NotFoundError:
        return "already gone"
    except PreconditionFailedError:
        if reread(client, path, lambda body: body) is None:
            return "already gone"
        raise Failed(RUN_PLAN_AGAIN) from None
    return None


def reread(client: ApiClient, path: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    """GET ``path`` after a 412; ``None`` when it is gone."""
    try:
        body, _ = client.get(path)
    except NotFoundError:
        return None
    return parse(body)


def find(
    client: ApiClient, path: str, parse: Callable[[dict[str, Any]], T], match: Callable[[T], bool]
) -> T | None:
    """The first object of a listing that ``match`` accepts (after a 409 on a create)."""
    for page in client.iter_pages(path):
        for item in page:
            obj = parse(item)
            if match(obj):
                return obj
    return None


class _Identified(Protocol):
    @property
    def id(self) -> str | None: ...


Created = TypeVar("Created", bound=_Identified)


def create_or_adopt(
    ctx: ApplyContext,
    change: Change,
    path: str,
    body: dict[str, Any],
    parse: Callable[[dict[str, Any]], Created],
    key: Callable[[Created], str],
) -> tuple[Created, bool]:
    """POST a create with its Idempotency-Key; on 409 adopt the object that already exists.

    Someone (another run, a person) may have made it meanwhile: later changes
    (grants) need its id, so it is found in the listing by ``key`` and its id
    learnt either way. Returns the object and whether it already existed.
    """
    try:
        created = ctx.client.post(path, body, idempotency_key=ctx.idempotency_key(change))
    except ConflictError:
        existing = find(ctx.client, path, parse, lambda obj: key(obj) == change.key)
        if existing is None:
            raise Failed(
                f"the API says the {change.type.value} exists but does not list it; run plan again"
            ) from None
        ctx.learn_id(change.type, change.key, existing.id)
        return existing, True
    made = parse(created)
    ctx.learn_id(change.type, change.key, made.id)
    return made, False


# --- the record -------------------------------------------------------------------


def _no_dependency(change: Change, ctx: ApplyContext) -> str | None:
    return None


@frozen
class ResourceKind:
    """Everything provisioner knows about one resource type (see the module docstring)."""

    type: ResourceType
    model: builtins.type[Any]  # builtins: ``type`` is a field name here
    field: str  # the State field, also the fingerprint's section name
    heading: str  # the text plan's heading over this type's lines
    identity: Callable[[Any], Any]
    # Whether every key of a State mapping is already in identity form (asked of all keys at
    # once: 100,000 membership keys are checked at C speed, see ``all_lowercase``).
    normalized_keys: Callable[[Iterable[Any]], bool]
    text_key: Callable[[Any], str]
    of: Callable[[State], Mapping[Any, Any]]
    ignored: Callable[[Any, IgnoreRules], bool]
    read: Read
    from_plain: Callable[[Mapping[str, Any]], Any]
    material: Callable[[Any], dict[str, Any]]  # what the plan digest covers (plan/digest.py)
    diff: Callable[[DiffContext], Diffed]
    phase: Callable[[Change], Phase]
    replay: Callable[[dict[ResourceType, dict[Any, Any]], Change], None]
    handlers: Mapping[Action, Handler]
    lines: Mapping[Action, LineRenderer]
    warning_texts: Mapping[str, Callable[[PlanWarning], str]]
    blocked_by: Callable[[Change, ApplyContext], str | None] = _no_dependency
    settle_cascade: Callable[[Change, ApplyContext], ChangeResult] | None = None
    # Whether applying a change makes a secret the server shows only once
    # (it must go to the operator's secret sink; see plan.guards).
    makes_secret: Callable[[Change], bool] = lambda change: False
    # For such a change: (destination name, the object whose secret it is, whether
    # the config chose the name), for the plan's "Secrets this apply writes"
    # section (``plan.deliveries``).
    delivery: Callable[[Change], tuple[str, str, bool] | None] = lambda change: None
    # The API the type speaks (MANAGEMENT or RECALL_V2); its key follows (KEY_OF_FAMILY).
    api: str = MANAGEMENT

    @property
    def key_scope(self) -> str:
        """Which key the type needs: the organization's, or each workspace instance's own."""
        return KEY_OF_FAMILY[self.api]


def read_secret_digest(value: str, seed: str) -> ReadSecretDigest:
    """A digest of a secret the API returned in clear; the value itself is dropped.

    The salt comes from ``seed`` (the object's id and the secret's name), so
    two reads of an unchanged secret give the same digest (the state
    fingerprint stays put) and a changed one a different digest. The config's
    value is compared with it in memory (``SecretValues.matches``). Fast on
    purpose (``ReadSecretDigest``): 50 instances' secrets cost no plan seconds.
    """
    salt = hashlib.sha256(f"provisioner-read-secret:{seed}".encode()).hexdigest()[:32]
    return ReadSecretDigest(READ_ALGORITHM, 1, salt, read_digest_of(value, salt))


def convert(what: str, path: str, fn: Callable[[], T]) -> T:
    """Run a conversion of an API object; a missing or mistyped field becomes an ApiError."""
    try:
        return fn()
    except (KeyError, TypeError, AttributeError) as e:
        raise ApiError(
            f"the API answered {path} with an unexpected {what} ({type(e).__name__}: {e}); "
            "check that the API URL points at the v1 API"
        ) from None
