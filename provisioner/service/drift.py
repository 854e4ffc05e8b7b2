"""``drift``: a read-only check, for a schedule, of whether each organization still matches its config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from provisioner.audit import last_applied_state
from provisioner.drift import DriftReport, detect_drift
from provisioner.model import Config
from provisioner.service.connection import connect_config
from provisioner.service.plan import config_secrets, read_and_diff
from provisioner.service.runner import Outcome, Run, run_organizations, utcnow


@dataclass(frozen=True)
class DriftOptions:
    """The options of one ``drift`` run. ``audit_log``: the log of earlier applies, if any."""

    audit_log: str | None = None
    api_url: str | None = None
    sandbox: str | None = None
    parallelism: int = 8


@dataclass(frozen=True)
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
        secrets = config_secrets(config)  # before connecting: an unset reference costs no request
        with connect_config(config, api_url=options.api_url, sandbox=options.sandbox) as connection:
            now = utcnow()
            planned = read_and_diff(
                config,
                connection.client,
                now=now,
                parallelism=options.parallelism,
                secrets=secrets,
                workspace_clients=connection.workspace_clients,
            )
        name = planned.identity.organization.name
        last = last_applied_state(options.audit_log, name) if options.audit_log else None
        # The same ``now`` as the plan's, so both agree on which grants ran out.
        drift = detect_drift(
            planned.current, config, last_applied=last, now=now, organization=name, secrets=planned.secrets
        )
        return DriftResult(drift, unrecorded=options.audit_log is not None and last is None)

    return run_organizations(configs, step, report=report)
