"""Workspace settings in the config: webhooks and credentials of each workspace instance.

Settings sit on an environment (defaults for every instance in it) and on a
workspace (for its instances; an entry may name the ``environments`` it is
for). A workspace's own webhook of the same URL, or credential of the same
provider, wins over the environment's. Strings may use the templates
``{workspace}`` / ``{environment}`` and, for variable names, their upper-case
forms ``{WORKSPACE}`` / ``{ENVIRONMENT}`` (``-`` and ``.`` become ``_``).

Decisions worth knowing:

* **Secrets are references.** The schema refuses a literal where a secret
  goes; here each reference is checked for what it may name
  (``secrets.refs.env_ref_problem`` / ``file_ref_problem``) and recorded as
  a ``SecretUse`` with its place in the file, so that an unset one is
  reported at plan time where it is written. Nothing is read here:
  ``validate`` stays offline and secret-free.
* **What is managed.** A section (``webhooks``, ``transcription``,
  ``platforms``) that an instance gets from its workspace or environment is
  managed there: objects the config does not list are removed. A section
  given nowhere is left alone (``Workspace.manages``).
* **Plain http** only to a loopback host: webhook payloads name meetings and
  people.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from provisioner.apiurl import is_loopback_host
from provisioner.config.text import excerpt
from provisioner.config.yamlsource import Path
from provisioner.model import (
    CONFIG_PROVIDERS,
    LOGIN_MODES,
    LOGIN_SECRETS,
    PLATFORM,
    TRANSCRIPTION,
    ZOOM,
    ZOOM_KINDS,
    ApiKey,
    Credential,
    GoogleLogin,
    GoogleLoginGroup,
    SecretRef,
    SecretUse,
    Webhook,
    ZoomApp,
)
from provisioner.secrets.names import api_key_slug, chosen_name_problem, default_name, webhook_slug
from provisioner.secrets.refs import env_ref_problem, file_ref_problem

SECTIONS = ("webhooks", "transcription", "platforms")
GOOGLE_LOGIN_GROUPS = "google_login_groups"
DEFAULT_ZOOM_KIND = "account_level"
# The schema's caps (schemas/config.schema.json): entries past them are reported, never expanded.
MAX_WEBHOOKS = 50
MAX_API_KEYS = 100
MAX_ENVIRONMENTS = 20
_KIND_OF_SECTION = {"transcription": TRANSCRIPTION, "platforms": PLATFORM}
_TEMPLATE = re.compile(r"\{([^{}]*)\}")
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")

Report = Callable[..., None]


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass
class InstanceSettings:
    """One instance's settings, as the config declares them."""

    webhooks: list[Webhook] = field(default_factory=list)
    credentials: list[Credential] = field(default_factory=list)
    api_keys: list[tuple[ApiKey, Path]] = field(default_factory=list)  # with the place of the owner
    # Each server-made secret's destination name: (name, what it is, where the config decides it).
    destinations: list[Destination] = field(default_factory=list)
    zoom_apps: list[ZoomApp] = field(default_factory=list)
    google_login_groups: list[GoogleLoginGroup] = field(default_factory=list)
    manages: tuple[str, ...] = ()
    uses: list[SecretUse] = field(default_factory=list)
    # The place of each secret reference (merged path), in ``uses`` order.
    use_paths: list[Path] = field(default_factory=list)


class Destination(NamedTuple):
    """One server-made secret's destination name, what it belongs to, and where the config decides it."""

    name: str
    what: str
    path: Path


class Place(NamedTuple):
    """Which instance an entry is expanded for: its name, its workspace, environment, and the
    environments its workspace lists (for messages)."""

    instance: str
    workspace: str
    environment: str | None
    envs: list[str]


class SettingsBuilder:
    """Builds each instance's settings; records problems through ``report`` (never raises)."""

    def __init__(
        self, report: Report, token_env: str, check_owner: Callable[[Any, Path], str | None] | None = None
    ) -> None:
        self.report = report
        self.token_env = token_env
        # The operator's globs of extra variables an ``{env: NAME}`` may read (outside the repo).
        self.secret_envs: tuple[str, ...] = ()
        # Turns an owner's email into a declared user's identity (None, reported, otherwise).
        self.check_owner = check_owner or (lambda value, path: value if isinstance(value, str) else None)
        self._reported: set[tuple[Path, str]] = set()
        self._owners: dict[tuple[Path, str], str | None] = {}

    def _once(self, path: Path, message: str) -> None:
        # Environment defaults are expanded once per instance: report each problem once.
        if (path, message) not in self._reported:
            self._reported.add((path, message))
            self.report(path, message)

    # --- templates -------------------------------------------------------------
    def fill(self, text: str, path: Path, workspace: str, environment: str | None) -> str | None:
        """``text`` with its templates filled in; None (reported) when one is unknown or unfillable."""
        values = {"workspace": workspace, "WORKSPACE": _NOT_NAME.sub("_", workspace).upper()}
        if environment is not None:
            values["environment"] = environment
            values["ENVIRONMENT"] = _NOT_NAME.sub("_", environment).upper()
        failed = False

        def one(match: re.Match[str]) -> str:
            nonlocal failed
            name = match.group(1)
            if name in values:
                return values[name]
            failed = True
            if name in ("environment", "ENVIRONMENT"):
                self._once(path, f"{{{name}}} needs a workspace with environments; remove it here")
            else:
                self._once(
                    path,
                    f"unknown template `{{{excerpt(name)}}}`; use {{workspace}}, {{environment}}, "
                    "{WORKSPACE} or {ENVIRONMENT}",
                )
            return ""

        filled = _TEMPLATE.sub(one, text)
        return None if failed else filled

    # --- one instance ------------------------------------------------------------
    def instance(
        self,
        instance: str,
        workspace: str,
        environment: str | None,
        env_spec: Any,
        env_path: Path,
        ws_spec: Any,
        ws_path: Path,
    ) -> InstanceSettings:
        """The settings of instance ``instance`` of workspace ``workspace`` in ``environment``."""
        out = InstanceSettings()
        layers = [(_dict(env_spec), env_path), (_dict(ws_spec), ws_path)]
        place = Place(instance, workspace, environment, ws_spec_envs(ws_spec))
        manages = [s for s in SECTIONS if any(s in spec for spec, _ in layers)]
        if self._google_login_groups(layers, place, out):
            manages.append(GOOGLE_LOGIN_GROUPS)
        out.manages = tuple(dict.fromkeys(manages))
        hooks = self._webhooks(layers, place)
        creds, zoom_kind = self._credentials(layers, place)
        self._api_keys(ws_spec, ws_path, place, out)
        self._collect_credentials(creds, zoom_kind, place, out)
        out.webhooks = [hooks[url][0] for url in sorted(hooks)]
        for hook, path in (hooks[url] for url in sorted(hooks)):
            if hook.sink_name:
                out.destinations.append(
                    Destination(hook.sink_name, f"the webhook {hook.url} of {instance}", path)
                )
        return out

    def _google_login_groups(
        self, layers: list[tuple[dict[Any, Any], Path]], place: Place, out: InstanceSettings
    ) -> bool:
        """The instance's Google login groups (the workspace's replace the environment's).

        Returns whether any layer lists them (the section is then managed).
        """
        groups: dict[str, tuple[GoogleLoginGroup, list[tuple[SecretUse, Path]]]] = {}
        listed = False
        for spec, base in layers:
            entries = _dict(spec.get("platforms")).get(GOOGLE_LOGIN_GROUPS)
            listed = listed or entries is not None
            for i, entry in enumerate(_list(entries)):
                made = self.google_login_group(entry, base + ("platforms", GOOGLE_LOGIN_GROUPS, i), place)
                if made is not None:
                    groups[made[0].name] = made
        for name in sorted(groups):
            group, uses = groups[name]
            out.google_login_groups.append(group)
            for use, use_path in uses:
                out.uses.append(use)
                out.use_paths.append(use_path)
        return listed

    def _webhooks(
        self, layers: list[tuple[dict[Any, Any], Path]], place: Place
    ) -> dict[str, tuple[Webhook, Path]]:
        """The instance's webhooks by URL, with where each is declared (the workspace's win)."""
        hooks: dict[str, tuple[Webhook, Path]] = {}
        for spec, base in layers:
            # A URL twice in one list is a mistake; across lists, the workspace wins.
            listed: set[str] = set()
            # Past the schema's cap nothing is expanded: 50 instances would multiply any excess.
            for i, entry in enumerate(_list(spec.get("webhooks"))[:MAX_WEBHOOKS]):
                path = base + ("webhooks", i)
                hook = self.webhook(entry, path, place)
                if hook is None:
                    continue
                if hook.url in listed:
                    self._once(
                        path + ("url",),
                        f"webhook `{excerpt(hook.url)}` is listed twice for {excerpt(place.instance)}; "
                        "list each URL once",
                    )
                    continue
                listed.add(hook.url)
                hooks[hook.url] = (hook, path)
        return hooks

    def _credentials(
        self, layers: list[tuple[dict[Any, Any], Path]], place: Place
    ) -> tuple[dict[str, tuple[Credential, list[tuple[SecretUse, Path]]]], str]:
        """The instance's credentials by provider (the workspace's replace the environment's).

        Also the Zoom app's kind, which only Recall.ai's real Zoom app has.
        """
        creds: dict[str, tuple[Credential, list[tuple[SecretUse, Path]]]] = {}
        zoom_kind = DEFAULT_ZOOM_KIND
        for spec, base in layers:
            for section in ("transcription", "platforms"):
                for provider, entry in _dict(spec.get(section)).items():
                    made = self.credential(provider, entry, base + (section, provider), place)
                    if made is None:
                        continue
                    creds[provider] = made  # the workspace's replaces the environment's, secrets and all
                    if provider == ZOOM:
                        kind = _dict(entry).get("kind", DEFAULT_ZOOM_KIND)
                        zoom_kind = kind if kind in ZOOM_KINDS else DEFAULT_ZOOM_KIND
        return creds, zoom_kind

    def _api_keys(self, ws_spec: Any, ws_path: Path, place: Place, out: InstanceSettings) -> None:
        """The workspace's declared keys for this instance, each name once, with its destination."""
        names: dict[str, Path] = {}
        for i, entry in enumerate(_list(_dict(ws_spec).get("api_keys"))[:MAX_API_KEYS]):
            path = ws_path + ("api_keys", i)
            key = self.api_key(entry, path, place)
            if key is None:
                continue
            if key.name in names:
                self._once(
                    path + ("name",),
                    f"API key `{excerpt(key.name)}` is also declared at {{other}}; names are unique "
                    "within a workspace",
                )
                continue
            names[key.name] = path
            out.api_keys.append((key, path + ("owner",)))
            if key.sink_name:
                what = f"the API key {key.name} of {place.instance}"
                out.destinations.append(Destination(key.sink_name, what, path))

    @staticmethod
    def _collect_credentials(
        creds: dict[str, tuple[Credential, list[tuple[SecretUse, Path]]]],
        zoom_kind: str,
        place: Place,
        out: InstanceSettings,
    ) -> None:
        """The credentials and their secret uses into ``out``; Zoom becomes Recall.ai's real Zoom app."""
        if ZOOM in creds:
            # Recall.ai's real API has the Zoom app (zoom_oauth_app), not the contract's credential.
            zoom, _ = creds[ZOOM]
            out.zoom_apps.append(
                ZoomApp(
                    workspace=place.instance,
                    client_id=dict(zoom.fields)["client_id"],
                    kind=zoom_kind,
                    secrets=zoom.secrets,
                )
            )
        for provider in sorted(creds):
            credential, uses = creds[provider]
            if provider != ZOOM:
                out.credentials.append(credential)
            for use, use_path in uses:
                out.uses.append(use)
                out.use_paths.append(use_path)

    def _wanted_here(
        self, entry: dict[Any, Any], path: Path, environment: str | None, envs: list[str]
    ) -> bool:
        only = entry.get("environments")
        if only is None:
            return True
        if environment is None:
            self._once(
                path + ("environments",),
                "this workspace has no environments; remove `environments` from this entry",
            )
            return False
        for j, name in enumerate(_list(only)[:MAX_ENVIRONMENTS]):
            if isinstance(name, str) and envs and name not in envs:
                self._once(
                    path + ("environments", j),
                    f"this workspace has no environment `{excerpt(name)}`; use one of: {', '.join(envs)}",
                )
        return environment in _list(only)[:MAX_ENVIRONMENTS]

    def webhook(
        self,
        entry: Any,
        path: Path,
        place: Place,
    ) -> Webhook | None:
        """One webhook entry for one instance, or None (reported, or not for this environment)."""
        instance, workspace, environment, envs = place
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            return None
        if not self._wanted_here(entry, path, environment, envs):
            return None
        url = self.fill(entry["url"], path + ("url",), workspace, environment)
        if url is None:
            return None
        problem = webhook_url_problem(url)
        if problem:
            self._once(path + ("url",), problem)
            return None
        events = entry.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            return None
        enabled = entry.get("enabled", True)
        sink_name = self.destination(entry, path, place, webhook_slug(url, urlsplit(url).hostname))
        if sink_name is None:
            return None
        return Webhook(
            workspace=instance,
            url=url,
            events=tuple(sorted(set(events))),
            enabled=enabled if isinstance(enabled, bool) else True,
            sink_name=sink_name,
        )

    def credential(
        self,
        provider: str,
        entry: Any,
        path: Path,
        place: Place,
    ) -> tuple[Credential, list[tuple[SecretUse, Path]]] | None:
        """One provider's credential for one instance, with the secret references it uses.

        ``zoom`` is read the same way, for ``_collect_credentials`` to turn into
        Recall.ai's real Zoom app: it is never a credential of the contract.
        """
        instance, workspace, environment, envs = place
        spec = CONFIG_PROVIDERS.get(provider)
        if spec is None or not isinstance(entry, dict):
            return None  # the schema reported it
        if not self._wanted_here(entry, path, environment, envs):
            return None
        fields: list[tuple[str, str]] = []
        ok = True
        for name in spec.fields + spec.optional_fields:
            value = entry.get(name)
            if value is None:
                ok = ok and name in spec.optional_fields
                continue
            if not isinstance(value, str):
                ok = False
                continue
            filled = self.fill(value, path + (name,), workspace, environment)
            if filled is None:
                ok = False
                continue
            fields.append((name, filled))
        secrets: list[tuple[str, SecretRef]] = []
        uses: list[tuple[SecretUse, Path]] = []
        owner = "Zoom app" if provider == ZOOM else f"credential {provider}"
        for name in spec.secrets:
            ref = self.secret_ref(entry.get(name), path + (name,), workspace, environment)
            if ref is None:
                ok = False
                continue
            secrets.append((name, ref))
            use = SecretUse(ref, instance, environment, f"{owner} {name}")
            uses.append((use, path + (name,)))
        if not ok:
            return None
        credential = Credential(
            workspace=instance,
            provider=provider,
            fields=tuple(sorted(fields)),
            secrets=tuple(secrets),
            write=tuple(n for n, _ in secrets),
        )
        return credential, uses

    def google_login_group(
        self, entry: Any, path: Path, place: Place
    ) -> tuple[GoogleLoginGroup, list[tuple[SecretUse, Path]]] | None:
        """One Google login group (Recall.ai's v2 API) for one instance, with its secret references."""
        instance, workspace, environment, _ = place
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return None  # the schema reported it
        if not self._wanted_here(entry, path, environment, place.envs):
            return None
        name = self.fill(entry["name"], path + ("name",), workspace, environment)
        mode = entry.get("login_mode", "always")
        if name is None or mode not in LOGIN_MODES:
            return None
        logins: dict[str, GoogleLogin] = {}
        uses: list[tuple[SecretUse, Path]] = []
        for j, raw in enumerate(_list(entry.get("logins"))):
            at = path + ("logins", j)
            made = self._google_login(raw, at, place, uses)
            if made is None:
                return None
            if made.email in logins:
                self._once(at + ("email",), f"login `{excerpt(made.email)}` is listed twice in this group")
                return None
            logins[made.email] = made
        group = GoogleLoginGroup(
            workspace=instance,
            name=name,
            login_mode=mode,
            logins=tuple(logins[e] for e in sorted(logins)),
        )
        return group, uses

    def _google_login(
        self, raw: Any, at: Path, place: Place, uses: list[tuple[SecretUse, Path]]
    ) -> GoogleLogin | None:
        instance, workspace, environment, _ = place
        if not isinstance(raw, dict) or not isinstance(raw.get("email"), str):
            return None
        email = self.fill(raw["email"], at + ("email",), workspace, environment)
        domain_raw = raw.get("sso_v2_workspace_domain")
        domain = (
            self.fill(domain_raw, at + ("sso_v2_workspace_domain",), workspace, environment)
            if isinstance(domain_raw, str)
            else None
        )
        if email is None or domain is None:
            return None
        secrets: list[tuple[str, SecretRef]] = []
        for secret in LOGIN_SECRETS:
            ref = self.secret_ref(raw.get(secret), at + (secret,), workspace, environment)
            if ref is None:
                return None
            secrets.append((secret, ref))
            use = SecretUse(ref, instance, environment, f"Google login {email} {secret}")
            uses.append((use, at + (secret,)))
        active = raw.get("is_active", True)
        return GoogleLogin(
            email=email.lower(),
            sso_v2_workspace_domain=domain,
            is_active=active if isinstance(active, bool) else True,
            secrets=tuple(secrets),
        )

    def api_key(
        self,
        entry: Any,
        path: Path,
        place: Place,
    ) -> ApiKey | None:
        """One declared API key for one instance, or None (reported, or not for this environment)."""
        instance, workspace, environment, envs = place
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return None
        if not self._wanted_here(entry, path, environment, envs):
            return None
        owner = self._owner_once(entry.get("owner"), path + ("owner",))
        if owner is None:
            return None
        rotate = parse_duration(entry.get("rotate_every"))
        sink_name = self.destination(entry, path, place, api_key_slug(entry["name"]))
        if sink_name is None:
            return None
        return ApiKey(
            workspace=instance,
            name=entry["name"],
            owner=owner,
            rotate_every_s=rotate,
            sink_name=sink_name,
        )

    def destination(self, entry: dict[Any, Any], path: Path, place: Place, slug: str) -> str | None:
        """The final name a server-made secret is delivered under; None (reported) when it cannot be one.

        ``sink:`` when the entry chooses one (templates filled, spelled as given
        but upper case), else ``RECALL_<INSTANCE>_<SLUG>``. Never the variable
        that holds the run's own key: a merge must not overwrite it.
        """
        sink = entry.get("sink")
        if isinstance(sink, str):
            filled = self.fill(sink, path + ("sink",), place.workspace, place.environment)
            if filled is None:
                return None
            if problem := chosen_name_problem(filled):
                self._once(path + ("sink",), f"`{excerpt(filled)}` cannot be a secret's name: {problem}")
                return None
            name = filled.upper()
        else:
            name = default_name(place.instance, slug)
        if name == self.token_env.upper():
            where = path + ("sink",) if isinstance(sink, str) else path
            self._once(
                where,
                f"{name} holds the API key provisioner runs with; a secret delivered under that name "
                "would replace it. Choose another sink name",
            )
            return None
        return name

    def _owner_once(self, value: Any, path: Path) -> str | None:
        # An entry is expanded once per environment; its owner is checked once.
        key = (path, "owner")
        if key in self._owners:
            return self._owners[key]
        self._owners[key] = self.check_owner(value, path)
        return self._owners[key]

    def secret_ref(self, value: Any, path: Path, workspace: str, environment: str | None) -> SecretRef | None:
        """A ``{env: ...}`` / ``{file: ...}`` reference, templates filled; None (reported) when invalid."""
        if not isinstance(value, dict):
            return None  # the schema reported the literal or the shape
        sources = [k for k in value if k in ("env", "file")]
        if len(sources) != 1 or set(value) - {"env", "file", "version"}:
            return None
        source = sources[0]
        raw = value[source]
        if not isinstance(raw, str):
            return None
        name = self.fill(raw, path + (source,), workspace, environment)
        if name is None:
            return None
        problem = (
            env_ref_problem(name, self.token_env, self.secret_envs)
            if source == "env"
            else file_ref_problem(name)
        )
        if problem:
            self._once(path + (source,), problem)
            return None
        version = value.get("version", 1)
        return SecretRef(source, name, version if isinstance(version, int) else 1)


_DURATION = re.compile(r"([1-9][0-9]{0,4})([hd])")


def parse_duration(value: Any) -> int | None:
    """``90d`` / ``24h`` as seconds; None for anything else (the schema reported it)."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    return int(match.group(1)) * (86400 if match.group(2) == "d" else 3600)


def ws_spec_envs(ws_spec: Any) -> list[str]:
    """The environments a workspace entry lists (for messages)."""
    return [e for e in _list(_dict(ws_spec).get("environments")) if isinstance(e, str)]


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None: https, or http to a loopback host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return f"`{excerpt(url)}` is not a valid URL; write https://host/path"
    if parts.scheme not in ("https", "http") or not host:
        return f"`{excerpt(url)}` is not an https URL; write https://host/path"
    if parts.username is not None or parts.password is not None:
        return "a webhook URL may not hold a user or password; the server signs each event instead"
    if parts.scheme == "http" and not is_loopback_host(host):
        return (
            f"`{excerpt(url)}` is plain http: events name meetings and people, so they go over "
            "https only (plain http is allowed to a loopback host for local testing)"
        )
    return None
