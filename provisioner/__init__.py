"""provisioner: access management as code for the regional meeting-bot API."""

from __future__ import annotations

# The distribution is named recall-provisioner on the package index (the name
# `provisioner` belongs to an unrelated project); the import package and the
# command stay `provisioner`.
DISTRIBUTION = "recall-provisioner"

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # ``__version__`` is looked up on first use: importlib.metadata costs
    # 10-20 ms to import, which every run (``--help``, ``validate``) would pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:  # running from a source tree that is not installed
            found = "0.0.0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
