"""``validate``: check configs offline and gather every issue. No network, no key."""

from __future__ import annotations

from collections.abc import Sequence

from provisioner.config import load_configs
from provisioner.errors import ConfigError
from provisioner.frozen import frozen
from provisioner.model import Config
from provisioner.service.runner import EXIT_ERROR, EXIT_OK


@frozen
class Validation:
    """The configs given, and either each one loaded or every issue found in them."""

    paths: tuple[str, ...]
    configs: tuple[Config, ...] = ()
    error: ConfigError | None = None

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.valid else EXIT_ERROR


def validate(paths: Sequence[str]) -> Validation:
    """Load every config (syntax, schema, references, expansion); never raises for a bad config."""
    try:
        configs = load_configs(list(paths))
    except ConfigError as error:
        return Validation(tuple(paths), error=error)
    return Validation(tuple(paths), tuple(configs))
