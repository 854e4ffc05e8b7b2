"""One runner for every command that covers several organizations, and the exit codes.

``plan``, ``apply`` (its prepare phase) and ``drift`` each take several ``-c``
options, one organization each. ``run_organizations`` runs one step per
organization, in order, and keeps going after an organization fails: each
gets an ``Outcome`` (its result, its error, or both when a result was made
and then refused). ``Run.exit_code`` combines them the same way for every
command.

Exit codes mean the same everywhere: 0 success (no changes, no drift), 1 an
error of any kind, 2 changes or drift (``plan --detailed-exitcode``,
``drift``); an apply stopped by a signal exits 128 + its number (130, 143,
see ``provisioner.service.interrupt``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ProvisionerError
from provisioner.frozen import frozen
from provisioner.model import Config

if TYPE_CHECKING:
    from provisioner.config.cache import ConfigCache

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


class Result(Protocol):
    """What a command made for one organization."""

    @property
    def changed(self) -> bool:
        """True when the organization differs from its config (changes planned, drift found)."""
        ...


R = TypeVar("R", bound=Result)


@frozen
class Outcome(Generic[R]):
    """One organization's part of a run.

    ``result`` is what was made (a plan, a drift report); ``error`` what went
    wrong. Both are set when a result was made and then refused (a plan shown,
    then stopped by a guard): a reviewer sees what was refused.
    """

    config: Config
    result: R | None = None
    error: ProvisionerError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@frozen
class Run(Generic[R]):
    """Every organization's outcome, in the order given."""

    outcomes: tuple[Outcome[R], ...]

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)

    @property
    def results(self) -> list[R]:
        """The results of the organizations that did not fail."""
        return [o.result for o in self.outcomes if o.result is not None and not o.failed]

    def exit_code(self, *, changes_exit: bool = True) -> int:
        """1 if any organization failed; else 2 if any changed (when ``changes_exit``); else 0."""
        if self.failed:
            return EXIT_ERROR
        if changes_exit and any(r.changed for r in self.results):
            return EXIT_CHANGES
        return EXIT_OK


def run_organizations(
    configs: Sequence[Config],
    step: Callable[[Config], R],
    *,
    check: Callable[[R], R] | None = None,
    report: Callable[[Outcome[R]], None] | None = None,
) -> Run[R]:
    """Run ``step`` for each organization, then ``check`` on what it made; never stop early.

    ``check`` (a guard, saving a plan) may refuse with a ``ProvisionerError``;
    the outcome then keeps the result ``step`` made. ``report`` sees each
    outcome as soon as it is known, so a long run shows its progress.
    """
    outcomes: list[Outcome[R]] = []
    for config in configs:
        result: R | None = None
        try:
            result = step(config)
            outcome = Outcome(config, check(result) if check is not None else result)
        except ProvisionerError as error:
            outcome = Outcome(config, result, error)
        if report is not None:
            report(outcome)
        outcomes.append(outcome)
    return Run(tuple(outcomes))


def load_organizations(
    paths: Sequence[str], *, api_url: str | None = None, cache: ConfigCache | None = None
) -> list[Config]:
    """Every config, loaded and checked before anything is read or changed anywhere.

    ``api_url`` is the operator's ``--api-url``: it allows a config's own
    ``api_url`` outside the regions when the two are the same URL.
    ``cache`` (``plan`` only, never ``apply``): reuse the configs an earlier
    plan loaded from the very same files (``provisioner.config.cache``).
    """
    allowances = OperatorAllowances.from_environ(api_url=api_url)
    if cache is None:
        return _load_configs(paths, allowances)
    # Imported here: only plan has a cache, and its hits need neither the loader nor YAML.
    from provisioner.config.cache import load_cached

    configs, _ = load_cached(list(paths), allowances, cache, _load_configs)
    return configs


def _load_configs(paths: Sequence[str], allowances: OperatorAllowances) -> list[Config]:
    """Load the files (YAML, schema, checks): imported here, so that a cached plan never does."""
    from provisioner.config import load_configs

    return load_configs(list(paths), allowances=allowances)


def utcnow() -> datetime:
    """Now, timezone-aware: the one clock of a run's plans, files and records."""
    return datetime.now(UTC)
