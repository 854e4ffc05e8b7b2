"""The README's shell blocks call real commands and flags, and its two quickstart
commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_ci_examples import _invocations, problems

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_every_provisioner_command_in_the_readme_is_real() -> None:
    found = [
        inv
        for i, block in enumerate(SHELL_BLOCKS)
        # A command run from the venv is the same command.
        for inv in _invocations(
            f"README.md sh block {i + 1}", block.replace(".venv/bin/provisioner", "provisioner")
        )
    ]
    assert {inv.argv[0] for inv in found} >= {"apply", "plan", "export"}
    assert [p for inv in found for p in problems(inv)] == []


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = next(b.strip() for b in SHELL_BLOCKS if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_quickstart_applies_the_quickstart_example_on_the_embedded_sandbox() -> None:
    quickstart = SHELL_BLOCKS[0]
    assert "apply -c examples/quickstart.yaml --sandbox" in quickstart
    assert (ROOT / "examples" / "quickstart.yaml").is_file()
