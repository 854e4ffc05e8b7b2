"""Export: turn an organization's current ``State`` into a version-1 config.

``export_config`` is pure: it takes what the API reader returned and gives
back YAML text. Loading that text and diffing it against the same ``current``
yields an empty plan, so an existing organization can adopt provisioner
without a single change on the first ``apply``.

The work happens in two steps that never mix:

1. *Laying out* (``_layout``): decide the config's structure in the domain's own
   words — which workspace instances fold into one workspace with
   ``environments``, which access is shared by every instance of an
   environment (and so moves to ``environments.<env>.members``), and which
   member sets repeat often enough to become a named group.
2. *Emitting* (``_emit``): write that structure as YAML text by hand, because
   the output wants flow-style one-line user entries with trailing comments,
   which ``yaml.safe_dump`` cannot produce, and because byte-identical output
   for the same organization needs every ordering to be explicit.

Workspace settings are written on each workspace entry: readable values as
they are, and each write-only secret as a reference to a generated variable
(``SECRET_<WORKSPACE>_<ENVIRONMENT>_<PROVIDER>_<SECRET>``, a name the
``{env:}`` rule of ``provisioner.secrets.refs`` accepts), since the API never
returns a secret. The variables are listed at the top of the file
(and by ``Exported.variables``); with each set to the secret's value, a plan
shows no changes. A workspace whose credentials' readable fields differ
between environments cannot be one entry, so its instances are written one
by one.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from provisioner.audit import Declared
from provisioner.frozen import frozen
from provisioner.model import (
    ADMIN,
    CONFIG_PROVIDERS,
    DEFAULT_NAME_FORMAT,
    DEFAULT_TOKEN_ENV,
    INVITED,
    PLATFORM,
    ZOOM,
    Credential,
    GoogleLoginGroup,
    Identity,
    State,
)
from provisioner.secrets.names import api_key_slug, default_name, webhook_slug

__all__ = ["Exported", "export_config", "export_document"]

_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


def _var_part(text: str) -> str:
    """A name as part of a variable name, as the loader fills {WORKSPACE}/{ENVIRONMENT}."""
    return _NOT_NAME.sub("_", text).upper()


@frozen
class Exported:
    """An exported config and the secret variables it names (to be set before a plan)."""

    text: str
    variables: tuple[str, ...] = ()
    # An audit log was read and records no apply of the organization: what only
    # a config can say (service accounts, rotate_every) could not be restored.
    unrecorded: bool = False


DEFAULT_ENVIRONMENTS: tuple[str, ...] = ("development", "staging", "production")

# A member list longer than this many characters on one line is written in
# block style, one member per line, so that diffs of the config stay readable.
_FLOW_WIDTH = 100

# Group names we derive from an environment must look like ordinary
# identifiers; anything else falls back to ``group-N``.
_GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

# Plain scalars we are willing to write unquoted: no YAML indicator at the
# start, nothing that ends a flow collection or starts a comment inside. The
# round-trip check in ``_scalar`` catches what a regex cannot (``null``,
# ``yes``, numbers, dates).
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")


def export_config(
    identity: Identity,
    current: State,
    *,
    environments: Sequence[str] = DEFAULT_ENVIRONMENTS,
    workspace_name_format: str = DEFAULT_NAME_FORMAT,
    region: str | None = None,
    api_url: str | None = None,
    token_env: str = DEFAULT_TOKEN_ENV,
    declared: Declared | None = None,
) -> str:
    """The YAML text of a version-1 config that declares ``current`` exactly.

    * ``environments`` are the environment names to recognise in workspace
      names; instances named by ``workspace_name_format`` for one of them fold
      into one workspace entry with ``environments``.
    * The organization is addressed by ``api_url`` when given, else by
      ``region`` (default: the identity's organization's region).
    * ``token_env`` names the environment variable that holds the API key.
    * ``declared`` is what the config of the last apply declared that the
      API cannot tell back (from the audit log): service accounts and each
      key's ``rotate_every``, written back as they were.

    The same organization always exports to byte-identical text. Raises
    ``ValueError`` when ``current`` is inconsistent (a membership of an
    unknown user or workspace) or the format lacks its placeholders; both are
    programming errors, not user errors.
    """
    return export_document(
        identity,
        current,
        environments=environments,
        workspace_name_format=workspace_name_format,
        region=region,
        api_url=api_url,
        token_env=token_env,
        declared=declared,
    ).text


def export_document(
    identity: Identity,
    current: State,
    *,
    environments: Sequence[str] = DEFAULT_ENVIRONMENTS,
    workspace_name_format: str = DEFAULT_NAME_FORMAT,
    region: str | None = None,
    api_url: str | None = None,
    token_env: str = DEFAULT_TOKEN_ENV,
    declared: Declared | None = None,
    workspace_token_env: str | None = None,
) -> Exported:
    """Like ``export_config``, with the secret variables the config names.

    With ``workspace_token_env`` (the variable template of each instance's own
    key, for Recall.ai's v2 API) every instance is written as its own entry:
    the template is filled with each instance's name (``{WORKSPACE}``).
    """
    _check_consistent(current)
    parse = _name_parser(workspace_name_format, () if workspace_token_env else environments)
    layout = _layout(current, environments, parse)
    settings = _Settings(
        name=identity.organization.name,
        org_id=identity.organization.id,
        region=None if api_url else (region or identity.organization.region),
        api_url=api_url,
        token_env=token_env,
        workspace_name_format=workspace_name_format,
        workspace_token_env=workspace_token_env,
    )
    variables: list[str] = []
    text = _emit(settings, current, layout, declared or Declared(), variables)
    return Exported(text, tuple(variables))


# --------------------------------------------------------------------------
# Laying out


@frozen
class _Settings:
    name: str
    org_id: str
    region: str | None
    api_url: str | None
    token_env: str
    workspace_name_format: str
    workspace_token_env: str | None = None


@dataclass
class _Folded:
    """One workspace entry with ``environments``: base name, env -> own members."""

    name: str
    members: dict[str, frozenset[str]] = field(default_factory=dict)  # in env order


@dataclass
class _Layout:
    """The config's structure, before it becomes text. All orderings are final."""

    env_members: dict[str, frozenset[str]]  # declared environments, in given order
    folded: list[_Folded]  # sorted by base name
    plain: list[tuple[str, frozenset[str]]]  # sorted by workspace name
    groups: dict[frozenset[str], str]  # member set -> group name, in first-use order


def _check_consistent(current: State) -> None:
    for workspace, user in sorted(current.memberships):
        if workspace not in current.workspaces:
            raise ValueError(f"membership {workspace}/{user} names an unknown workspace")
        if user not in current.users:
            raise ValueError(f"membership {workspace}/{user} names an unknown user")


_NameParser = Callable[[str], "tuple[str, str] | None"]


def _name_parser(fmt: str, environments: Sequence[str]) -> _NameParser:
    """A function that splits an instance name into (workspace, environment), or None.

    The format's two placeholders become regex groups; the environment group
    only matches the given environment names. The workspace group is greedy,
    so ``a-b-production`` reads as workspace ``a-b``.
    """
    if fmt.count("{workspace}") != 1 or fmt.count("{environment}") != 1:
        raise ValueError(
            f"workspace_name_format {fmt!r} must contain {{workspace}} and {{environment}} once each"
        )
    if not environments:
        return lambda name: None
    envs = "|".join(re.escape(e) for e in sorted(environments, key=lambda e: (-len(e), e)))
    pattern = ""
    for part in re.split(r"(\{workspace\}|\{environment\})", fmt):
        if part == "{workspace}":
            pattern += r"(?P<workspace>.+)"
        elif part == "{environment}":
            pattern += f"(?P<environment>{envs})"
        else:
            pattern += re.escape(part)
    regex = re.compile(f"^{pattern}$", re.DOTALL)

    def parse(name: str) -> tuple[str, str] | None:
        match = regex.match(name)
        if not match:
            return None
        workspace, environment = match["workspace"], match["environment"]
        # Formatting back must give the same name, or the loader would expand
        # the entry into something else.
        if fmt.format(workspace=workspace, environment=environment) != name:
            return None
        return workspace, environment

    return parse


def _layout(current: State, environments: Sequence[str], parse: _NameParser) -> _Layout:
    members_of: dict[str, set[str]] = {name: set() for name in current.workspaces}
    for workspace, user in current.memberships:
        members_of[workspace].add(user)

    # Fold: base name -> {environment: instance name}.
    instances: dict[str, dict[str, str]] = {}
    for name in sorted(current.workspaces):
        parsed = parse(name)
        if parsed is not None:
            base, env = parsed
            instances.setdefault(base, {})[env] = name
    # A base that is also the name of a workspace we write plainly would give
    # two entries of the same name; such instances stay plain.
    plain_names = {n for n in current.workspaces if parse(n) is None}
    for base in sorted(instances):
        if base in plain_names or not _settings_fold(instances[base], current):
            plain_names.update(instances.pop(base).values())

    # Lift: an environment's members apply to every instance of every
    # workspace that lists it, so only access common to all those instances
    # may move up.
    env_order = [e for e in environments if any(e in envs for envs in instances.values())]
    env_members: dict[str, frozenset[str]] = {}
    for env in env_order:
        sets = [members_of[envs[env]] for envs in instances.values() if env in envs]
        env_members[env] = frozenset(set.intersection(*sets))

    folded = [
        _Folded(
            name=base,
            members={
                env: frozenset(members_of[instances[base][env]] - env_members[env])
                for env in env_order
                if env in instances[base]
            },
        )
        for base in sorted(instances)
    ]
    plain = [(name, frozenset(members_of[name])) for name in sorted(plain_names)]
    groups = _groups(env_members, folded, plain)
    return _Layout(env_members=env_members, folded=folded, plain=plain, groups=groups)


def _settings_fold(instances: dict[str, str], current: State) -> bool:
    """Whether one entry can declare these instances' settings.

    A credential's readable fields, and an API key's owner, must be the same in
    every instance that has it.
    """
    fields: dict[str, tuple[tuple[str, str], ...]] = {}
    owners: dict[str, str] = {}
    names = set(instances.values())
    for name in instances.values():
        for (ws, provider), credential in current.credentials.items():
            if ws != name:
                continue
            if fields.setdefault(provider, credential.fields) != credential.fields:
                return False
    for key in current.api_keys.values():
        if (
            key.workspace in names
            and not key.disabled
            and owners.setdefault(key.name, key.owner) != key.owner
        ):
            return False
    return True


def _groups(
    env_members: dict[str, frozenset[str]],
    folded: list[_Folded],
    plain: list[tuple[str, frozenset[str]]],
) -> dict[frozenset[str], str]:
    """Name the member sets of two or more users that are written twice or more.

    A set first used as an environment's members is called ``<env>-team``;
    any other ``group-1``, ``group-2``… in the order they first appear in the
    file, which keeps numbering stable for the same organization.
    """
    uses: list[tuple[str | None, frozenset[str]]] = [(e, s) for e, s in env_members.items()]
    uses += [(None, s) for f in folded for s in f.members.values()]
    uses += [(None, s) for _, s in plain]
    counts = Counter(s for _, s in uses if len(s) >= 2)
    groups: dict[frozenset[str], str] = {}
    numbered = 0
    for env, members in uses:
        if counts[members] < 2 or members in groups:
            continue
        if env is not None and _GROUP_NAME.match(f"{env}-team"):
            groups[members] = f"{env}-team"
        else:
            numbered += 1
            groups[members] = f"group-{numbered}"
    return groups


# --------------------------------------------------------------------------
# Emitting


def _emit(
    settings: _Settings, current: State, layout: _Layout, declared: Declared, variables: list[str]
) -> str:
    """The config's text: each section by its own step, in the file's order."""
    lines = _header_lines(settings, current)
    lines += _organization_lines(settings)
    lines += _environment_lines(layout)
    lines += _user_lines(current, declared)
    lines += _group_lines(layout)
    lines += _workspace_lines(settings, current, layout, declared, variables)
    if variables:  # named at the top, where a reader starts
        lines[3:3] = _variables_header(variables)
    lines += _policy_lines(current)
    return "\n".join(lines) + "\n"


def _header_lines(settings: _Settings, current: State) -> list[str]:
    pending = sum(1 for u in current.users.values() if u.status == INVITED)
    return [
        f"# Generated by `provisioner export` from organization {_comment(settings.name)}"
        f" ({_comment(settings.org_id)}):",
        f"# {_count(len(current.users), 'user')} ({pending} pending),"
        f" {_count(len(current.workspaces), 'workspace')},"
        f" {_count(len(current.memberships), 'membership')}.",
        "# `provisioner plan` against this file shows no changes; edit it from here.",
    ]


def _organization_lines(settings: _Settings) -> list[str]:
    where = (
        f"  api_url: {_scalar(settings.api_url)}"
        if settings.api_url
        else f"  region: {_scalar(settings.region or '')}"
    )
    per_instance = (
        [f"  workspace_token_env: {_scalar(settings.workspace_token_env)}"]
        if settings.workspace_token_env
        else []
    )
    return [
        "version: 1",
        "organization:",
        f"  name: {_scalar(settings.name)}",
        where,
        f"  token_env: {_scalar(settings.token_env)}",
        *per_instance,
        f"workspace_name_format: {_scalar(settings.workspace_name_format)}",
    ]


def _environment_lines(layout: _Layout) -> list[str]:
    if not layout.env_members:
        return []
    lines = ["environments:"]
    for env, members in layout.env_members.items():
        lines.append(f"  {_scalar(env)}:")
        lines += _members("    ", "members", members, layout.groups)
    return lines


def _user_lines(current: State, declared: Declared) -> list[str]:
    lines = ["users:" if current.users else "users: []"]
    for user in sorted(current.users.values(), key=lambda u: u.email):
        service = ", service_account: true" if user.email in declared.service_accounts else ""
        entry = f"  - {{email: {_scalar(user.email)}, role: {_scalar(user.role)}{service}}}"
        lines.append(entry + ("  # pending invitation" if user.status == INVITED else ""))
    return lines


def _group_lines(layout: _Layout) -> list[str]:
    if not layout.groups:
        return []
    lines = ["groups:"]
    for members, name in layout.groups.items():
        lines += _members("  ", name, members, {})
    return lines


def _workspace_lines(
    settings: _Settings, current: State, layout: _Layout, declared: Declared, variables: list[str]
) -> list[str]:
    lines = ["workspaces:"] if layout.folded or layout.plain else []
    for folded in layout.folded:
        lines.append(f"  - name: {_scalar(folded.name)}")
        lines.append(f"    environments: {_flow(folded.members)}")
        own = {env: m for env, m in folded.members.items() if m}
        if own:
            lines.append("    members:")
            for env, members in own.items():
                lines += _members("      ", env, members, layout.groups)
        by_env: dict[str | None, str] = {
            env: settings.workspace_name_format.format(workspace=folded.name, environment=env)
            for env in folded.members
        }
        lines += _settings_lines(current, folded.name, by_env, declared, variables)
    for name, members in layout.plain:
        lines.append(f"  - name: {_scalar(name)}")
        lines += _members("    ", "members", members, layout.groups)
        lines += _settings_lines(current, name, {None: name}, declared, variables)
    return lines


def _variables_header(variables: list[str]) -> list[str]:
    return [
        "# The API never returns secrets: set these variables to the secrets' values",
        "# before `provisioner plan` (each is named under transcription/platforms below):",
        *(f"#   {v}" for v in variables),
    ]


def _policy_lines(current: State) -> list[str]:
    # Keep the loader's min_admins check satisfiable for an organization
    # that (unusually) has no admin at all.
    admins = sum(1 for u in current.users.values() if u.role == ADMIN)
    return ["policy:", f"  min_admins: {min(1, admins)}"]


# Environments (None for a workspace without) by what an entry declares.
_EnvsBy = dict[Any, list[str | None]]
# The same entries' secret destinations by environment, where not the default name.
_SinksBy = dict[Any, dict[str | None, str]]


def _settings_lines(
    current: State, base: str, instances: dict[str | None, str], declared: Declared, variables: list[str]
) -> list[str]:
    """The ``webhooks``, ``api_keys``, ``transcription`` and ``platforms`` of one workspace entry.

    ``instances`` maps environment (None for a workspace without) to instance
    name. An entry that is not in every instance names its ``environments``.
    """
    only = _environments_line(list(instances))
    out = _webhook_lines(*_webhooks_by_entry(current, instances), only)
    out += _api_key_lines(*_keys_by_entry(current, instances, declared), only)
    creds = _credentials_by_provider(current, instances)
    # Google login groups (Recall.ai's v2 API) are read for instances exported one by one.
    groups = [
        g for (ws, _), g in sorted(current.google_login_groups.items()) if [ws] == list(instances.values())
    ]
    for section, kind in (("transcription", False), ("platforms", True)):
        chosen = {p: c for p, c in sorted(creds.items()) if (_kind(p) == PLATFORM) == kind}
        if chosen or (kind and groups):
            out.append(f"    {section}:")
        if kind and groups:
            out += _google_group_lines(base, groups, variables)
        if chosen:
            out += _credential_lines(current, base, instances, chosen, only, variables)
    return out


def _environments_line(everywhere: list[str | None]) -> Callable[[list[str | None]], list[str]]:
    """The ``environments:`` line of an entry that is not in every instance (none otherwise)."""

    def only(envs: list[str | None]) -> list[str]:
        if envs == everywhere or envs == [None]:
            return []
        return [f"        environments: {_flow(e for e in envs if e is not None)}"]

    return only


def _webhooks_by_entry(current: State, instances: dict[str | None, str]) -> tuple[_EnvsBy, _SinksBy]:
    """Webhooks by (url, events, enabled), and their sinks where not the default name."""
    hooks: _EnvsBy = {}
    sinks: _SinksBy = {}
    for env, name in instances.items():
        for (ws, _), hook in sorted(current.webhooks.items()):
            if ws != name:
                continue
            entry = (hook.url, hook.events, hook.enabled)
            hooks.setdefault(entry, []).append(env)
            host = urlsplit(hook.url).hostname
            if hook.sink_name and hook.sink_name != default_name(name, webhook_slug(hook.url, host)):
                sinks.setdefault(entry, {})[env] = hook.sink_name
    return hooks, sinks


def _webhook_lines(
    hooks: _EnvsBy, sinks: _SinksBy, only: Callable[[list[str | None]], list[str]]
) -> list[str]:
    if not hooks:
        return []
    out = ["    webhooks:"]
    for (url, events, enabled), envs in hooks.items():
        out.append(f"      - url: {_scalar(url)}")
        out.append(f"        events: {_flow(events)}")
        if not enabled:
            out.append("        enabled: false")
        sink = _templated(sinks.get((url, events, enabled), {}), envs)
        if sink is not None:
            out.append(f"        sink: {_scalar(sink)}")
        out += only(envs)
    return out


def _keys_by_entry(
    current: State, instances: dict[str | None, str], declared: Declared
) -> tuple[_EnvsBy, _SinksBy]:
    """The tool's live keys by (name, owner, rotate_every in seconds), and their sinks
    where not the default name. Only the tool's own keys (the server recorded where
    their secret went): one made by hand would be declared, then made again."""
    keys: _EnvsBy = {}
    sinks: _SinksBy = {}
    for env, name in instances.items():
        for key in sorted(current.api_keys.values(), key=lambda k: (k.name, k.owner)):
            if key.workspace != name or key.disabled or key.sink_name is None:
                continue
            entry = (key.name, key.owner, declared.key_rotation_s.get((name, key.name)))
            envs_of = keys.setdefault(entry, [])
            if env not in envs_of:
                envs_of.append(env)
            if key.sink_name != default_name(name, api_key_slug(key.name)):
                sinks.setdefault(entry, {})[env] = key.sink_name
    return keys, sinks


def _api_key_lines(
    keys: _EnvsBy, sinks: _SinksBy, only: Callable[[list[str | None]], list[str]]
) -> list[str]:
    if not keys:
        return []
    out = ["    api_keys:"]
    for entry, envs in sorted(keys.items(), key=lambda item: str(item[0])):
        name, owner, rotate = entry
        out.append(f"      - name: {_scalar(name)}")
        out.append(f"        owner: {_scalar(owner)}")
        if rotate is not None:
            out.append(f"        rotate_every: {_duration(rotate)}")
        sink = _templated(sinks.get(entry, {}), envs)
        if sink is not None:
            out.append(f"        sink: {_scalar(sink)}")
        out += only(envs)
    return out


def _duration(seconds: int) -> str:
    """``rotate_every`` as the config writes it: whole days, else whole hours."""
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"


def _credentials_by_provider(
    current: State, instances: dict[str | None, str]
) -> dict[str, tuple[Credential, list[str | None]]]:
    creds: dict[str, tuple[Credential, list[str | None]]] = {}
    for env, name in instances.items():
        for (ws, provider), credential in sorted(current.credentials.items()):
            if ws == name:
                creds.setdefault(provider, (credential, []))[1].append(env)
        app = current.zoom_apps.get(name)
        if app is not None:
            # Written as ``platforms.zoom`` (Recall.ai's v2 API); its secrets as variables.
            fields = (("client_id", app.client_id), ("kind", app.kind))
            zoom = Credential(name, ZOOM, fields, digests=app.digests)
            creds.setdefault(ZOOM, (zoom, []))[1].append(env)
    return creds


def _google_group_lines(base: str, groups: list[GoogleLoginGroup], variables: list[str]) -> list[str]:
    """The ``google_login_groups`` of one instance; each login's PEM key and certificate as variables."""
    out = ["      google_login_groups:"]
    for group in groups:
        out.append(f"        - name: {_scalar(group.name)}")
        out.append(f"          login_mode: {_scalar(group.login_mode)}")
        out.append("          logins:" if group.logins else "          logins: []")
        for login in group.logins:
            out.append(f"            - email: {_scalar(login.email)}")
            out.append(f"              sso_v2_workspace_domain: {_scalar(login.sso_v2_workspace_domain)}")
            for secret, _ in login.digests:
                name = f"SECRET_{_var_part(base)}_GOOGLE_{_var_part(login.email)}_{_var_part(secret)}"
                out.append(f"              {secret}: {{env: {_scalar(name)}}}")
                variables.append(name)
            if not login.is_active:
                out.append("              is_active: false")
    return out


def _credential_lines(
    current: State,
    base: str,
    instances: dict[str | None, str],
    chosen: dict[str, tuple[Credential, list[str | None]]],
    only: Callable[[list[str | None]], list[str]],
    variables: list[str],
) -> list[str]:
    out: list[str] = []
    for provider, (credential, envs) in chosen.items():
        out.append(f"      {_scalar(provider)}:")
        for field_name, value in credential.fields:
            out.append(f"        {_scalar(field_name)}: {_scalar(value)}")
        for secret in credential_secrets(credential):
            recorded = _recorded_reference(current, instances, provider, secret, envs)
            if recorded is not None:
                out.append(f"        {_scalar(secret)}: {recorded}")
            else:
                variable = _variable(base, provider, secret, envs, variables)
                out.append(f"        {_scalar(secret)}: {{env: {_scalar(variable)}}}")
        out += only(envs)
    return out


def _variable(base: str, provider: str, secret: str, envs: list[str | None], variables: list[str]) -> str:
    """The generated variable a secret is referenced by (templated over environments);
    each environment's name of it is added to ``variables``."""
    stem = f"SECRET_{_var_part(base)}"
    suffix = f"_{_var_part(provider)}_{_var_part(secret)}"
    variables.extend(stem + (f"_{_var_part(env)}" if env is not None else "") + suffix for env in envs)
    return stem + ("_{ENVIRONMENT}" if None not in envs else "") + suffix


def credential_secrets(credential: Credential) -> list[str]:
    """The secrets a credential holds, by name (digests for an admin's key, sources for any key)."""
    return sorted({name for name, _ in credential.digests} | {name for name, _ in credential.sources})


def _templated(values: dict[str | None, str], envs: list[str | None]) -> str | None:
    """One config string for a value per environment: ``{ENVIRONMENT}`` where it differs; None if none.

    None also when the environments' values do not follow one template (the
    caller then falls back to what it writes otherwise).
    """
    if not values or set(values) != set(envs):
        return None
    forms = {
        value.replace(_var_part(env), "{ENVIRONMENT}").replace(env, "{environment}")
        if env is not None
        else value
        for env, value in values.items()
    }
    return forms.pop() if len(forms) == 1 else None


def _recorded_reference(
    current: State, instances: dict[str | None, str], provider: str, secret: str, envs: list[str | None]
) -> str | None:
    """The reference the server recorded for a secret's last write, as config text, or None.

    A credential written by this tool carries ``env NAME vN`` / ``file PATH
    vN`` for each secret; exporting it back keeps the next plan empty.
    """
    labels: dict[str | None, tuple[str, str, int]] = {}
    for env in envs:
        credential = current.credentials.get((instances[env], provider))
        label = dict(credential.sources).get(secret) if credential is not None else None
        parsed = _parse_label(label)
        if parsed is None:
            return None
        labels[env] = parsed
    if len({(source, version) for source, _, version in labels.values()}) != 1:
        return None
    source, _, version = next(iter(labels.values()))
    name = _templated({env: n for env, (_, n, _) in labels.items()}, envs)
    if name is None:
        return None
    tail = f", version: {version}" if version != 1 else ""
    return f"{{{source}: {_scalar(name)}{tail}}}"


def _parse_label(label: str | None) -> tuple[str, str, int] | None:
    """``env NAME v2`` as ``("env", "NAME", 2)``; None for anything else."""
    if label is None:
        return None
    match = re.fullmatch(r"(env|file) (\S+) v([1-9][0-9]{0,6})", label)
    return None if match is None else (match.group(1), match.group(2), int(match.group(3)))


def _kind(provider: str) -> str:
    """Which config section ``provider`` is written in (``platforms.zoom`` too)."""
    spec = CONFIG_PROVIDERS.get(provider)
    return spec.kind if spec is not None else ""


def _members(indent: str, key: str, members: frozenset[str], groups: dict[frozenset[str], str]) -> list[str]:
    """``key: [...]`` for a member set: a group reference when one names it exactly."""
    items = [f"@{groups[members]}"] if members in groups else sorted(members)
    line = f"{indent}{_scalar(key)}: {_flow(items)}"
    if len(line) <= _FLOW_WIDTH or not items:
        return [line]
    return [f"{indent}{_scalar(key)}:"] + [f"{indent}  - {_scalar(i)}" for i in items]


def _flow(items: Iterable[str]) -> str:
    return "[" + ", ".join(_scalar(i) for i in items) + "]"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _comment(text: str) -> str:
    """Text safe inside a comment: one line, printable."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar that reads back as the same string anywhere.

    Plain when it is unambiguous both in block and in flow context; else
    double-quoted with every non-printable character escaped.
    """
    if _PLAIN.match(text) and yaml.safe_load(f"[{text}]") == [text]:
        return text
    return _double_quoted(text)


# Characters YAML double-quoted scalars may carry literally (YAML 1.1/1.2
# printable set, minus the characters PyYAML treats as line breaks or BOM).
def _yaml_printable(c: str) -> bool:
    o = ord(c)
    if c in '\\"':
        return False
    if 0x20 <= o <= 0x7E:
        return True
    if 0xA0 <= o <= 0xD7FF and c not in "\u2028\u2029":
        return True
    return 0xE000 <= o <= 0xFFFD and o != 0xFEFF


def _double_quoted(text: str) -> str:
    out = []
    for c in text:
        if _yaml_printable(c):
            out.append(c)
        elif c in '\\"':
            out.append("\\" + c)
        elif ord(c) < 0x20:
            # json.dumps gives the short escapes (\n, \t) and \uXXXX for the
            # other control characters; YAML reads them the same way.
            out.append(json.dumps(c)[1:-1])
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'
