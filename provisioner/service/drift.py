"""``drift``: a read-only check, for a schedule, of whether each organization still matches its config."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provisioner.api.pacing import AUTO_PACE, Pace
from provisioner.audit import last_applied_state
from provisioner.drift import DriftReport, detect_drift
from provisioner.frozen import frozen
from provisioner.model import Config
from provisioner.secrets.refs import available
from provisioner.service.connection import connect_config
from provisioner.service.plan import read_and_diff
from provisioner.service.runner import Outcome, Run, run_organizations, utcnow


@frozen
class DriftOptions:
    """The options of one ``drift`` run. ``audit_log``: the log of earlier applies, if any."""

    audit_log: str | None = None
    api_url: str | None = None
    sandbox: str | None = None
    parallelism: int = 8
    pace: Pace = AUTO_PACE  # pacing to Recall.ai's published limits (``--pace``)


@frozen
class DriftResult:
    """One organization's drift report.

    ``unrecorded``: an audit log was given but records no apply of this
    organization yet, so every difference counts as drift.
    """

    report: DriftReport
    unrecorded: bool = False

    @property
    def changed(self) -> bool:
        return self.report.drifted


def drift_orgs(
    configs: Sequence[Config],
    options: DriftOptions,
    *,
    report: Callable[[Outcome[DriftResult]], None] | None = None,
) -> Run[DriftResult]:
    """Compare each organization with its config and its last apply. Changes nothing.

    ``Run.exit_code()``: 0 clean, 2 drifted, 1 an error.
    """

    def step(config: Config) -> DriftResult:
        # Whatever secret values this job holds: a value that changed behind an
        # unchanged reference is drift only a job with the secrets can see.
        secrets = available(config.secret_uses, base=config.secret_base)
        with connect_config(
            config, api_url=options.api_url, sandbox=options.sandbox, pace=options.pace
        ) as connection:
            for each in [connection.client, *connection.workspace_clients.values()]:
                if each is not None:
                    each.redact_also(secrets.values())
            now = utcnow()
            planned = read_and_diff(
                config,
                connection.client,
                now=now,
                parallelism=options.parallelism,
                workspace_clients=connection.workspace_clients,
                endpoint=connection.endpoint,
            )
        name = planned.identity.organization.name
        last = last_applied_state(options.audit_log, name) if options.audit_log else None
        # The same ``now`` as the plan's, so both agree on which grants ran out.
        drift = detect_drift(
            planned.current, config, last_applied=last, now=now, organization=name, secrets=secrets
        )
        return DriftResult(drift, unrecorded=options.audit_log is not None and last is None)

    return run_organizations(configs, step, report=report)
