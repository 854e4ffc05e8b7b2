"""Checks of the hostile corpus: input (configs a pull request controls).

See tests/hostile/test_hostile_corpus.py for the corpus. One kind lives here:

``input-config`` -- ``provisioner validate`` runs on the files the case
describes, in a subprocess under ``resource`` limits, and must refuse them
cleanly. A case has these fields besides the common ones:

* ``files`` -- ``{relative path: text}``, written as regular files. A text may
  instead be ``{generate: [...]}``: a list of parts, each ``{text: "..."}`` or
  ``{repeat: "...{i}...", count: N}`` (``{i}`` is the index; ``{{``/``}}`` are
  braces). Large hostile files are made at test time, never committed.
* ``symlinks`` -- ``{relative path: target}`` (the target is written as given).
* ``fifos`` -- relative paths of named pipes to create.
* ``args`` -- the ``-c`` arguments (default: the only file of ``files``).
* ``expect`` -- a list of ``{at: FILE:LINE:COL, words: [...]}``: some line of
  stderr starts with ``at`` and contains every word.
* ``absent`` -- strings that must appear nowhere in the output (secrets,
  suggestions that must not be made).
* ``last_line`` -- words the last issue line must contain (``and 100 more``).

Every case must also: exit 1, print no traceback, print no line that GitHub
Actions would run as a workflow command, and stay within ``CPU_SECONDS`` of
CPU and ``MAX_RSS_MB`` of memory (the run is also fenced by ``RLIMIT_AS``,
300 MB above the interpreter's size once provisioner is imported, and by
``RLIMIT_CPU``). ``run_limited`` is shared with
tests/reliability/test_rel_bad_input.py, which runs every config of the
corpus under the same limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPU_SECONDS = 5.0
MAX_RSS_MB = 300
# Wall time only guards against a hang (a FIFO opened for reading blocks
# forever): the machine running the suite is shared, so the budget that the
# input controls is asserted as CPU time.
WALL_SECONDS = 30.0
_AS_HEADROOM = 300 * 1024 * 1024

# Runs the real CLI in-process under limits set after imports (so the limit is
# "baseline + 300 MB"), and records its own resource use at exit.
_WRAPPER = r"""
import atexit, json, re, resource, sys
usage_file = sys.argv[1]
from provisioner.cli.main import main
status = open("/proc/self/status").read()
vm = int(re.search(r"VmSize:\s+(\d+) kB", status)[1]) * 1024
limit = vm + @HEADROOM@
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_CPU, (@CPU@, @CPU@ + 1))

def record():
    u = resource.getrusage(resource.RUSAGE_SELF)
    # Peak RSS from VmHWM, not ru_maxrss: Linux carries ru_maxrss over from
    # the forking parent (here pytest, which may be large) across execve.
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read())[1])
    with open(usage_file, "w") as fh:
        json.dump({"maxrss_kb": hwm, "cpu": u.ru_utime + u.ru_stime,
                   "baseline_vm": vm}, fh)

atexit.register(record)
sys.argv = ["provisioner"] + sys.argv[2:]
main()
""".replace("@HEADROOM@", str(_AS_HEADROOM)).replace("@CPU@", str(int(CPU_SECONDS * 2)))


@dataclass(frozen=True)
class Run:
    """One limited run of the CLI."""

    returncode: int
    stdout: str
    stderr: str
    cpu: float  # seconds
    maxrss_mb: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_limited(args: list[str], cwd: Path) -> Run:
    """``provisioner ARGS`` in a subprocess under RLIMIT_AS/RLIMIT_CPU, with its usage."""
    usage = cwd / ".usage.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECALL_", "PROVISIONER_"))}
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(usage), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=WALL_SECONDS,
    )
    assert usage.exists(), f"the run did not exit normally:\n{done.stderr[-2000:]}"
    measured = json.loads(usage.read_text())
    usage.unlink()
    return Run(done.returncode, done.stdout, done.stderr, measured["cpu"], measured["maxrss_kb"] / 1024)


def _generate(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    parts = []
    for part in spec["generate"]:
        if "text" in part:
            parts.append(part["text"])
        else:
            template = part["repeat"]
            parts.append("".join(template.format(i=i) for i in range(part["count"])))
    return "".join(parts)


def materialize(case: dict[str, Any], root: Path) -> list[str]:
    """Write the case's files, symlinks and FIFOs under ``root``; the ``-c`` arguments."""
    files = case.get("files") or {}
    if isinstance(case.get("config"), str):  # the common shape of other areas' cases
        files = {"access.yaml": case["config"], **files}
    for rel, spec in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_generate(spec), encoding="utf-8")
    for rel, target in (case.get("symlinks") or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    for rel in case.get("fifos") or ():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
    args = case.get("args")
    if args is None:
        assert len(files) == 1, "a case with several files names its -c arguments in `args`"
        args = list(files)
    return [a for arg in args for a in ("-c", arg)]


def assert_bounded(run: Run) -> None:
    """The run stayed inside the budget and ended cleanly."""
    assert "Traceback" not in run.output, run.output[-3000:]
    assert run.cpu < CPU_SECONDS, f"{run.cpu:.1f} s of CPU"
    assert run.maxrss_mb < MAX_RSS_MB, f"{run.maxrss_mb:.0f} MB"


def check_config(case: dict[str, Any], tmp_path: Path) -> None:
    args = materialize(case, tmp_path)
    run = run_limited(["validate", *args], tmp_path)
    assert run.returncode == 1, run.output
    assert_bounded(run)
    lines = run.stderr.splitlines()
    for expected in case["expect"]:
        at = expected["at"] + ":"
        located = [ln for ln in lines if ln.startswith(at)]
        assert located, f"nothing reported at {at}\n{run.stderr}"
        assert any(all(w in ln for w in expected["words"]) for ln in located), (
            f"{expected['words']} not at {at}:\n{run.stderr}"
        )
    for text in case.get("absent") or ():
        assert text not in run.output, f"{text!r} must not be printed:\n{run.output}"
    for line in run.output.splitlines():
        assert not line.lstrip().startswith(("::", "##[")), f"a workflow command: {line!r}"
    if case.get("last_line"):
        issues = [ln for ln in lines if "the config is not valid" not in ln]
        assert all(w in issues[-1] for w in case["last_line"]), issues[-1]


CHECKS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "input-config": check_config,
}
