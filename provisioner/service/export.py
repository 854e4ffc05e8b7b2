"""``export``: an existing organization as a version-1 config, to adopt it.

A plan against the exported config shows no changes. With the audit log of
earlier applies, what only the applied config could say (service accounts,
each key's ``rotate_every``) is written back too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from provisioner.api.pacing import AUTO_PACE, Pace
from provisioner.api.reader import read_state, read_state_and_identity
from provisioner.audit import last_declared
from provisioner.endpoint import OperatorAllowances, open_endpoint
from provisioner.errors import ProvisionerError
from provisioner.export import Exported, export_document
from provisioner.frozen import frozen
from provisioner.model import (
    ADMIN,
    DEFAULT_NAME_FORMAT,
    DEFAULT_TOKEN_ENV,
    Identity,
    Organization,
    OrganizationSettings,
    State,
    Workspace,
)
from provisioner.resources.base import RECALL_V2
from provisioner.service.connection import client_limits_from_env, connect, workspace_clients
from provisioner.service.plan import INTEGRATIONS_ONLY

# Runs of characters a variable name cannot hold, as the config's {WORKSPACE} fills them.
WORD_RUN = re.compile(r"[^A-Za-z0-9]+")


class ExportError(ProvisionerError):
    """The export could not be written."""


@frozen
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
    # Recall.ai's v2 API: the instances to export (there is no listing of workspaces
    # there) and the variable template of each one's own key. With these, the export
    # is integrations-only: no organization key, no request outside /api/v2/.
    instances: Sequence[str] = ()
    workspace_token_env: str | None = None
    pace: Pace = AUTO_PACE  # pacing to Recall.ai's published limits (``--pace``)


def export_org(options: ExportOptions, *, output: str | None = None) -> Exported:
    """The organization's config (and the secret variables it names); also written to ``output``."""
    api_url, region = options.api_url, options.region
    settings = OrganizationSettings(
        region=region or ("us-east-1" if not api_url else None), api_url=api_url, token_env=options.token_env
    )
    if options.workspace_token_env:
        current, identity = _read_instances(settings, options)
    else:
        with connect(
            settings, api_url=None if options.sandbox else api_url, sandbox=options.sandbox, pace=options.pace
        ) as (_, client):
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
        workspace_token_env=options.workspace_token_env,
    )
    if options.audit_log is not None and declared is None:
        exported = replace(exported, unrecorded=True)
    if output:
        try:
            Path(output).write_text(exported.text, encoding="utf-8")
        except OSError as error:
            raise ExportError(f"cannot write {output}: {error.strerror}") from None
    return exported


def _read_instances(settings: OrganizationSettings, options: ExportOptions) -> tuple[State, Identity]:
    """The named instances' v2 objects, each read with its own key (``{WORKSPACE}`` filled in)."""
    template = options.workspace_token_env or ""
    if "{ENVIRONMENT}" in template or "{environment}" in template:
        raise ExportError(
            "--workspace-token-env may use {WORKSPACE} only: the export writes each instance as its own entry"
        )
    if not options.instances:
        raise ExportError("--workspace-token-env needs --workspace for each instance to export")
    allowances = OperatorAllowances.from_environ()
    token_envs: dict[str, str] = {}
    for instance in options.instances:
        name = template.replace("{WORKSPACE}", WORD_RUN.sub("_", instance).upper())
        problem = allowances.token_env_problem(name)
        if problem:
            raise ExportError(problem)
        token_envs[instance] = name
    limits = client_limits_from_env()
    api_url = None if options.sandbox else options.api_url
    with (
        open_endpoint(settings, api_url=api_url, sandbox=options.sandbox, require_key=False) as endpoint,
        ExitStack() as stack,
    ):
        clients = workspace_clients(token_envs, endpoint, stack, limits, pacing=options.pace.pacing())
        current = read_state(
            None, parallelism=options.parallelism, workspace_clients=clients, families=(RECALL_V2,)
        )
    workspaces = MappingProxyType({name: Workspace(name) for name in options.instances})
    organization = Organization(id="", name=INTEGRATIONS_ONLY, region=settings.region or "")
    return replace(current, workspaces=workspaces), Identity("", "", ADMIN, organization)
