"""The domain model: frozen dataclasses keyed by identity.

Both sides of a reconciliation are a ``State``:

* ``desired`` comes from the YAML config (``provisioner.config``);
* ``current`` comes from the regional API (``provisioner.api.reader``, through
  each resource type's module in ``provisioner.resources``).

Identity is what the diff keys on:

* a user by lowercased email;
* a workspace by name;
* a membership by ``(workspace name, user email)``;
* a webhook endpoint by ``(workspace name, url)``;
* a credential by ``(workspace name, provider)``.

Server ids and ETags are carried on the ``current`` side only (``None`` on the
desired side). They never take part in identity or in the diff; the applier
uses ``id`` to address an object and ``etag`` for ``If-Match``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from provisioner.frozen import frozen, is_frozen

_K = TypeVar("_K")
_V = TypeVar("_V")


def identity_key(email: str) -> str:
    """The one form in which identities (emails) are compared: NFC, casefolded.

    The config and the API's answers both go through it, so a user is the same
    key on both sides of the diff.
    """
    if email.isascii():
        return email.lower()
    return unicodedata.normalize("NFC", email).casefold()


ADMIN = "admin"
DEVELOPER = "developer"
ROLES: tuple[str, ...] = (ADMIN, DEVELOPER)

PRODUCTION_ENVIRONMENTS = frozenset({"production", "prod"})


def is_production_environment(environment: str | None) -> bool:
    """Whether an instance of this environment holds production data."""
    return (environment or "").lower() in PRODUCTION_ENVIRONMENTS


ACTIVE = "active"
INVITED = "invited"

# How a workspace with ``environments`` names its instances, unless the config says otherwise.
DEFAULT_NAME_FORMAT = "{workspace}-{environment}"

REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1")
DEFAULT_TOKEN_ENV = "RECALL_API_KEY"
DEFAULT_WORKSPACE_LIMIT = 50


def region_base_url(region: str) -> str:
    """The base URL of a region's API, e.g. ``https://us-east-1.recall.ai/api/v1``."""
    return f"https://{region}.recall.ai/api/v1"


@frozen(slots=True)
class User:
    """A user of the organization. ``email`` is lowercased and is the identity."""

    email: str
    role: str  # ADMIN or DEVELOPER
    status: str = ACTIVE  # ACTIVE or INVITED; INVITED users are pending, not absent
    id: str | None = None
    etag: str | None = None
    # Desired side only: declared ``service_account: true`` (for policy.api_keys.production_owners).
    service_account: bool = False


@frozen(slots=True)
class Workspace:
    """A workspace instance, identified by its full name (e.g. ``notetaker-production``).

    ``environment`` is known on the desired side for instances expanded from a
    workspace with ``environments`` (and for exported ones); renderers use it to
    put production first. It never takes part in identity or in the diff.
    """

    name: str
    id: str | None = None
    environment: str | None = None
    etag: str | None = None
    # Desired side only: the settings sections the config manages here
    # ("webhooks", "transcription", "platforms"). Objects of a section not
    # named are left alone; in a named one, objects not declared are removed.
    manages: tuple[str, ...] = ()


@frozen(slots=True)
class Membership:
    """Access of one user to one workspace instance.

    ``expires`` (timezone-aware, UTC) and ``reason`` only exist on the desired
    side. After ``expires`` the grant counts as absent.
    """

    workspace: str  # workspace name
    user: str  # lowercased email
    id: str | None = None
    expires: datetime | None = None
    reason: str | None = None
    etag: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The identity: ``(workspace name, user email)``."""
        return (self.workspace, self.user)


@frozen(slots=True)
class Provider:
    """A credential provider: which readable fields and which write-only secrets it has."""

    name: str
    kind: str  # TRANSCRIPTION or PLATFORM
    fields: tuple[str, ...] = ()  # readable, required
    optional_fields: tuple[str, ...] = ()  # readable, may be left out
    secrets: tuple[str, ...] = ("api_key",)  # write-only, required


TRANSCRIPTION = "transcription"
PLATFORM = "platform"

# The management contract's providers: what ``/credentials/`` holds
# (schemas/openapi.yaml, ``CredentialProvider``; a test checks they agree).
# Transcription keys and calendar OAuth clients are here because Recall.ai
# publishes no API for them. Zoom is not: Recall.ai's real v2 API holds the
# Zoom OAuth app (``/api/v2/zoom-oauth-apps/``, ``ZoomApp``), and where the
# real API has the data the contract has no second path to it (issue 22).
PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        p.name: p
        for p in (
            Provider("assembly_ai", TRANSCRIPTION),
            Provider("deepgram", TRANSCRIPTION),
            Provider("rev", TRANSCRIPTION),
            Provider("speechmatics", TRANSCRIPTION, optional_fields=("region",)),
            Provider(
                "aws_transcribe", TRANSCRIPTION, ("region", "access_key_id"), (), ("secret_access_key",)
            ),
            Provider("gladia", TRANSCRIPTION),
            Provider("elevenlabs", TRANSCRIPTION),
            Provider("google_calendar", PLATFORM, ("client_id",), (), ("client_secret",)),
            Provider("microsoft_calendar", PLATFORM, ("client_id",), (), ("client_secret",)),
        )
    }
)

ZOOM = "zoom"

# What a config's ``transcription`` and ``platforms`` sections take: the
# contract's providers and ``platforms.zoom``, which is read like them but
# becomes Recall.ai's real Zoom app (``ZoomApp``), never a credential. The
# config schema lists the same (a test checks they agree).
CONFIG_PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {**PROVIDERS, ZOOM: Provider(ZOOM, PLATFORM, ("client_id",), (), ("client_secret", "webhook_secret"))}
)

# The webhook event types the contract knows (schemas/openapi.yaml, "Webhook endpoints").
WEBHOOK_EVENTS: tuple[str, ...] = (
    "bot.status_change",
    "bot.done",
    "bot.fatal",
    "recording.done",
    "recording.failed",
    "transcript.done",
    "transcript.failed",
    "participant_events.join",
    "participant_events.leave",
    "calendar.update",
    "calendar.sync_events",
)


@frozen(slots=True)
class SecretRef:
    """Where a write-only secret's value comes from: an environment variable or a file.

    Only the reference is ever part of a state, a plan or a plan file; the
    value is read at plan time (``provisioner.secrets.refs``) and held apart.
    ``name`` is the variable's name, or the file's path relative to the
    config's directory, after templates were filled in.
    """

    source: str  # "env" or "file"
    name: str
    # The config's ``version`` of the value (Terraform's ``*_wo_version``):
    # raising it sends the value again; a plan compares it, never the value.
    version: int = 1

    def __str__(self) -> str:
        return f"{self.source} {self.name}" + (f" (version {self.version})" if self.version != 1 else "")

    @property
    def label(self) -> str:
        """What the server records of where the value came from: ``env NAME v1`` (never the value)."""
        return f"{self.source} {self.name} v{self.version}"


@frozen(slots=True)
class SecretUse:
    """One place a config uses a secret reference: for messages and guards.

    ``where`` is ``file:line:column`` of the reference in the config.
    """

    ref: SecretRef
    workspace: str  # the workspace instance
    environment: str | None
    what: str  # e.g. "credential deepgram api_key"
    where: str = ""


@frozen(slots=True)
class SecretDigest:
    """What the API says about a write-only secret instead of its value.

    ``digest`` is PBKDF2-HMAC-SHA256 of the value under ``salt`` (hex) and
    ``iterations``; a local value is compared by computing the same.
    """

    algorithm: str
    iterations: int
    salt: str
    digest: str


@frozen(slots=True)
class ReadSecretDigest(SecretDigest):
    """A digest provisioner made, in memory, of a secret Recall.ai's v2 API returned in clear.

    Salted SHA-256 (``algorithm`` ``sha256-read``): fast, since it never leaves
    the process as it is. The API hands the value to every holder of the
    workspace's key anyway; what must not be cheap is guessing it from what a
    plan publishes, so the state fingerprint covers these digests only through
    one slow PBKDF2 (``plan.fingerprint``). Only the reader makes one: a
    server's ``SecretDigest`` is never taken for it (``secrets.refs.SecretValues.matches``).
    """


@frozen(slots=True)
class Webhook:
    """A webhook endpoint of one workspace instance, identified by its URL there.

    The signing secret is made by the server and never read back: it is not
    part of the state (it is delivered to a sink when the endpoint is made).
    """

    workspace: str
    url: str
    events: tuple[str, ...]  # sorted, unique
    enabled: bool = True
    id: str | None = None
    etag: str | None = None
    # Where the signing secret is delivered (desired) or was (current, the
    # server's ``delivered_to``; None when unknown).
    sink_name: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The identity: ``(workspace name, url)``."""
        return (self.workspace, self.url)


@frozen(slots=True)
class Credential:
    """A provider's credential in one workspace instance (one per provider).

    ``fields`` are the readable values, sorted by name. On the desired side
    ``secrets`` maps each secret to its ``SecretRef`` and ``write`` names the
    secrets an apply sends (all of them on create; the changed ones on an
    update). On the current side ``digests`` maps each secret to its
    ``SecretDigest`` (an admin's key only) and ``sources`` to the label the
    server recorded when it was written (``SecretRef.label``; None when
    written without one, by hand or by another tool).
    """

    workspace: str
    provider: str
    fields: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, SecretRef], ...] = ()
    digests: tuple[tuple[str, SecretDigest], ...] = ()
    sources: tuple[tuple[str, str | None], ...] = ()
    write: tuple[str, ...] = ()
    id: str | None = None
    etag: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The identity: ``(workspace name, provider)``."""
        return (self.workspace, self.provider)


@frozen(slots=True)
class ApiKey:
    """An API key: it belongs to a user (``owner``) and is scoped to a workspace instance.

    On the current side each key is itself (``id``, ``prefix``, times,
    ``disabled``); names need not be unique (a rotation makes a second key of
    the same name before the first is disabled). On the desired side a key is
    what the config declares: ``workspace``, ``name``, ``owner``, and how often
    to rotate it and under which name its secret is delivered. ``note`` is
    set on the objects of a plan's changes only: why a key is rotated or
    disabled, for the plan's lines (it is not part of the plan digest).
    """

    workspace: str
    name: str
    owner: str  # the owner's email, identity form
    id: str | None = None
    prefix: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    disabled: bool = False
    etag: str | None = None
    rotate_every_s: int | None = None
    # Desired: the destination name its secret is delivered under. Current:
    # the server's ``delivered_to``, which only an admin's key records, so a
    # key with one was made by this tool and a key without one was not.
    sink_name: str | None = None
    note: str | None = None
    in_use: bool = False  # current side: the key this very run authenticates with

    @property
    def key(self) -> tuple[str, str, str]:
        """The identity: ``(workspace, name, id)``; ``id`` is ``""`` for a declared key."""
        return (self.workspace, self.name, self.id or "")


ZOOM_KINDS = ("user_level", "account_level")


@frozen(slots=True)
class ZoomApp:
    """The Zoom OAuth app of one workspace instance, on Recall.ai's real v2 API (one per instance).

    An instance the API shows with more than one app has the oldest as its app
    and the others as extras (``primary`` False), which a managed instance removes.

    On the desired side ``secrets`` maps ``client_secret`` and ``webhook_secret``
    to their references, and ``write`` names those an update sends. On the
    current side the API returned both secrets in clear; the reader keeps only
    ``digests`` of them (``SecretDigest``, salted by the app's id), so the
    values are compared in memory and never stored. ``webhook_last_validation``
    is when Zoom last validated the app's webhook (None: never).
    """

    workspace: str
    client_id: str
    kind: str = "account_level"
    secrets: tuple[tuple[str, SecretRef], ...] = ()
    digests: tuple[tuple[str, SecretDigest], ...] = ()
    write: tuple[str, ...] = ()
    id: str | None = None
    webhook_last_validation: str | None = None
    # Current side: where Zoom must send this app's events (it names the app's id).
    webhook_url: str | None = None
    # Desired side, on a change only: client_id, kind or client_secret differ, so the
    # app is replaced (and gets a new webhook URL); ``replaced_secrets`` names the
    # changed secrets that made it one (``client_secret``), for the plan's line.
    replacement: bool = False
    replaced_secrets: tuple[str, ...] = ()
    # Current side: False for a second (third, ...) app of the same instance.
    primary: bool = True

    @property
    def key(self) -> str:
        """The identity: the workspace instance's name (``<instance>/<id>`` for an extra app)."""
        return self.workspace if self.primary else f"{self.workspace}/{self.id}"


LOGIN_MODES = ("always", "only_if_required")
LOGIN_SECRETS = ("sso_v2_private_key", "sso_v2_cert")


@frozen(slots=True)
class GoogleLogin:
    """A Google account that signed-in Google Meet bots log in with, in a login group.

    Its PEM private key and certificate are secrets: references on the desired
    side, digests (made by the reader; the API returns them in clear) on the
    current side. ``write`` names those an apply sends (set by the diff).
    """

    email: str
    sso_v2_workspace_domain: str
    is_active: bool = True
    secrets: tuple[tuple[str, SecretRef], ...] = ()
    digests: tuple[tuple[str, SecretDigest], ...] = ()
    write: tuple[str, ...] = ()
    id: str | None = None


@frozen(slots=True)
class GoogleLoginGroup:
    """A Google login group of one workspace instance (Recall.ai's v2 API), with its logins.

    Identified by ``(workspace, name)``; its logins by email within it (the
    API nests them in the group, and one listing reads both).
    """

    workspace: str
    name: str
    login_mode: str = "always"
    logins: tuple[GoogleLogin, ...] = ()  # sorted by email
    id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The identity: ``(workspace instance, group name)``."""
        return (self.workspace, self.name)


def _frozen(mapping: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(dict(mapping))


@frozen
class State:
    """One side of the reconciliation: users, workspaces and memberships by identity.

    Build one with ``State.build(users, workspaces, memberships)``; the mappings
    are read-only.
    """

    users: Mapping[str, User] = field(default_factory=lambda: MappingProxyType({}))
    workspaces: Mapping[str, Workspace] = field(default_factory=lambda: MappingProxyType({}))
    memberships: Mapping[tuple[str, str], Membership] = field(default_factory=lambda: MappingProxyType({}))
    webhooks: Mapping[tuple[str, str], Webhook] = field(default_factory=lambda: MappingProxyType({}))
    credentials: Mapping[tuple[str, str], Credential] = field(default_factory=lambda: MappingProxyType({}))
    api_keys: Mapping[tuple[str, str, str], ApiKey] = field(default_factory=lambda: MappingProxyType({}))
    zoom_apps: Mapping[str, ZoomApp] = field(default_factory=lambda: MappingProxyType({}))
    google_login_groups: Mapping[tuple[str, str], GoogleLoginGroup] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(
        cls,
        users: list[User] | tuple[User, ...] = (),
        workspaces: list[Workspace] | tuple[Workspace, ...] = (),
        memberships: list[Membership] | tuple[Membership, ...] = (),
        webhooks: list[Webhook] | tuple[Webhook, ...] = (),
        credentials: list[Credential] | tuple[Credential, ...] = (),
        api_keys: list[ApiKey] | tuple[ApiKey, ...] = (),
        zoom_apps: list[ZoomApp] | tuple[ZoomApp, ...] = (),
        google_login_groups: list[GoogleLoginGroup] | tuple[GoogleLoginGroup, ...] = (),
    ) -> State:
        """Key the objects by identity. Later duplicates replace earlier ones."""
        return cls(
            users=_frozen({u.email: u for u in users}),
            workspaces=_frozen({w.name: w for w in workspaces}),
            memberships=_frozen({m.key: m for m in memberships}),
            webhooks=_frozen({h.key: h for h in webhooks}),
            credentials=_frozen({c.key: c for c in credentials}),
            api_keys=_frozen({k.key: k for k in api_keys}),
            zoom_apps=_frozen({z.key: z for z in zoom_apps}),
            google_login_groups=_frozen({g.key: g for g in google_login_groups}),
        )


@frozen(slots=True)
class Organization:
    """What the API says about the key's organization (``GET /me/``)."""

    id: str
    name: str
    region: str
    workspace_limit: int = DEFAULT_WORKSPACE_LIMIT


@frozen(slots=True)
class Identity:
    """Who the API key belongs to (``GET /me/``)."""

    user_id: str
    email: str  # lowercased
    role: str
    organization: Organization


@frozen(slots=True)
class RemovalLimit:
    """``policy.max_removals``: an absolute count or a percentage of existing objects."""

    count: int | None = None
    percent: float | None = 25.0

    def allowed(self, existing: int) -> int:
        """How many removals are allowed when ``existing`` objects exist."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return int(existing * self.percent / 100)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        pct = self.percent
        return f"{pct:g}%"


@frozen(slots=True)
class Policy:
    """The ``policy`` section of the config."""

    min_admins: int = 1
    max_removals: RemovalLimit = RemovalLimit()
    protected_users: frozenset[str] = frozenset()  # lowercased emails
    ignore_users: tuple[str, ...] = ()  # fnmatch globs over lowercased emails
    ignore_workspaces: tuple[str, ...] = ()  # fnmatch globs over workspace names
    ignore_webhooks: tuple[str, ...] = ()  # fnmatch globs over webhook URLs
    ignore_credentials: tuple[str, ...] = ()  # fnmatch globs over provider names
    # policy.api_keys
    production_key_owners: str = "anyone"  # or "service_accounts"
    unmanaged_keys: str = "keep"  # keep | report | disable
    rotation_grace_s: int = 24 * 3600
    recent_use_days: int = 7


@frozen(slots=True)
class OrganizationSettings:
    """The ``organization`` section of the config: where and how to connect."""

    region: str | None = None
    api_url: str | None = None
    token_env: str = DEFAULT_TOKEN_ENV
    name: str | None = None
    # The variable of each workspace instance's own key (Recall.ai's v2 API), a template.
    workspace_token_env: str | None = None

    def base_url(self) -> str:
        """``api_url`` when given, else the region's URL."""
        if self.api_url:
            return self.api_url.rstrip("/")
        if self.region:
            return region_base_url(self.region)
        raise ValueError("organization needs a region or an api_url")


@frozen
class Config:
    """A loaded, validated config: one organization's desired state and settings.

    ``desired`` holds every declared grant, with ``expires`` where given; the
    diff decides (given ``now``) which grants have expired. ``digest`` is the
    sha256 of the loaded sources; ``sources`` the files it was read from.
    ``environments`` lists the declared environment names in file order.
    """

    organization: OrganizationSettings
    policy: Policy
    desired: State
    workspace_name_format: str = DEFAULT_NAME_FORMAT
    environments: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    digest: str = ""
    # Every place the config uses a secret reference, and the directory file
    # references are relative to.
    secret_uses: tuple[SecretUse, ...] = ()
    secret_base: str = ""
    # Set when the config is held to a base config (``plan --base``,
    # ``config.against_base``): what it changes in policy, and the instances
    # it relabelled from production (they stay production in ``desired``).
    policy_changes: tuple[tuple[str, str, str], ...] = ()
    relabelled: tuple[str, ...] = ()
    # Workspace instance name -> the variable holding its own key (Recall.ai's v2 API
    # scopes a key to one workspace); only instances given one by the config.
    workspace_token_envs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def integrations_only(self) -> bool:
        """Whether the config declares only workspace instances with their own keys and v2 settings.

        Such a config needs no organization key and makes no request to the
        management contract: its instances exist already (Recall.ai's dashboard
        makes workspaces), and everything it manages is on the v2 API.
        """
        d = self.desired
        return (
            bool(self.workspace_token_envs)
            and set(self.workspace_token_envs) == set(d.workspaces)
            and not (d.users or d.memberships or d.webhooks or d.credentials or d.api_keys)
        )


_T = TypeVar("_T")


def fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of ``cls`` (a frozen, slotted dataclass) taking every field positionally.

    ``fast_constructor(Membership)(*values)`` equals ``Membership(*values)``
    and is about a third faster: a frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__`` by name, this sets each slot through
    its own descriptor. For where 100,000 objects are built at once (the
    memberships a plan reads, and the ones the config cache holds): ~0.1 s
    of every plan at 10,000 users on each side. Only for classes with nothing
    to run at construction (no ``__post_init__``).
    """
    if not is_frozen(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a frozen, slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} runs __post_init__: construct it with its own __init__")
    names = tuple(f.name for f in dataclass_fields(cls))  # type: ignore[arg-type]  # checked above
    # Generated as dataclasses generates __init__: one line per field, no loop.
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    scope.update({f"set_{name}": vars(cls)[name].__set__ for name in names})
    body = "".join(f"    set_{name}(obj, {name})\n" for name in names)
    exec(f"def build({', '.join(names)}):\n    obj = new(cls)\n{body}    return obj\n", scope)  # noqa: S102
    build: Callable[..., _T] = scope["build"]
    return build
