"""Where to send requests and with which key: the region, ``--api-url`` or an embedded sandbox.

The key is read only from the environment variable the config names
(``organization.token_env``); the command line never accepts one, because it
would leak into shell history and CI logs. ``--sandbox DBPATH`` starts an
in-process sandbox server on a loopback port and needs no key at all.

Decisions worth knowing:

* The config is written by whoever opens a pull request, so it alone cannot
  choose where the key goes nor which secret is sent. A config's ``api_url``
  must be a regional endpoint or loopback (a local sandbox) unless the
  operator allows it outside the repo (``--api-url``, or
  ``PROVISIONER_ALLOWED_API_URLS``); its ``token_env`` must name a variable
  with RECALL or PROVISIONER as a word of its name unless the operator allows
  it in ``PROVISIONER_ALLOWED_TOKEN_ENVS``. ``OperatorAllowances`` holds what
  the operator allowed; the config checks (``provisioner.config.build``) use it.
* A key that a header cannot carry is refused before any request, with a
  message that names the position and the kind of character, never the key.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import field
from pathlib import Path

from provisioner.apiurl import (
    EMBEDDED_SANDBOX,
    ApiUrl,
    UrlProblem,
    is_loopback_host,
    is_regional,
    parse_api_url,
)
from provisioner.errors import ProvisionerError
from provisioner.frozen import frozen
from provisioner.model import OrganizationSettings
from provisioner.secrets.refs import allowed_secret_envs

SANDBOX_ADMIN_EMAIL = "admin@example.com"

ALLOWED_API_URLS_ENV = "PROVISIONER_ALLOWED_API_URLS"
ALLOWED_TOKEN_ENVS_ENV = "PROVISIONER_ALLOWED_TOKEN_ENVS"
# A config's token_env: RECALL or PROVISIONER is one word of the name
# (RECALL_API_KEY, ACME_RECALL_API_KEY, PROVISIONER_TEST_KEY). GITHUB_TOKEN,
# AWS_SECRET_ACCESS_KEY and the like are not: a pull request must not be able
# to send another secret of the CI job anywhere.
TOKEN_ENV_PATTERN = re.compile(r"([A-Z0-9]+_)*(RECALL|PROVISIONER)(_[A-Z0-9]+)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN_NAME_CHARS = 64


class EndpointError(ProvisionerError):
    """The endpoint or its key could not be resolved."""


@frozen
class OperatorAllowances:
    """What the operator allowed outside the repo: extra API URLs and key variables.

    ``api_urls`` are exact base URLs, or origins (no path) that allow any path.
    """

    api_urls: tuple[ApiUrl, ...] = ()
    token_envs: frozenset[str] = frozenset()
    # Globs of variables a config's ``{env: NAME}`` may read beyond the naming rule
    # (``PROVISIONER_ALLOWED_SECRET_ENVS``; see ``provisioner.secrets.refs``).
    secret_envs: tuple[str, ...] = ()

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, api_url: str | None = None
    ) -> OperatorAllowances:
        """The allowances from ``PROVISIONER_ALLOWED_*`` and ``--api-url`` (``api_url``)."""
        env = os.environ if environ is None else environ
        urls: list[ApiUrl] = []
        entries = [e.strip() for e in env.get(ALLOWED_API_URLS_ENV, "").split(",")]
        for number, entry in enumerate(entries, start=1):
            if not entry:
                continue
            try:
                urls.append(parse_api_url(entry))
            except UrlProblem as problem:
                raise EndpointError(
                    f"entry {number} of the environment variable {ALLOWED_API_URLS_ENV} is not "
                    f"a usable API URL: {problem}; fix it (comma-separated URLs or origins)"
                ) from None
        if api_url:
            try:
                urls.append(parse_api_url(api_url.rstrip("/")))
            except UrlProblem:
                pass  # the client refuses it with a message of its own before connecting
        names = {n.strip() for n in env.get(ALLOWED_TOKEN_ENVS_ENV, "").split(",") if n.strip()}
        return cls(tuple(urls), frozenset(names), allowed_secret_envs(env))

    def allows_url(self, url: ApiUrl) -> bool:
        """Whether the operator allowed ``url`` (its exact base, or its origin)."""
        return any(
            allowed.base == url.base or (allowed.origin == url.origin and allowed.path.strip("/") == "")
            for allowed in self.api_urls
        )

    def api_url_problem(self, text: str) -> str | None:
        """Why a config may not name ``text`` as its ``api_url``, or None."""
        try:
            url = parse_api_url(text.rstrip("/"))
        except UrlProblem as problem:
            return f"this api_url is refused: {problem}"
        if is_loopback_host(url.host) or is_regional(url) or self.allows_url(url):
            return None
        return (
            "this api_url is not one of the regional endpoints "
            "(https://{us-east-1,us-west-2,eu-central-1,ap-northeast-1}.recall.ai/api/v1) nor "
            "loopback, and the API key would be sent there; a config cannot choose that alone. "
            "Use `region:` instead, or, as the operator, allow it outside the repo: pass the same "
            f"URL with --api-url, or add it to {ALLOWED_API_URLS_ENV} (comma-separated URLs or origins)"
        )

    def token_env_problem(self, name: str) -> str | None:
        """Why a config may not name ``name`` as its ``token_env``, or None."""
        if name in self.token_envs or not _ENV_NAME.fullmatch(name):
            return None  # allowed, or not a name at all (the schema reports that)
        if TOKEN_ENV_PATTERN.fullmatch(name):
            return None
        shown = name if len(name) <= _SHOWN_NAME_CHARS else "this variable"
        return (
            f"token_env may not name {shown}: a config may only name an environment variable "
            "with RECALL or PROVISIONER as a word of its name (e.g. RECALL_API_KEY, "
            "ACME_RECALL_API_KEY), so that a pull request cannot send another secret. Rename "
            f"the variable, or, as the operator, allow it with {ALLOWED_TOKEN_ENVS_ENV}={shown}"
        )


_SQLITE_MAGIC = b"SQLite format 3\x00"


_TYPO_SIMILARITY = 0.75  # of the names without suffix: sandbx/sandbox 0.92, quick/sandbox-0 0.14


def other_sandbox_databases(db: str | os.PathLike[str]) -> list[Path]:
    """The SQLite databases next to ``db`` whose names ``db`` looks like a typo of, closest first.

    Empty when ``db`` exists. A mistyped ``--sandbox`` path (``sandbx.db``
    beside ``sandbox.db``) would otherwise start a second, empty organization;
    a clearly different name (``quick.db``) is taken as meant. Only the file
    header is read: the reconciler imports nothing from the sandbox to
    recognise one.
    """
    path = Path(db)
    if path.exists():
        return []
    import difflib  # only for a missing database: the config checks import this module

    folder = path.parent
    try:
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []
    scored = []
    for entry in entries:
        similarity = difflib.SequenceMatcher(None, path.stem, entry.stem).ratio()
        if similarity >= _TYPO_SIMILARITY and _is_sqlite(entry):
            scored.append((-similarity, entry.name, folder / entry.name))
    return [found for _, _, found in sorted(scored)]


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts with SQLite's header."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def embedded_sandbox_label(db: str | os.PathLike[str]) -> str:
    """How a plan names an embedded sandbox: ``embedded sandbox (sandbox.db)``, stable across runs."""
    return f"{EMBEDDED_SANDBOX} ({db})"


@frozen
class Endpoint:
    """A resolved API endpoint.

    ``label`` names the endpoint in messages and never contains the key.
    ``created`` is True when an embedded sandbox database was created for it;
    ``embedded`` when the endpoint is an embedded sandbox, whose loopback port
    changes from run to run: a plan then names it by ``label``, not by URL.
    """

    base_url: str
    token: str = field(repr=False)
    label: str
    created: bool = False
    embedded: bool = False
    # The embedded sandbox makes a workspace instance's own v2 key on request, as
    # Recall.ai's dashboard would (see ``service.connection.workspace_clients``).
    mint_workspace_key: Callable[[str], str] | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # the key stays out of every repr
        return f"Endpoint(base_url={self.base_url!r}, label={self.label!r})"


@contextmanager
def open_endpoint(
    settings: OrganizationSettings,
    *,
    api_url: str | None = None,
    sandbox: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    create_sandbox: bool = False,
    require_key: bool = True,
) -> Iterator[Endpoint]:
    """Resolve the endpoint for one organization; stop an embedded sandbox on exit.

    Precedence: ``sandbox`` (embedded server), then ``api_url``, then the
    config's ``api_url`` or ``region``. A ``sandbox`` database that does not
    exist yet is created only when ``create_sandbox`` (apply does; a mistyped
    path given to plan or drift must not look like an empty organization).
    Without ``require_key`` (an integrations-only run, which uses each
    workspace's own key) the organization's key may be unset: the token is then "".
    """
    if sandbox is not None and api_url is not None:
        raise EndpointError("--sandbox and --api-url exclude each other; give one of them")
    if sandbox is not None:
        # Imported lazily: the reconciler shares only the contract with the
        # sandbox; this is the one seam where the CLI embeds it.
        from provisioner.sandbox import SandboxError, start_sandbox

        db = Path(sandbox)
        if db.parent and not db.parent.exists():
            raise EndpointError(f"--sandbox {db}: folder {db.parent} does not exist; create it first")
        created = not db.exists()
        if created and not create_sandbox:
            others = other_sandbox_databases(db)
            meant = (
                f"Did you mean --sandbox {shlex.quote(str(others[0]))}? " if others else "Check the path; "
            )
            raise EndpointError(
                f"--sandbox {db}: no such sandbox database. {meant}"
                f"`provisioner apply --sandbox {shlex.quote(str(db))}` creates a new sandbox "
                "organization there"
            )
        try:
            running = start_sandbox(db, admin_email=SANDBOX_ADMIN_EMAIL, org_name=settings.name or "sandbox")
        except SandboxError as error:
            raise EndpointError(f"--sandbox {db}: {error}") from None
        try:
            yield Endpoint(
                running.base_url,
                running.token,
                embedded_sandbox_label(db),
                created=created,
                embedded=True,
                mint_workspace_key=running.workspace_key,
            )
        finally:
            running.stop()
        return

    env = os.environ if environ is None else environ
    base_url = (api_url or "").rstrip("/") or settings.base_url()
    token = env.get(settings.token_env, "").strip()
    if not token and not require_key:
        yield Endpoint(base_url, "", base_url)
        return
    if not token:
        raise EndpointError(
            f"no API key: the environment variable {settings.token_env} is not set or empty. "
            f"Export the key in {settings.token_env} (the config's organization.token_env), "
            "or use --sandbox DBPATH to try the tool on an embedded sandbox"
        )
    # Imported here: the config checks import this module (``OperatorAllowances``)
    # and must not pay for the HTTP client.
    from provisioner.api.client import token_problem

    problem = token_problem(token)
    if problem:
        raise EndpointError(
            f"the API key in {settings.token_env} cannot be sent: {problem}. Check that the "
            "variable holds only the key (no quotes, spaces or line breaks inside it)"
        )
    yield Endpoint(base_url, token, base_url)
