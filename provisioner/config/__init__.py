"""The configuration language: YAML files -> validated ``Config`` (the desired State).

Public API::

    load_config(path) -> Config             # one organization (file or directory)
    load_configs(paths) -> list[Config]     # several; one ConfigError with every issue

See docs/configuration.md for the format.
"""

from provisioner.config.loader import load_config, load_configs

__all__ = ["load_config", "load_configs"]
