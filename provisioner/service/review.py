"""``review``: the periodic access review of one organization, as a plain function.

Reads the organization as ``plan`` does (its Zoom apps and Google logins on
Recall.ai's v2 API with each instance's key, so a webhook Zoom never
validated is in the report), reads the audit log, and hands both
with the config to ``provisioner.review.build.build_review`` (pure). Changes
nothing; works with a developer's key. The CLI only parses options and
renders the returned ``ReviewResult``.

A given audit log that does not exist (a CI cache that was evicted, or a
first run) is not an error, as in ``drift``: the review goes on with an empty
history, ``ReviewResult.audit_log_missing`` lets the CLI warn, and the report
itself says that the history is missing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from provisioner.api.pacing import AUTO_PACE, Pace
from provisioner.api.reader import read_state_and_identity
from provisioner.audit import config_commit
from provisioner.frozen import frozen
from provisioner.model import Config
from provisioner.review.audit_history import read_audit_log
from provisioner.review.build import DEFAULT_PERIOD, build_review
from provisioner.review.model import Review
from provisioner.service.connection import connect_config
from provisioner.service.plan import read_integrations
from provisioner.service.runner import utcnow


@frozen
class ReviewResult:
    """The review, and whether the audit log knew the organization at all."""

    review: Review
    organization: str
    # True when an audit log was given but records no apply of this organization.
    audit_log_without_organization: bool
    # True when the audit log given does not exist.
    audit_log_missing: bool = False


def review_org(
    config: Config,
    *,
    audit_log: str | None,
    since: datetime | None,
    api_url: str | None,
    sandbox: str | None,
    parallelism: int,
    now: datetime | None = None,
    pace: Pace = AUTO_PACE,
) -> ReviewResult:
    """Read one organization and build its access review (default period: 90 days)."""
    missing = audit_log is not None and not Path(audit_log).exists()
    records = None if audit_log is None else () if missing else read_audit_log(audit_log)
    with connect_config(config, api_url=api_url, sandbox=sandbox, pace=pace) as connection:
        # The v2 API's Zoom apps and Google logins too, each with its instance's key.
        clients = connection.workspace_clients
        if connection.client is None:
            current, identity = read_integrations(config, clients, parallelism)
            endpoint = connection.endpoint.label
        else:
            current, identity = read_state_and_identity(
                connection.client, parallelism=parallelism, workspace_clients=clients
            )
            # An embedded sandbox by its label: its port changes every run.
            embedded = connection.endpoint.embedded
            endpoint = connection.endpoint.label if embedded else connection.client.endpoint
    moment = now or utcnow()
    review = build_review(
        config,
        current,
        identity,
        records,
        moment,
        since if since is not None else moment - DEFAULT_PERIOD,
        endpoint=endpoint,
        config_commit=config_commit(config),
        audit_log=audit_log,
        audit_log_missing=missing,
    )
    name = identity.organization.name
    unknown = not missing and records is not None and not any(r.organization == name for r in records)
    return ReviewResult(review, name, unknown, missing)
