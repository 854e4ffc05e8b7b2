"""Where to send requests and with which key: the region, ``--api-url`` or an embedded sandbox.

The key is read only from the environment variable the config names
(``organization.token_env``); the command line never accepts one, because it
would leak into shell history and CI logs. ``--sandbox DBPATH`` starts an
in-process sandbox server on a loopback port and needs no key at all.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from provisioner.errors import ProvisionerError
from provisioner.model import OrganizationSettings

SANDBOX_ADMIN_EMAIL = "admin@example.com"


class EndpointError(ProvisionerError):
    """The endpoint or its key could not be resolved."""


@dataclass(frozen=True)
class Endpoint:
    """A resolved API endpoint.

    ``signing_key`` signs saved plans (HMAC); it is the API key for a real
    endpoint, so a plan file can only be applied with the key it was made for.
    ``label`` names the endpoint in messages and never contains the key.
    """

    base_url: str
    token: str = field(repr=False)
    signing_key: str = field(repr=False)
    label: str

    def __repr__(self) -> str:  # the key stays out of every repr
        return f"Endpoint(base_url={self.base_url!r}, label={self.label!r})"


@contextmanager
def open_endpoint(
    settings: OrganizationSettings,
    *,
    api_url: str | None = None,
    sandbox: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Endpoint]:
    """Resolve the endpoint for one organization; stop an embedded sandbox on exit.

    Precedence: ``sandbox`` (embedded server), then ``api_url``, then the
    config's ``api_url`` or ``region``.
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
        try:
            running = start_sandbox(
                db, admin_email=SANDBOX_ADMIN_EMAIL, org_name=settings.name or "sandbox"
            )
        except SandboxError as error:
            raise EndpointError(f"--sandbox {db}: {error}") from None
        try:
            signing = "sandbox:" + hashlib.sha256(str(db.resolve()).encode()).hexdigest()
            yield Endpoint(running.base_url, running.token, signing, f"sandbox {db}")
        finally:
            running.stop()
        return

    env = os.environ if environ is None else environ
    base_url = (api_url or "").rstrip("/") or settings.base_url()
    token = env.get(settings.token_env, "").strip()
    if not token:
        raise EndpointError(
            f"no API key: the environment variable {settings.token_env} is not set or empty. "
            f"Export the key in {settings.token_env} (the config's organization.token_env), "
            "or use --sandbox DBPATH to try the tool on an embedded sandbox"
        )
    yield Endpoint(base_url, token, token, base_url)
