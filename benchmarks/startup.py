"""Fixed cost: how long the commands people run all day take, as whole processes (issue 16).

    python benchmarks/startup.py [--runs 7]

Each figure is the median wall time of ``--runs`` runs (after one warm-up run)
of a fresh process, timed from outside with ``subprocess``, and is printed
beside its target with PASS or FAIL. For a FAIL, the line below names where the
time goes: the command is run once more with ``python -X importtime`` and the
slowest imports of the tool's own modules are listed with the heavy libraries
(Werkzeug, requests, jsonschema) they pulled in.

Figures (targets from issue 16):

* ``provisioner --help``: <= 0.1 s.
* ``provisioner validate -c examples/quickstart.yaml``: <= 0.15 s, and under
  3 x ``python -c pass`` + a bare parse (the cost of importing yaml and parsing
  the file with ``CSafeLoader``, i.e. a bare-parse process minus ``python -c pass``).
* ``provisioner plan`` of the quickstart on the embedded sandbox (``--sandbox DB``,
  the db created first by ``apply``): <= 0.3 s. The warm-up run saves the state
  snapshot and the loaded config in the cache folder, so the counted runs plan
  as a developer's second plan does. Printed beside it, what a process pays
  before any work: the third-party libraries the plan path imports, and all of
  the plan path's imports (the floor of the figure).
* At 2,000 users and 30 workspace instances: ``validate`` <= 2 x a bare parse
  (a process that only imports yaml and parses the same file with ``CSafeLoader``).

Figures (targets from issue 24), each measured **paired**: the command and its
baseline run alternately, the ratio is taken within each pair, and the median of
9 pairs is reported (so a machine busy with other work slows both sides of a pair):

* ``provisioner --help``: <= 3 x ``python -c pass``.
* ``provisioner validate -c examples/quickstart.yaml``: <= 3 x ``python`` +
  ``import yaml`` + a bare ``CSafeLoader`` parse of the same file.

``--only-fixed-cost`` measures just these two.

The package is byte-compiled first (``compileall``), as an installed wheel is:
a source tree run with PYTHONDONTWRITEBYTECODE would otherwise compile every
module on every run, which no user pays. Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import scale  # noqa: E402  (the organization generator of the scale benchmark)

QUICKSTART = ROOT / "examples" / "quickstart.yaml"
HEAVY = ("werkzeug", "requests", "jsonschema")

HELP_MAX_S = 0.10
PAIRED_RUNS = 9
HELP_VS_PYTHON = 3.0  # issue 24
VALIDATE_VS_BARE_PROCESS = 3.0  # issue 24
VALIDATE_MAX_S = 0.15
VALIDATE_VS_FLOOR = 3.0
PLAN_MAX_S = 0.30
LARGE_VALIDATE_VS_BARE = 2.0
LARGE_USERS = 2_000
LARGE_WORKSPACES = 10  # x 3 environments = 30 instances
LARGE_PER_INSTANCE = 400


@dataclass(frozen=True)
class Figure:
    what: str
    measured: str
    target: str
    ok: bool
    reason: str = ""


def provisioner_command() -> list[str]:
    """The installed ``provisioner`` script next to this interpreter, or ``python -m provisioner``."""
    script = Path(sys.executable).with_name("provisioner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "provisioner"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_"))}
    env["NO_COLOR"] = "1"
    # The quickstart's secret references, set as the README's first command sets them.
    env.update(
        DEEPGRAM_KEY_DEVELOPMENT="dev-key",
        DEEPGRAM_KEY_STAGING="staging-key",
        DEEPGRAM_KEY_PRODUCTION="prod-key",
    )
    return env


def median_wall(argv: list[str], runs: int, *, cwd: Path = ROOT, expect: tuple[int, ...] = (0,)) -> float:
    """Median wall seconds of ``runs`` runs of ``argv`` (one warm-up run first, not counted)."""
    times: list[float] = []
    for i in range(runs + 1):
        started = time.perf_counter()
        result = subprocess.run(
            argv, cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=120
        )
        elapsed = time.perf_counter() - started
        if result.returncode not in expect:
            raise SystemExit(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr.decode(errors='replace')[-2000:]}"
            )
        if i:
            times.append(elapsed)
    return statistics.median(times)


def paired_ratio(argv: list[str], baseline: list[str], runs: int = PAIRED_RUNS) -> tuple[float, float, float]:
    """Median ratio of ``argv`` to ``baseline`` over ``runs`` alternating pairs; and the two medians.

    One warm-up pair first, not counted. Pairing keeps a load that comes and
    goes on a shared machine from landing on one side only.
    """
    ratios: list[float] = []
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(runs + 1):
        timed = []
        for command in (baseline, argv):
            started = time.perf_counter()
            result = subprocess.run(
                command, cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=120
            )
            timed.append(time.perf_counter() - started)
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(command)} exited {result.returncode}")
        if i:
            theirs.append(timed[0])
            ours.append(timed[1])
            ratios.append(timed[1] / timed[0])
    return statistics.median(ratios), statistics.median(ours), statistics.median(theirs)


def import_reason(argv: list[str], cwd: Path = ROOT) -> str:
    """Where a command's startup goes: its slowest own imports and the heavy libraries it loads."""
    if argv[0].endswith("provisioner") and not argv[0].endswith(".py"):
        argv = [sys.executable, "-m", "provisioner", *argv[1:]]
    python, rest = argv[0], argv[1:]
    result = subprocess.run(
        [python, "-X", "importtime", *rest],
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    total = 0
    own: list[tuple[int, str]] = []
    heavy: dict[str, int] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, field = line.split("|")
        name = field.strip()
        depth = (len(field) - len(field.lstrip(" ")) - 1) // 2
        cumulative_us = int(cumulative)
        if depth == 0:
            total += cumulative_us
        if name.startswith("provisioner.") and name.count(".") <= 2:
            own.append((cumulative_us, name))
        if name in HEAVY:
            heavy[name] = cumulative_us
    own.sort(reverse=True)
    slowest = ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in own[:4])
    loads = ", ".join(f"{name} ({us / 1000:.0f} ms)" for name, us in heavy.items()) or "none"
    return f"imports take {total / 1000:.0f} ms; slowest own: {slowest}; heavy libraries loaded: {loads}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs per figure (median of these)")
    parser.add_argument("--only-fixed-cost", action="store_true", help="only the paired figures of issue 24")
    args = parser.parse_args()
    # The plan's state snapshots go to a folder of this run, never the user's cache.
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="provisioner-startup-cache-")
    runs = max(5, args.runs)
    compileall.compile_dir(str(ROOT / "provisioner"), quiet=1)
    tool = provisioner_command()
    python = sys.executable
    figures: list[Figure] = []

    def report(figure: Figure) -> None:
        figures.append(figure)
        print(
            f"  {figure.what}: {figure.measured}  (target {figure.target})  {'PASS' if figure.ok else 'FAIL'}"
        )
        if not figure.ok and figure.reason:
            print(f"      why: {figure.reason}")

    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")

    bare_code = "import sys, yaml; yaml.load(open(sys.argv[1], 'rb').read(), Loader=yaml.CSafeLoader)"
    print(f"paired with their baselines, median ratio of {PAIRED_RUNS} pairs (issue 24):")
    help_argv = [*tool, "--help"]
    ratio, t, base = paired_ratio(help_argv, [python, "-c", "pass"])
    ok = ratio <= HELP_VS_PYTHON
    report(
        Figure(
            "provisioner --help vs python -c pass",
            f"{ratio:.2f}x ({t:.3f} s vs {base:.3f} s)",
            f"<= {HELP_VS_PYTHON:g}x",
            ok,
            "" if ok else import_reason(help_argv),
        )
    )
    validate_argv = [*tool, "validate", "-c", str(QUICKSTART)]
    ratio, t, base = paired_ratio(validate_argv, [python, "-c", bare_code, str(QUICKSTART)])
    ok = ratio <= VALIDATE_VS_BARE_PROCESS
    report(
        Figure(
            "validate -c examples/quickstart.yaml vs python + import yaml + bare parse",
            f"{ratio:.2f}x ({t:.3f} s vs {base:.3f} s)",
            f"<= {VALIDATE_VS_BARE_PROCESS:g}x",
            ok,
            "" if ok else import_reason(validate_argv),
        )
    )
    if args.only_fixed_cost:
        failed = [f for f in figures if not f.ok]
        print(f"\n{len(figures) - len(failed)} of {len(figures)} targets met")
        return 0 if not failed else 1

    print(f"\nmedian wall time of {runs} runs each (whole process, one warm-up run first)\n")
    python_pass = median_wall([python, "-c", "pass"], runs)
    bare_quickstart = median_wall([python, "-c", bare_code, str(QUICKSTART)], runs)
    print(
        f"  reference: python -c pass {python_pass:.3f} s; bare parse of the quickstart {bare_quickstart:.3f} s"
    )

    # Not a target: the config's own share of validate (click, the loader, the
    # schema check, the checks), without what the CLI imports for other commands.
    own_code = "import sys, click; from provisioner.config import load_configs; load_configs(sys.argv[1:])"
    own = median_wall([python, "-c", own_code, str(QUICKSTART)], runs)
    print(f"  reference: click + loading the quickstart config, no CLI: {own:.3f} s")

    help_argv = [*tool, "--help"]
    t = median_wall(help_argv, runs)
    ok = t <= HELP_MAX_S
    report(
        Figure(
            "provisioner --help",
            f"{t:.3f} s",
            f"<= {HELP_MAX_S} s",
            ok,
            "" if ok else import_reason(help_argv),
        )
    )

    validate_argv = [*tool, "validate", "-c", str(QUICKSTART)]
    t = median_wall(validate_argv, runs)
    floor = VALIDATE_VS_FLOOR * python_pass + (bare_quickstart - python_pass)
    ok = t <= VALIDATE_MAX_S and t < floor
    report(
        Figure(
            "validate -c examples/quickstart.yaml",
            f"{t:.3f} s",
            f"<= {VALIDATE_MAX_S} s and < 3 x python -c pass + bare parse = {floor:.3f} s",
            ok,
            "" if ok else import_reason(validate_argv),
        )
    )

    with tempfile.TemporaryDirectory(prefix="provisioner-startup-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "sandbox.db"
        subprocess.run(
            [*tool, "apply", "-c", str(QUICKSTART), "--sandbox", str(db), "--auto-approve"]
            + ["--secrets-dir", str(tmp / "secrets")],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        plan_argv = [*tool, "plan", "-c", str(QUICKSTART), "--sandbox", str(db)]
        full = median_wall([*plan_argv, "--no-cache"], runs)
        print(f"  reference: plan of the quickstart reading everything (--no-cache): {full:.3f} s")
        # A plan of a cached config imports no YAML (tests/test_startup_imports.py).
        libraries = median_wall([python, "-c", "import click, requests, werkzeug"], runs)
        plan_path = "import provisioner.cli.main, provisioner.cli.plan, provisioner.sandbox, provisioner.render.plan_text"
        imports = median_wall([python, "-c", plan_path], runs)
        print(
            f"  reference: python + click, requests, werkzeug {libraries:.3f} s; "
            f"+ the plan path's own modules {imports:.3f} s (imports only, no work)"
        )
        # The warm-up run saves the snapshot and the loaded config; the counted runs use them.
        t = median_wall(plan_argv, runs)
        ok = t <= PLAN_MAX_S
        report(
            Figure(
                "plan of the quickstart on the embedded sandbox, from its snapshot and cached config",
                f"{t:.3f} s",
                f"<= {PLAN_MAX_S} s",
                ok,
                "" if ok else import_reason(plan_argv),
            )
        )

        org = scale.scale_org(
            LARGE_USERS, workspaces=LARGE_WORKSPACES, plain=0, per_instance=LARGE_PER_INSTANCE
        )
        large = tmp / "large.yaml"
        large.write_text(scale.config_text(org))
        instances = len(org.instances())
        memberships = len(org.membership_pairs())
        bare = median_wall([python, "-c", bare_code, str(large)], runs)
        own_large = median_wall([python, "-c", own_code, str(large)], runs)
        print(f"  reference: click + loading the large config, no CLI: {own_large:.3f} s")
        large_argv = [*tool, "validate", "-c", str(large)]
        t = median_wall(large_argv, runs)
        ok = t <= LARGE_VALIDATE_VS_BARE * bare
        report(
            Figure(
                f"validate at {len(org.roles):,} users / {instances} workspaces / {memberships:,} memberships",
                f"{t:.3f} s = {t / bare:.2f}x a bare parse ({bare:.3f} s)",
                f"<= {LARGE_VALIDATE_VS_BARE:g}x bare parse = {LARGE_VALIDATE_VS_BARE * bare:.3f} s",
                ok,
                "" if ok else import_reason(large_argv),
            )
        )

    failed = [f for f in figures if not f.ok]
    print(f"\n{len(figures) - len(failed)} of {len(figures)} targets met")
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
