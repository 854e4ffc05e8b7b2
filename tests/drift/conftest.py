"""The drift tests use the end-to-end fixtures: the real CLI against a sandbox on loopback."""

from tests.e2e.conftest import api, cli  # noqa: F401  (fixtures)
