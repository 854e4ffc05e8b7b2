"""Soak: the longer versions of the reliability suite (not run in CI).

    python benchmarks/soak.py [--seeds 50] [--fuzz 2000] [--sm-examples 100] [--sm-steps 20]

* 50 seeds of point 2 (apply under 30% ambiguous faults converges within 2 runs);
* the loader fuzz with many more examples;
* the reconcile state machine with more examples and steps.

Prints a summary of seeds, runs and failures; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests.reliability.rel_support import apply_under_faults  # noqa: E402
from tests.reliability.test_rel_crash import (  # noqa: E402
    DESIRED_BODY,
    DESIRED_MEMBERSHIPS,
    DESIRED_USERS,
    DESIRED_WORKSPACES,
)


def soak_faults(seeds: int) -> tuple[int, list[str]]:
    failures: list[str] = []
    runs = 0
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        for seed in range(seeds):
            outcome = apply_under_faults(Path(tmp) / f"seed-{seed}", seed, DESIRED_BODY)
            runs += outcome.runs
            final = outcome.final
            problems = []
            if outcome.exit_codes[-1] != 0:
                problems.append(f"exit codes {outcome.exit_codes}")
            if not final.clean():
                problems.append("duplicates")
            if (final.users, final.workspaces, final.memberships) != (
                DESIRED_USERS,
                DESIRED_WORKSPACES,
                DESIRED_MEMBERSHIPS,
            ):
                problems.append("end state differs from desired")
            if outcome.plan_exit != 0:
                problems.append(f"next plan exit {outcome.plan_exit}")
            status = "ok" if not problems else "FAIL: " + "; ".join(problems)
            print(
                f"  seed {seed:3d}: {outcome.runs} run(s), {outcome.writes_received} writes received: {status}",
                flush=True,
            )
            if problems:
                failures.append(f"faults seed {seed}: {'; '.join(problems)}")
    return runs, failures


def run_pytest(test: str, env: dict[str, str]) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    return result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--fuzz", type=int, default=2000)
    parser.add_argument("--sm-examples", type=int, default=100)
    parser.add_argument("--sm-steps", type=int, default=20)
    args = parser.parse_args()
    started = time.monotonic()
    print(f"Point 2: {args.seeds} seeds at fail_rate=0.3", flush=True)
    runs, failures = soak_faults(args.seeds)
    print(f"Loader fuzz: {args.fuzz} examples", flush=True)
    if not run_pytest(
        "tests/reliability/test_rel_bad_input.py::test_loader_fuzz_only_config_or_config_error",
        {"PROVISIONER_FUZZ_EXAMPLES": str(args.fuzz)},
    ):
        failures.append("loader fuzz")
    print(f"State machine: {args.sm_examples} examples x {args.sm_steps} steps", flush=True)
    if not run_pytest(
        "tests/reliability/test_rel_state_machine.py",
        {"PROVISIONER_SM_EXAMPLES": str(args.sm_examples), "PROVISIONER_SM_STEPS": str(args.sm_steps)},
    ):
        failures.append("state machine")
    print()
    print(
        f"Summary: {args.seeds} seeds, {runs} apply runs, {args.fuzz} fuzz examples, "
        f"{args.sm_examples} state-machine examples; {len(failures)} failure(s) in "
        f"{time.monotonic() - started:.0f} s"
    )
    for failure in failures:
        print(f"  FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
