"""provisioner: access management as code for the regional meeting-bot API."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

# The distribution is named recall-provisioner on the package index (the name
# `provisioner` belongs to an unrelated project); the import package and the
# command stay `provisioner`.
DISTRIBUTION = "recall-provisioner"

try:
    __version__ = _version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
