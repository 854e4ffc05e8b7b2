"""How many requests per second the sandbox serves, at benchmark size.

Seeds a db with 10,000 users, 50 workspaces and 100,000 memberships, starts
``provisioner sandbox serve`` in a subprocess (so that the clients do not share
its GIL), and hammers it over loopback from N client threads with a bounded
number of requests: a mix of ``GET /users/`` pages (walking ``next``) and
``GET /me/``. Prints requests/second. Not a test.

    python benchmarks/sandbox_rps.py [--threads 8] [--requests 4000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from provisioner.sandbox import seed

TOKEN = "benchmark-key"


def seed_db(db: Path, users: int, workspaces: int, memberships_per_workspace: int) -> float:
    started = time.perf_counter()
    emails = [f"user{n:05d}@example.com" for n in range(users)]
    names = [f"workspace-{n:02d}" for n in range(workspaces)]
    seed(
        db,
        users=((email, "developer" if n % 10 else "admin", "active") for n, email in enumerate(emails)),
        workspaces=names,
        memberships=(
            (name, emails[(w * 997 + m) % users])
            for w, name in enumerate(names)
            for m in range(memberships_per_workspace)
        ),
    )
    return time.perf_counter() - started


def serve(db: Path) -> tuple[subprocess.Popen, str]:
    # The sandbox group directly, so the benchmark does not depend on the other commands importing.
    command = [
        sys.executable,
        "-c",
        "from provisioner.cli.sandbox import sandbox; sandbox()",
        "serve",
        "--db",
        str(db),
        "--port",
        "0",
        "--token",
        TOKEN,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    banner = process.stderr.readline()  # "Sandbox API at http://127.0.0.1:PORT/api/v1 (db ...)"
    return process, banner.split()[3]


def hammer(base_url: str, threads: int, total: int) -> tuple[int, int, float]:
    """Send ``total`` requests from ``threads`` threads; (ok, failed, seconds)."""
    per_thread = total // threads
    ok = [0] * threads
    failed = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {TOKEN}"
        next_url: str | None = None
        barrier.wait()
        for n in range(per_thread):
            if n % 4 == 3:
                url = f"{base_url}/me/"
            else:  # walk the users 100 at a time, starting over at the end
                url = next_url or f"{base_url}/users/?page_size=100"
            response = session.get(url, timeout=30)
            if response.status_code == 200:
                ok[index] += 1
                if "/users/" in url:
                    next_url = response.json()["next"]
            else:
                failed[index] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return sum(ok), sum(failed), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        seconds = seed_db(db, users=10_000, workspaces=50, memberships_per_workspace=2_000)
        print(f"seeded 10,000 users, 50 workspaces, 100,000 memberships in {seconds:.1f} s")
        process, base_url = serve(db)
        try:
            ok, failed, elapsed = hammer(base_url, args.threads, args.requests)
            stats = requests.get(
                f"{base_url}/_sandbox/stats", headers={"Authorization": f"Token {TOKEN}"}, timeout=10
            ).json()
        finally:
            process.terminate()
            process.wait(10)
    print(f"{ok + failed} requests ({failed} failed) from {args.threads} threads in {elapsed:.2f} s")
    print(f"server counted {stats['total']}: {stats['by_route']}")
    print(f"{(ok + failed) / elapsed:.0f} requests/second")


if __name__ == "__main__":
    main()
