"""Semantic checks and expansion: merged config data -> ``Config`` (the desired State).

The schema has already checked structure, but these checks still run when it
found errors (so that one run reports everything); they therefore skip
silently over anything of the wrong type, which the schema reported.

Decisions worth knowing:

* Every error is reported on its own: a member under an undeclared
  environment, or a grant with a bad ``expires``, still has its user or group
  checked. Nothing invalid is expanded, though (an invalid expiry must not
  become a permanent grant).
* Identities are keyed by ``text.identity_key`` (NFC, casefolded) everywhere:
  users, group entries, members, protected users and ignore globs.
* Work is bounded before it is done: the number of workspace instances is
  counted (and the limit checked) before any membership is expanded; over the
  limit, members are checked but not expanded. Expansion stops with an error
  past ``MAX_MEMBERSHIPS`` memberships or ``MAX_EXPANSION`` units of work
  (group entries resolved plus members produced), so a small file cannot make
  tens of millions of objects.
* Messages quote values through ``text.excerpt``: short and escaped.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any

from provisioner.config.issues import Issues
from provisioner.config.merge import Merged
from provisioner.config.settings import Destination, SettingsBuilder, parse_duration
from provisioner.config.suggest import closest
from provisioner.config.text import char_problem, email_problem, excerpt
from provisioner.config.yamlsource import Path
from provisioner.endpoint import OperatorAllowances
from provisioner.frozen import frozen
from provisioner.model import (
    DEFAULT_NAME_FORMAT,
    DEFAULT_TOKEN_ENV,
    DEFAULT_WORKSPACE_LIMIT,
    ROLES,
    ApiKey,
    Config,
    Credential,
    GoogleLoginGroup,
    Membership,
    OrganizationSettings,
    Policy,
    RemovalLimit,
    SecretUse,
    State,
    User,
    Webhook,
    Workspace,
    ZoomApp,
    identity_key,
    is_production_environment,
)

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+\Z")
_SUGGEST_LIMIT = 20  # looking for close names among thousands costs; suggest for the first few
_SUGGEST_BUDGET = 60_000  # options compared in all, across suggestions (~1 s at worst)
# About 3x the documented scale (100,000 memberships): what fits well inside 300 MB.
MAX_MEMBERSHIPS = 300_000
MAX_EXPANSION = 2_000_000


@frozen(slots=True)
class Grant:
    """The terms of one user's access to a workspace instance."""

    expires: datetime | None  # None: no end
    reason: str | None


@frozen(slots=True)
class _Members:
    """A list of member entries and where it sits in the config."""

    entries: list[Any]
    path: Path


@frozen(slots=True)
class _Instance:
    """One workspace instance the config declares, before any member is expanded."""

    name: str
    environment: str | None
    members: _Members
    name_path: Path
    base: str = ""  # the workspace's own name (before the environment is added)


@frozen(slots=True)
class _Targets:
    """What the workspaces section declares.

    ``unplaced`` are the member lists of instances that cannot exist (the
    workspace's name is invalid, or the environment is unknown): their
    entries are still checked, never expanded.
    """

    instances: list[_Instance]
    unplaced: list[_Members]


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _Builder:
    """One organization's checks; every method records issues rather than raising."""

    def __init__(self, merged: Merged, issues: Issues):
        self.m = merged
        self.data = merged.data
        self.issues = issues
        self.suggestions = 0
        self.compared = 0
        self.users: dict[str, User] = {}
        self.user_paths: dict[str, Path] = {}
        self.declared: set[str] = set()  # every email written under users, even malformed
        self.groups: dict[str, list[Any]] = {}
        self.group_members: dict[str, tuple[str, ...]] = {}
        self.environments: dict[str, Any] = {}
        self.webhooks: list[Webhook] = []
        self.credentials: list[Credential] = []
        self.secret_uses: list[tuple[SecretUse, Path]] = []
        self.api_keys: list[tuple[ApiKey, Path]] = []
        self.destinations: list[Destination] = []
        self.zoom_apps: list[ZoomApp] = []
        self.google_login_groups: list[GoogleLoginGroup] = []
        self.workspace_token_envs: dict[str, str] = {}  # instance -> its key's variable (v2 API)
        self.allowances = OperatorAllowances()
        self.settings_builder = SettingsBuilder(self.report, DEFAULT_TOKEN_ENV, self.check_email)
        self.work = 0  # expansion work done so far, against MAX_EXPANSION
        self.overflow = False  # expansion stopped (and reported): expand nothing more

    def report(self, path: Path, message: Any, **kw: Any) -> None:
        self.m.report(self.issues, path, message, **kw)

    def suggest(self, name: str, options: Any) -> str:
        self.suggestions += 1
        listed = list(options)
        self.compared += len(listed)
        if self.suggestions > _SUGGEST_LIMIT or self.compared > _SUGGEST_BUDGET:
            return ""
        close = closest(name, listed)
        return f"; did you mean `{excerpt(close)}`?" if close else ""

    def spend(self, units: int, path: Path) -> bool:
        """Count expansion work; False (after one report) once the budget is spent."""
        if self.overflow:
            return False
        self.work += units
        if self.work > MAX_EXPANSION:
            self.overflow = True
            self.report(
                path,
                f"expanding groups and members here goes past {MAX_EXPANSION:,} "
                "users across groups and workspaces, far beyond any real organization; "
                "list fewer members or nest fewer large groups",
            )
            return False
        return True

    # --- organization -------------------------------------------------------------
    def organization(self, allowances: OperatorAllowances) -> OrganizationSettings:
        if "organization" not in self.data:
            self.report((), "missing `organization`; add organization: {region: us-east-1}")
            return OrganizationSettings()
        org = _dict(self.data.get("organization"))
        region = org.get("region") if isinstance(org.get("region"), str) else None
        api_url = org.get("api_url") if isinstance(org.get("api_url"), str) else None
        if "region" in org and "api_url" in org:
            self.report(
                ("organization", "api_url"),
                "give either region or api_url, not both; remove one",
                at_key=True,
            )
        elif "region" not in org and "api_url" not in org and isinstance(self.data.get("organization"), dict):
            self.report(
                ("organization",),
                "organization needs a region (e.g. us-east-1) or an api_url; add one",
                at_key=True,
            )
        if api_url is not None and "region" not in org:
            problem = _check_api_url(api_url, allowances)
            if problem:
                self.report(("organization", "api_url"), problem)
        token_env = org.get("token_env")
        if isinstance(token_env, str):
            problem = allowances.token_env_problem(token_env)
            if problem:
                self.report(("organization", "token_env"), problem)
        name = org.get("name")
        self.free_text(name, ("organization", "name"))
        self.allowances = allowances
        workspace_token_env = org.get("workspace_token_env")
        return OrganizationSettings(
            region=region,
            api_url=api_url,
            token_env=token_env if isinstance(token_env, str) else DEFAULT_TOKEN_ENV,
            name=name if isinstance(name, str) else None,
            workspace_token_env=workspace_token_env if isinstance(workspace_token_env, str) else None,
        )

    def name_format(self) -> str:
        fmt: Any = self.data.get("workspace_name_format", DEFAULT_NAME_FORMAT)
        if not isinstance(fmt, str):
            return DEFAULT_NAME_FORMAT
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
        except ValueError:
            fields = ["?"]
        if sorted(set(fields)) != ["environment", "workspace"] or len(fields) != 2:
            self.report(
                ("workspace_name_format",),
                f"`{excerpt(fmt)}` must contain {{workspace}} and {{environment}} once each and no "
                f'other {{...}}; e.g. "{DEFAULT_NAME_FORMAT}"',
            )
            return DEFAULT_NAME_FORMAT
        return fmt

    def free_text(self, value: Any, path: Path) -> None:
        """Refuse hidden characters in free text (the schema caps its length)."""
        if isinstance(value, str):
            problem = char_problem(value)
            if problem:
                self.report(path, problem)

    # --- users and groups ---------------------------------------------------------
    def identity(self, value: Any, path: Path) -> str | None:
        """The identity key of a well-formed, visible email; None (reported) otherwise."""
        if not isinstance(value, str) or not EMAIL_RE.match(value):
            # The schema reported the form; name a hidden character it may not see.
            if isinstance(value, str) and "@" in value:
                problem = char_problem(value, spaces=True)
                if problem:
                    self.report(path, problem)
            return None
        problem = email_problem(value)
        if problem:
            self.report(path, problem)
            return None
        return identity_key(value)

    def collect_users(self) -> None:
        for i, entry in enumerate(_list(self.data.get("users"))):
            if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
                continue
            path = ("users", i, "email")
            # Declared even when malformed: references to it then get no second error.
            self.declared.add(identity_key(entry["email"]))
            email = self.identity(entry["email"], path)
            if email is None:
                continue
            if email in self.user_paths:
                self.report(
                    path,
                    f"user `{excerpt(email)}` is already defined at {{other}}; remove one of them",
                    other=self.user_paths[email],
                )
                continue
            self.user_paths[email] = path
            role = entry.get("role")
            if role in ROLES:
                self.users[email] = User(
                    email=email, role=role, service_account=entry.get("service_account") is True
                )

    def check_email(self, value: Any, path: Path) -> str | None:
        """A declared user's identity key, or None (with an issue when it is not one)."""
        email = self.identity(value, path)
        if email is None:
            return None
        if email not in self.declared:
            self.report(
                path,
                f"`{excerpt(value)}` is not a declared user; add it under users"
                f"{self.suggest(email, self.declared)}",
            )
            return None
        return email

    def collect_groups(self) -> None:
        groups = _dict(self.data.get("groups"))
        self.groups = {name: _list(v) for name, v in groups.items()}
        state: dict[str, int] = {}  # 1 = in progress, 2 = done
        for name in self.groups:
            self._resolve_group(name, [], state)

    def _resolve_group(self, name: str, trail: list[str], state: dict[str, int]) -> tuple[str, ...]:
        # Iterative depth is bounded by the number of groups; recursion keeps it readable.
        if state.get(name) == 2:
            return self.group_members[name]
        state[name] = 1
        trail.append(name)
        emails: set[str] = set()
        for i, entry in enumerate(self.groups[name]):
            path = ("groups", name, i)
            if isinstance(entry, str) and entry.startswith("@"):
                ref = entry[1:]
                if ref not in self.groups:
                    self.report(
                        path,
                        f"unknown group `@{excerpt(ref)}`; declare it under groups"
                        f"{self.suggest(ref, self.groups)}",
                    )
                elif state.get(ref) == 1:
                    cycle = trail[trail.index(ref) :] + [ref]
                    self.report(
                        path,
                        "groups include each other in a cycle: "
                        + " -> ".join("@" + excerpt(g) for g in cycle)
                        + "; remove one of these entries",
                    )
                else:
                    members = self._resolve_group(ref, trail, state)
                    if self.spend(len(members), path):
                        emails.update(members)
            else:
                email = self.check_email(entry, path)
                if email:
                    emails.add(email)
        trail.pop()
        state[name] = 2
        self.group_members[name] = tuple(sorted(emails))  # sorted: stable output order
        return self.group_members[name]

    def add_member(self, entry: Any, path: Path, grants: dict[str, Grant] | None) -> None:
        """Check one member entry and add the users it stands for to ``grants``.

        Every part of the entry is checked. With ``grants`` None (or when an
        earlier part is invalid) nothing is added: the entry is only checked.
        """
        expires: datetime | None = None
        reason: str | None = None
        ref = entry
        ref_path = path
        if isinstance(entry, dict):
            ref = entry.get("user")
            ref_path = path + ("user",)
            if "expires" in entry:
                expires = self.expires(entry["expires"], path + ("expires",))
                # An invalid expiry must not turn into a permanent grant; the
                # user is still checked below, so both problems are reported.
                if expires is None:
                    grants = None
            reason = entry.get("reason") if isinstance(entry.get("reason"), str) else None
            self.free_text(reason, path + ("reason",))
        if not isinstance(ref, str):
            return
        grant = Grant(expires=expires, reason=reason)
        if ref.startswith("@"):
            name = ref[1:]
            if name not in self.groups:
                self.report(
                    ref_path,
                    f"unknown group `{excerpt(ref)}`; declare it under groups"
                    f"{self.suggest(name, self.groups)}",
                )
                return
            members = self.group_members.get(name, ())
            if grants is not None and self.spend(len(members), ref_path):
                for member in members:
                    _grant(grants, member, grant)
        else:
            email = self.check_email(ref, ref_path)
            if email and grants is not None:
                _grant(grants, email, grant)

    def check_member(self, entry: Any, path: Path) -> None:
        """Check one member entry without expanding it."""
        self.add_member(entry, path, None)

    def expires(self, value: Any, path: Path) -> datetime | None:
        parsed, problem = parse_expires(value)
        if problem:
            self.report(path, problem)
        return parsed

    # --- environments and workspaces ---------------------------------------------
    def collect_environments(self) -> None:
        self.environments = dict(_dict(self.data.get("environments")))

    def env_grants(self, expand: bool) -> dict[str, dict[str, Grant]]:
        out: dict[str, dict[str, Grant]] = {}
        for env, spec in self.environments.items():
            grants: dict[str, Grant] = {}
            for i, entry in enumerate(_list(_dict(spec).get("members"))):
                self.add_member(entry, ("environments", env, "members", i), grants if expand else None)
            out[env] = grants
        return out

    def targets(self, fmt: str) -> _Targets:
        """Every workspace instance the config declares, without expanding any member."""
        targets = _Targets(instances=[], unplaced=[])
        for i, spec in enumerate(_list(self.data.get("workspaces"))):
            if not isinstance(spec, dict):
                continue
            # A bad name (reported by the schema) still gets its members checked.
            named = isinstance(spec.get("name"), str)
            base = spec["name"] if named else f"workspaces[{i}]"
            name_path: Path = ("workspaces", i, "name")
            envs = spec.get("environments")
            if not isinstance(envs, list):
                members = _Members(_list(spec.get("members")), ("workspaces", i, "members"))
                if named:
                    targets.instances.append(_Instance(base, None, members, name_path, base))
                else:
                    targets.unplaced.append(members)
                continue
            by_env = _dict(spec.get("members"))
            listed: list[str] = []
            for j, env in enumerate(envs):
                if not isinstance(env, str):
                    continue
                if env in listed:
                    self.report(
                        ("workspaces", i, "environments", j),
                        f"environment `{excerpt(env)}` is listed twice; remove one",
                    )
                    continue
                listed.append(env)
                members = _Members(_list(by_env.get(env)), ("workspaces", i, "members", env))
                if env not in self.environments:
                    self.report(
                        ("workspaces", i, "environments", j),
                        f"unknown environment `{excerpt(env)}`; declare it under "
                        f"environments{self.suggest(env, self.environments)}",
                    )
                    # No instance, but its members are still checked on their own.
                    targets.unplaced.append(members)
                elif named:
                    name = fmt.format(workspace=base, environment=env)
                    targets.instances.append(_Instance(name, env, members, name_path, base))
                else:
                    targets.unplaced.append(members)
            for env in by_env:
                if env not in listed:
                    self.report(
                        ("workspaces", i, "members", env),
                        f"this workspace has no environment `{excerpt(env)}`; add it to "
                        f"environments or remove these members"
                        f"{self.suggest(env, listed)}",
                        at_key=True,
                    )
                    for k, entry in enumerate(_list(by_env.get(env))):
                        self.check_member(entry, ("workspaces", i, "members", env, k))
        return targets

    def workspaces(self, fmt: str) -> tuple[list[Workspace], list[Membership]]:
        """Every instance and membership; each instance's settings go to ``self.settings``."""
        targets = self.targets(fmt)
        instances: list[Workspace] = []
        seen: dict[str, Path] = {}
        kept: list[_Instance] = []
        limit_path: Path = ()
        for target in targets.instances:
            if target.name in seen:
                self.report(
                    target.name_path,
                    f"workspace `{excerpt(target.name)}` is also produced at "
                    "{other}; workspace names must be unique",
                    other=seen[target.name],
                )
                continue
            seen[target.name] = target.name_path
            instances.append(self.instance_settings(target))
            kept.append(target)
            if len(instances) == DEFAULT_WORKSPACE_LIMIT + 1:
                limit_path = target.name_path
        # The limit is checked before anything is expanded: over it, members are
        # checked but not expanded (1,000 instances x 20,000 users is 20 million).
        expand = len(instances) <= DEFAULT_WORKSPACE_LIMIT
        if not expand:
            self.report(
                limit_path,
                f"the config declares {len(instances)} workspace instances; "
                f"an organization may have at most {DEFAULT_WORKSPACE_LIMIT} (count "
                "each workspace once per environment); remove some",
            )
        env_grants = self.env_grants(expand)
        memberships: list[Membership] = []
        for target in kept:
            env = target.environment
            grants = dict(env_grants.get(env, {})) if env and expand else {}
            for k, entry in enumerate(target.members.entries):
                self.add_member(entry, target.members.path + (k,), grants if expand else None)
            if expand and len(memberships) + len(grants) > MAX_MEMBERSHIPS:
                self.report(
                    target.members.path,
                    f"the config expands to more than {MAX_MEMBERSHIPS:,} "
                    "memberships (users x workspace instances), far beyond any real "
                    "organization; grant fewer users access, or to fewer workspaces",
                )
                expand = False
                self.overflow = True
                memberships.clear()  # never valid now: free the memory at once
            if expand and not self.overflow:
                memberships.extend(
                    Membership(workspace=target.name, user=email, expires=g.expires, reason=g.reason)
                    for email, g in grants.items()
                )
        for members in targets.unplaced:
            for k, entry in enumerate(members.entries):
                self.check_member(entry, members.path + (k,))
        if self.overflow:
            memberships.clear()
        return instances, memberships

    def instance_settings(self, target: _Instance) -> Workspace:
        """The instance's ``Workspace``, its webhooks and credentials collected on the way."""
        index = target.name_path[1]
        env = target.environment
        made = self.settings_builder.instance(
            target.name,
            target.base,
            env,
            self.environments.get(env) if env is not None else None,
            ("environments", env) if env is not None else (),
            _list(self.data.get("workspaces"))[index] if isinstance(index, int) else {},
            ("workspaces", index),
        )
        self.webhooks.extend(made.webhooks)
        self.credentials.extend(made.credentials)
        self.api_keys.extend(made.api_keys)
        self.destinations.extend(made.destinations)
        self.zoom_apps.extend(made.zoom_apps)
        self.google_login_groups.extend(made.google_login_groups)
        self.secret_uses.extend(zip(made.uses, made.use_paths, strict=True))
        self.workspace_key(target, index, needs_key=bool(made.zoom_apps or made.google_login_groups))
        return Workspace(name=target.name, environment=env, manages=made.manages)

    def workspace_key(self, target: _Instance, index: Any, *, needs_key: bool = False) -> None:
        """The variable of the instance's own key: its workspace's ``token_env``, else the organization's.

        Filled per instance, then held to ``token_env``'s rule (a RECALL or
        PROVISIONER word, or the operator's allow-list), so that a pull request
        cannot make the tool send another secret as a key.
        """
        spec = _list(self.data.get("workspaces"))[index] if isinstance(index, int) else {}
        own = spec.get("token_env") if isinstance(spec, dict) else None
        org = _dict(self.data.get("organization")).get("workspace_token_env")
        path: Path
        if isinstance(own, str):
            template, path = own, ("workspaces", index, "token_env")
        elif isinstance(org, str):
            template, path = org, ("organization", "workspace_token_env")
        else:
            if needs_key:
                self.report(
                    target.name_path,
                    f"{excerpt(target.name)} declares platforms.zoom or google_login_groups, on Recall.ai's "
                    "v2 API, which takes the instance's own key (a key reaches one workspace); set "
                    'organization.workspace_token_env, e.g. "RECALL_API_KEY_{ENVIRONMENT}", or this '
                    "workspace's token_env",
                )
            return
        name = self.settings_builder.fill(template, path, target.base, target.environment)
        if name is None:
            return
        problem = self.allowances.token_env_problem(name)
        if problem:
            self.report(
                path, problem.replace("token_env may not", f"the key variable of {target.name} may not")
            )
            return
        self.workspace_token_envs[target.name] = name

    def located_secret_uses(self) -> tuple[SecretUse, ...]:
        """Each secret reference with its ``file:line:column`` (the file is parsed again, once)."""
        by_doc: dict[int, tuple[Any, set[Path]]] = {}
        sources = []
        for use, path in self.secret_uses:
            doc, local = self.m.source(path)
            by_doc.setdefault(id(doc), (doc, set()))[1].add(local)
            sources.append((use, doc, local))
        infos = {key: doc.locate(paths) for key, (doc, paths) in by_doc.items()}
        return tuple(
            replace(use, where=f"{doc.file}:{infos[id(doc)][local].line}:{infos[id(doc)][local].column}")
            for use, doc, local in sources
        )

    def check_destinations(self) -> None:
        """Every server-made secret's destination name is unique across the organization.

        Two objects with one name would overwrite each other's secret in the
        sink (a new plain workspace ``notetaker_production`` next to the
        instance ``notetaker-production``, a key ``CI.DEPLOY`` next to
        ``ci-deploy``): each collision is an error naming both.
        """
        first: dict[str, Destination] = {}
        for d in self.destinations:
            seen = first.setdefault(d.name, d)
            if seen is d:
                continue
            self.report(
                d.path,
                f"{excerpt(d.what)} would be delivered as {d.name}, the name of {excerpt(seen.what)} "
                "(declared at {other}); each secret needs a name of its own: set a different `sink:`",
                other=seen.path,
            )

    def check_key_owners(self, policy: Policy, workspaces: list[Workspace]) -> None:
        """``policy.api_keys.production_owners: service_accounts``: no production key owned by a person."""
        if policy.production_key_owners != "service_accounts":
            return
        environment = {w.name: w.environment for w in workspaces}
        for key, path in self.api_keys:
            user = self.users.get(key.owner)
            if user is None or user.service_account:
                continue
            if is_production_environment(environment.get(key.workspace)):
                self.report(
                    path,
                    f"{excerpt(key.owner)} is a person, and policy.api_keys.production_owners is "
                    f"service_accounts: the production key {excerpt(key.name)} of {excerpt(key.workspace)} "
                    "must belong to a service account (declare one with service_account: true under "
                    "users, so that no production workflow breaks when a person leaves)",
                )

    # --- policy -------------------------------------------------------------------
    def policy(self) -> Policy:
        """The ``policy`` section (checked values; the schema reported the rest)."""
        spec = _dict(self.data.get("policy"))
        ignore = _dict(spec.get("ignore"))
        return Policy(
            min_admins=_count_or(spec.get("min_admins"), 1),
            max_removals=self._removal_limit(spec.get("max_removals")),
            protected_users=self._protected_users(spec.get("protected_users")),
            ignore_users=self._ignored_users(ignore.get("users")),
            ignore_workspaces=_strings(ignore.get("workspaces")),
            ignore_webhooks=_strings(ignore.get("webhooks")),
            ignore_credentials=_strings(ignore.get("credentials")),
            **_key_policy(_dict(spec.get("api_keys"))),
        )

    def _removal_limit(self, raw: Any) -> RemovalLimit:
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
            return RemovalLimit(count=raw, percent=None)
        if isinstance(raw, str) and re.fullmatch(r"(100|[0-9]{1,2})(\.[0-9]+)?%", raw):
            percent = float(raw[:-1])
            if percent <= 100:
                return RemovalLimit(count=None, percent=percent)
            self.report(("policy", "max_removals"), "a percentage is at most 100%")
        return RemovalLimit()

    def _protected_users(self, entries: Any) -> frozenset[str]:
        protected = set()
        for i, entry in enumerate(_list(entries)):
            email = self.check_email(entry, ("policy", "protected_users", i))
            if email:
                protected.add(email)
        return frozenset(protected)

    def _ignored_users(self, globs: Any) -> tuple[str, ...]:
        out = []
        for i, glob in enumerate(_list(globs)):
            if isinstance(glob, str):
                problem = char_problem(glob, spaces=True)
                if problem:
                    self.report(("policy", "ignore", "users", i), problem)
                out.append(identity_key(glob))
        return tuple(out)


def _count_or(value: Any, default: int) -> int:
    """A non-negative integer from the config, else ``default`` (the schema reported it)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(g for g in _list(value) if isinstance(g, str))


def _key_policy(keys: dict[Any, Any]) -> dict[str, Any]:
    """``policy.api_keys`` as ``Policy`` fields, each defaulted when absent or invalid."""
    owners, unmanaged = keys.get("production_owners"), keys.get("unmanaged")
    grace, recent = parse_duration(keys.get("rotation_grace")), keys.get("recent_use_days")
    return {
        "production_key_owners": owners if owners in ("anyone", "service_accounts") else "anyone",
        "unmanaged_keys": unmanaged if unmanaged in ("keep", "report", "disable") else "keep",
        "rotation_grace_s": grace if grace is not None else 24 * 3600,
        "recent_use_days": recent if isinstance(recent, int) and not isinstance(recent, bool) else 7,
    }


def _grant(grants: dict[str, Grant], email: str, grant: Grant) -> None:
    """Keep the grant that lasts longest: no expiry beats any expiry; ties keep the first."""
    current = grants.get(email)
    if current is None:
        grants[email] = grant
        return
    if current.expires is None:
        return
    if grant.expires is None or grant.expires > current.expires:
        grants[email] = grant


def parse_expires(value: Any) -> tuple[datetime | None, str | None]:
    """An ``expires`` value as an aware UTC datetime, or an explanation of what is wrong.

    A bare date lasts through that day: it expires at 00:00 UTC the next day.
    """
    hint = "write a date (2026-12-31) or a time with a zone (2026-12-31T18:00:00Z)"
    if isinstance(value, str):
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                value = date.fromisoformat(text)
            else:
                value = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            return None, f"`{value}` is not a valid date or time; {hint}"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return None, (
                f"`{value.isoformat()}` has no time zone; add one, e.g. {value.isoformat()}Z for UTC"
            )
        return value.astimezone(UTC), None
    if isinstance(value, date):
        return datetime.combine(value + timedelta(days=1), time(0, 0), tzinfo=UTC), None
    return None, f"expires must be a date or a time, not {type(value).__name__}; {hint}"


def _check_api_url(url: str, allowances: OperatorAllowances) -> str | None:
    """Why the config may not send the key to ``url``, or None (see ``provisioner.endpoint``).

    The URL is read by the same parser as the connection (``provisioner.apiurl``);
    the message never repeats it: the location points at it.
    """
    return allowances.api_url_problem(url)


def build_config(merged: Merged, issues: Issues, allowances: OperatorAllowances | None = None) -> Config:
    """Check the merged data and expand it into a ``Config`` (valid only if no issues).

    ``allowances`` are what the operator allowed outside the repo (default: from
    the environment); see ``provisioner.endpoint.OperatorAllowances``.
    """
    b = _Builder(merged, issues)
    allowances = allowances or OperatorAllowances.from_environ()
    organization = b.organization(allowances)
    b.settings_builder.token_env = organization.token_env
    b.settings_builder.secret_envs = allowances.secret_envs
    fmt = b.name_format()
    b.collect_users()
    b.collect_groups()
    b.collect_environments()
    workspaces, memberships = b.workspaces(fmt)
    policy = b.policy()
    b.check_key_owners(policy, workspaces)
    b.check_destinations()
    return Config(
        organization=organization,
        policy=policy,
        desired=State.build(
            list(b.users.values()),
            workspaces,
            memberships,
            b.webhooks,
            b.credentials,
            [key for key, _ in b.api_keys],
            b.zoom_apps,
            b.google_login_groups,
        ),
        workspace_name_format=fmt,
        environments=tuple(b.environments),
        secret_uses=b.located_secret_uses() if not issues else (),
        workspace_token_envs=MappingProxyType(dict(b.workspace_token_envs)),
    )
