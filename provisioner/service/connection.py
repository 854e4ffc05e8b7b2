"""The endpoint and an API client for one organization, opened the same way by every command.

Decisions worth knowing:

* ``connect`` takes the organization's settings, not a whole config: ``export``
  has no config yet, only the region, URL and key variable it was given.
* The client's limits can be tuned by hidden ``PROVISIONER_*`` variables
  (documented in docs/guarantees.md) so that tests and soak runs can make
  retries fast; they tune limits only, never turn a safety off (TLS,
  redirects, the key's origin).
* Pacing to Recall.ai's published limits is the run's ``Pace`` (``--pace``,
  ``PROVISIONER_PACE``; ``api/pacing.py``): one ``Pacing`` per connection,
  shared by the management client (when the pace covers its endpoint: by
  default a region's, not a sandbox's) and every workspace's v2 client.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

from provisioner import __version__
from provisioner.api.client import ApiClient
from provisioner.api.pacing import AUTO_PACE, Pace, Pacing
from provisioner.apiurl import UrlProblem, is_regional, parse_api_url
from provisioner.endpoint import Endpoint, EndpointError, open_endpoint
from provisioner.errors import ProvisionerError
from provisioner.escape import terminal
from provisioner.frozen import frozen
from provisioner.model import Config, OrganizationSettings

CLIENT_LIMIT_ENV: dict[str, tuple[str, type]] = {
    "PROVISIONER_MAX_RETRY_AFTER": ("max_retry_after", float),
    "PROVISIONER_MAX_RETRIES": ("max_retries", int),
    "PROVISIONER_BACKOFF_MAX": ("backoff_max", float),
    "PROVISIONER_READ_TIMEOUT": ("read_timeout", float),
    "PROVISIONER_DEADLINE": ("deadline", float),
}

# The largest value each kind of limit takes: a day of seconds, a hundred retries.
# Beyond them a socket timeout overflows; nobody means them anyway.
_LIMIT_MAXIMUM: dict[type, float] = {float: 86_400.0, int: 100}


def client_limits_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ApiClient keyword arguments from the ``PROVISIONER_*`` limit variables that are set.

    Each must be a plain, finite, non-negative number no larger than its
    maximum (``nan``, ``inf`` and ``1e400`` are refused with a message, not a
    traceback later in the HTTP client).
    """
    env = os.environ if environ is None else environ
    limits: dict[str, Any] = {}
    for name, (kwarg, kind) in CLIENT_LIMIT_ENV.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw) if raw.isascii() and len(raw) < 40 else -1
        except ValueError:
            value = -1
        maximum = _LIMIT_MAXIMUM[kind]
        if not (math.isfinite(value) and 0 <= value <= maximum):
            shown = terminal(raw[:40]) + ("…" if len(raw) > 40 else "")
            raise ProvisionerError(
                f"the environment variable {name}={shown!r} is not a "
                f"{'whole number' if kind is int else 'number'} from 0 to {maximum:g}; fix or unset it"
            )
        limits[kwarg] = value
    return limits


@contextmanager
def connect(
    settings: OrganizationSettings,
    *,
    api_url: str | None,
    sandbox: str | None,
    create_sandbox: bool = False,
    pace: Pace = AUTO_PACE,
) -> Iterator[tuple[Endpoint, ApiClient]]:
    """The endpoint and a client for one organization, both closed on exit.

    Only apply passes ``create_sandbox``: it may start a new sandbox
    organization (``Endpoint.created`` then says so). ``pace`` says whether
    the client keeps to Recall.ai's published limits (by default only on a
    region's endpoint).
    """
    limits = client_limits_from_env()
    with open_endpoint(settings, api_url=api_url, sandbox=sandbox, create_sandbox=create_sandbox) as endpoint:
        with ApiClient(
            endpoint.base_url,
            endpoint.token,
            user_agent=f"provisioner/{__version__}",
            pacing=management_pacing(pace, pace.pacing(), endpoint),
            **limits,
        ) as client:
            yield endpoint, client


def management_pacing(pace: Pace, pacing: Pacing | None, endpoint: Endpoint) -> Pacing | None:
    """``pacing`` if ``pace`` covers the management contract at ``endpoint``, else None."""
    try:
        regional = is_regional(parse_api_url(endpoint.base_url))
    except UrlProblem:  # the client refuses such a URL with its own message
        regional = False
    return pacing if pace.paces_management(regional) else None


@frozen
class Connection:
    """What one run of one config talks to.

    ``client`` speaks the management contract with the organization's key; it
    is None for an integrations-only config, which needs only Recall.ai's v2
    API. ``workspace_clients`` speak the v2 API, one per instance with its own key.
    """

    endpoint: Endpoint
    client: ApiClient | None
    workspace_clients: Mapping[str, ApiClient]


@contextmanager
def connect_config(
    config: Config,
    *,
    api_url: str | None,
    sandbox: str | None,
    create_sandbox: bool = False,
    pace: Pace = AUTO_PACE,
) -> Iterator[Connection]:
    """``connect`` for a config: its management client unless integrations-only, and its v2 clients.

    All of them share one ``Pacing`` (per key and limit class), as ``pace`` says.
    """
    limits = client_limits_from_env()
    pacing = pace.pacing()
    needs_organization_key = not config.integrations_only
    with (
        open_endpoint(
            config.organization,
            api_url=api_url,
            sandbox=sandbox,
            create_sandbox=create_sandbox,
            require_key=needs_organization_key,
        ) as endpoint,
        ExitStack() as stack,
    ):
        client = None
        if needs_organization_key:
            client = stack.enter_context(
                ApiClient(
                    endpoint.base_url,
                    endpoint.token,
                    user_agent=f"provisioner/{__version__}",
                    pacing=management_pacing(pace, pacing, endpoint),
                    **limits,
                )
            )
        clients = workspace_clients(config.workspace_token_envs, endpoint, stack, limits, pacing=pacing)
        yield Connection(endpoint, client, clients)


def v2_base_url(base_url: str) -> str:
    """Recall.ai's v2 API beside the management base URL: the same origin, ``/api/v2``."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/api/v2"


def workspace_clients(
    token_envs: Mapping[str, str],
    endpoint: Endpoint,
    stack: ExitStack,
    limits: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    pacing: Pacing | None,
) -> dict[str, ApiClient]:
    """A v2 client per workspace instance, with its own key, all paced by ``pacing`` (closed with ``stack``).

    Every unset key variable is reported at once, before any request. The
    embedded sandbox makes the keys it is asked for, as the dashboard would.
    """
    env = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    missing: list[str] = []
    for instance, variable in sorted(token_envs.items()):
        key = env.get(variable, "").strip()
        if not key and endpoint.mint_workspace_key is not None:
            key = endpoint.mint_workspace_key(instance)
        if key:
            keys[instance] = key
        else:
            missing.append(f"{variable} (the key of {instance})")
    if missing:
        raise EndpointError(
            "no workspace key: " + "; ".join(terminal(m) for m in missing) + " not set. Export each "
            "workspace instance's own Recall.ai API key (made in its dashboard) in its variable"
        )
    base = v2_base_url(endpoint.base_url)
    return {
        instance: stack.enter_context(
            ApiClient(
                base, key, user_agent=f"provisioner/{__version__}", pacing=pacing, page_size=None, **limits
            )
        )
        for instance, key in keys.items()
    }
