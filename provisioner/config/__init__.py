"""The configuration language: YAML files -> validated ``Config`` (the desired State).

Public API::

    load_config(path) -> Config             # one organization (file or directory)
    load_configs(paths) -> list[Config]     # several; one ConfigError with every issue

See docs/configuration.md for the format.

The loader is imported on first use, not with the package: importing a light
submodule (the generated schema check, ``config._schema_compiled``) then does
not load the whole language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.config.loader import load_config, load_configs

__all__ = ["load_config", "load_configs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from provisioner.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
