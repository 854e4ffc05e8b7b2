"""Checks of the hostile corpus: drift output. See tests/hostile/test_hostile_corpus.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {}
