"""``export``: an existing organization as a version-1 config, to adopt it.

A plan against the exported config shows no changes. With the audit log of
earlier applies, what only the applied config could say (service accounts,
each key's ``rotate_every``) is written back too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from provisioner.api.reader import read_state_and_identity
from provisioner.audit import last_declared
from provisioner.errors import ProvisionerError
from provisioner.export import Exported, export_document
from provisioner.model import DEFAULT_NAME_FORMAT, DEFAULT_TOKEN_ENV, OrganizationSettings
from provisioner.service.connection import connect


class ExportError(ProvisionerError):
    """The export could not be written."""


@dataclass(frozen=True)
class ExportOptions:
    """Which organization to export, and how to write its config.

    One of ``region``, ``api_url`` or ``sandbox`` says where the organization
    is (the caller checks). ``environments`` fold workspaces named by
    ``workspace_name_format`` into one entry.
    """

    region: str | None = None
    api_url: str | None = None
    sandbox: str | None = None
    token_env: str = DEFAULT_TOKEN_ENV
    environments: Sequence[str] = ("development", "staging", "production")
    workspace_name_format: str = DEFAULT_NAME_FORMAT
    parallelism: int = 8
    audit_log: str | None = None  # earlier applies' log: what the config declared beyond the API


def export_org(options: ExportOptions, *, output: str | None = None) -> Exported:
    """The organization's config (and the secret variables it names); also written to ``output``."""
    api_url, region = options.api_url, options.region
    settings = OrganizationSettings(
        region=region or ("us-east-1" if not api_url else None), api_url=api_url, token_env=options.token_env
    )
    with connect(settings, api_url=None if options.sandbox else api_url, sandbox=options.sandbox) as (
        _,
        client,
    ):
        current, identity = read_state_and_identity(client, parallelism=options.parallelism)
    declared = (
        None if options.audit_log is None else last_declared(options.audit_log, identity.organization.name)
    )
    exported = export_document(
        identity,
        current,
        environments=list(options.environments),
        workspace_name_format=options.workspace_name_format,
        region=None if api_url else (region or identity.organization.region),
        api_url=api_url,
        token_env=options.token_env,
        declared=declared,
    )
    if options.audit_log is not None and declared is None:
        exported = replace(exported, unrecorded=True)
    if output:
        try:
            Path(output).write_text(exported.text, encoding="utf-8")
        except OSError as error:
            raise ExportError(f"cannot write {output}: {error.strerror}") from None
    return exported
