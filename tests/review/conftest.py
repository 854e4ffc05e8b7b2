"""The review tests: the end-to-end fixtures, and helpers to build reviews and run Chromium."""

from tests.e2e.conftest import api, cli  # noqa: F401  (fixtures)
