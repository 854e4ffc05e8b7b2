"""Where a full-read plan's client CPU goes (issue 24): a profile of every thread, grouped.

    python benchmarks/profile_plan.py                  # 10,000 users, 100,000 memberships (~2 min)
    python benchmarks/profile_plan.py --users 1000 --per-instance 200   # a small run

It seeds the organization of ``benchmarks/scale.py`` (the same generator), starts
``provisioner sandbox serve --latency-ms 20`` and runs the real CLI's ``plan``
(a full read: ``PROVISIONER_NO_CACHE=1``) in a child process that profiles
*every* thread with cProfile on that thread's own CPU clock
(``time.thread_time``): the reads run in worker threads, which ``python -m
cProfile`` would not see, and a wall clock would count the 20 ms each request
waits as work. The profiles are merged and each function's own time is filed
under one part of the run by the module it lives in:

* config: the YAML parse, the schema check and the expansion to the desired state;
* HTTP: requests, urllib3, http.client and the socket calls;
* page decoding: JSON of the answers;
* object construction: the types' parsers, the reader and the model's dataclasses;
* isinstance against typing's runtime Protocols (slow by design in 3.11);
* diff, guards and plan; render; imports; other.

Not a test: nothing here is asserted. Loopback only.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (part of the run, does a function's file or name say it belongs there), first match wins.
PARTS: list[tuple[str, Callable[[str, str], bool]]] = [
    (
        "imports during the run",
        lambda file, name: "importlib" in file or name == "<module>" or "/dataclasses.py" in file,
    ),
    (
        "isinstance against typing Protocols",
        lambda file, name: "/typing.py" in file or file == "<frozen abc>",
    ),
    (
        "config: YAML parse, schema check, expansion",
        lambda file, name: any(p in file for p in ("/provisioner/config/", "/yaml/", "/fastjsonschema/")),
    ),
    ("page decoding (JSON)", lambda file, name: "/json/" in file or "json" in name or "scan_once" in name),
    (
        "HTTP (requests, urllib3, http.client, sockets)",
        lambda file, name: (
            any(
                p in file
                for p in (
                    "/requests/",
                    "/urllib3/",
                    "/http/",
                    "/socket.py",
                    "/ssl.py",
                    "/urllib/",
                    "/email/",
                    "/ipaddress",
                )
            )
            or any(p in name for p in ("recv_into", "sendall", "_socket", "select", "poll"))
        ),
    ),
    (
        "object construction (types' parsers, reader, model)",
        lambda file, name: (
            any(
                p in file
                for p in ("/provisioner/resources/", "/provisioner/api/reader", "/provisioner/model.py")
            )
            or file == "<string>"
        ),  # the __init__ that dataclasses generate
    ),
    ("diff, guards, plan", lambda file, name: "/provisioner/plan/" in file),
    ("render", lambda file, name: "/provisioner/render/" in file or "/provisioner/escape" in file),
    (
        "the client's own code (URL checks, pacing, paging)",
        lambda file, name: "/provisioner/api/" in file or "/provisioner/apiurl" in file,
    ),
]


# --- the child: the CLI with every thread profiled ---------------------------------------------


def child(out: str, argv: list[str]) -> None:
    """Run ``provisioner ARGV`` in this process, each thread under its own profiler; save the merge."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.runcall(original_run, self)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile(time.thread_time)
    profiles.append(main_profile)
    # The plan path's imports, timed apart: a profile files an import's work under
    # whatever the module body calls, so it cannot add imports up by itself.
    started = time.thread_time()
    import provisioner.api.client
    import provisioner.api.reader
    import provisioner.cli.plan
    import provisioner.config
    import provisioner.service.plan  # noqa: F401
    from provisioner.cli.main import main as cli_main

    imports = time.thread_time() - started

    sys.argv = ["provisioner", *argv]
    code: Any = 0
    main_profile.enable()
    try:
        cli_main()
    except SystemExit as stop:
        code = stop.code
    finally:
        main_profile.disable()
    with lock:
        merged = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            merged.add(profile)
    merged.dump_stats(out)
    times = os.times()
    Path(out + ".cpu").write_text(f"{times.user + times.system} {imports}\n")
    raise SystemExit(code)


# --- the parent: seed, serve, run, group ---------------------------------------------------------


def part_of(file: str, name: str) -> str | None:
    """The part of the run a function belongs to by its module, or None."""
    return next((label for label, belongs in PARTS if belongs(file, name)), None)


def grouped(stats_path: str) -> dict[str, float]:
    """Own (tot) CPU seconds per part of the run.

    A builtin (``isinstance``, ``str.lower``) has no module of its own: its time
    is shared out among its callers, each by the time it spent in it.
    """
    stats = pstats.Stats(stats_path)
    parts: dict[str, float] = {}
    for (file, _line, name), (_cc, _nc, tottime, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        own = part_of(file, name)
        if own is None and file == "~" and callers:
            for (caller_file, _l, caller_name), caller_share in callers.items():
                part = part_of(caller_file, caller_name) or "other"
                parts[part] = parts.get(part, 0.0) + caller_share[2]
            continue
        parts[own or "other"] = parts.get(own or "other", 0.0) + tottime
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-instance", type=int, default=2_000)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # before importing scale, which imports the package: the child times its imports
        child(args.child[0], args.child[1:])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale import (  # the benchmarks folder is not a package
        LATENCY_MS,
        PARALLELISM,
        TOKEN,
        TOKEN_ENV,
        Sandbox,
        bare_parse_s,
        config_text,
        scale_org,
        seed_db,
    )

    org = scale_org(args.users, workspaces=16, plain=2, per_instance=args.per_instance)
    with tempfile.TemporaryDirectory(prefix="provisioner-profile-") as tmp_name:
        tmp = Path(tmp_name)
        seed_db(tmp / "org.db", org)
        config = tmp / "org.yaml"
        config.write_text(config_text(org))
        bare = bare_parse_s(config)
        print(
            f"{len(org.roles):,} users, {len(org.membership_pairs()):,} memberships; bare parse {bare:.2f} s"
        )
        with Sandbox(tmp / "org.db", LATENCY_MS) as sandbox:
            stats_path = str(tmp / "plan.prof")
            env = {**os.environ, TOKEN_ENV: TOKEN, "NO_COLOR": "1", "PROVISIONER_NO_CACHE": "1"}
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    stats_path,
                    "plan",
                    "-c",
                    str(config),
                    "--api-url",
                    sandbox.base_url,
                    "--parallelism",
                    str(PARALLELISM),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
                timeout=600,
            )
            wall = time.perf_counter() - started
        if done.returncode not in (0, 2):  # a failed plan's profile would describe the failure
            raise SystemExit(f"the plan failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        parts = grouped(stats_path)
        cpu, imports = (float(n) for n in Path(stats_path + ".cpu").read_text().split())
    parts["imports of the plan path (timed before the run)"] = imports
    profiled = sum(parts.values())
    print(
        f"plan (full read, profiled): wall {wall:.2f} s; process CPU {cpu:.2f} s; profiled thread CPU {profiled:.2f} s"
    )
    print(f"\n{'part of the run':<55} {'CPU s':>7} {'share':>6}")
    for label, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"{label:<55} {seconds:7.2f} {seconds / profiled:6.1%}")
    print("\n(profiling slows the run; the shares, not the seconds, are the finding)")


if __name__ == "__main__":
    main()
