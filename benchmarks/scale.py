"""Performance at organization scale: plan and apply against a sandbox with latency.

One command, bounded, loopback only, stops by itself (a few minutes on 2 cores):

    python benchmarks/scale.py

It generates an organization of 10,000 users, 50 workspace instances (16
workspaces x 3 environments + 2 plain ones: the API's limit) and 100,000
memberships; seeds a sandbox db with it directly (``provisioner.sandbox.seed``)
and writes the matching YAML config, whose plan is empty, plus variants with
1%, 5% and 10% of changes (grants, revocations, invites, role changes; a
percentage counts changes against the 100,000 memberships).

Then, for each variant, it runs the real CLI (``provisioner plan`` and
``provisioner apply``, subprocesses) against ``provisioner sandbox serve
--latency-ms 20`` on 127.0.0.1, and prints requests per route (from the
sandbox's stats endpoint, reset before each run), the fewest requests the work
needs, wall time against the latency lower bound, and peak RSS. It times the
local work (load, validate, expand, diff, render) in-process against a bare
``yaml.load`` with libyaml, and checks apply under ``--rate-limit 20``.
Every figure is printed next to its target with PASS or FAIL.

``--only-published-limits`` (issue 24) runs instead, against ``sandbox serve
--recall-limits`` (Recall.ai's 60 list and 300 other requests a minute per
key), with ``--pace published``: a full-read plan, snapshot plans unchanged
and after 100 out-of-band changes, and an apply, each against the time the
limits allow (``Allowed``).

The package is byte-compiled first (``compileall``), as an installed wheel is:
a source tree run with PYTHONDONTWRITEBYTECODE would otherwise compile every
changed module on every run, which no user pays.

Not a test: nothing here is asserted in the test suite.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from provisioner.api.client import PAGE_SIZE, ApiClient
from provisioner.api.reader import read_state
from provisioner.config import load_config
from provisioner.model import State
from provisioner.plan.diff import diff
from provisioner.render.plan_text import render_text
from provisioner.sandbox import create_token, seed, start_sandbox
from provisioner.sandbox.server import create_workspace_key

TOKEN = "scale-benchmark-key"
# A config may only name a variable with RECALL or PROVISIONER as a word (provisioner.endpoint).
TOKEN_ENV = "RECALL_SCALE_BENCH_KEY"
ORG = "scale-org"
ADMIN = "admin@example.com"  # the sandbox's own admin, created with the db
ENVIRONMENTS = ("development", "staging", "production")
LATENCY_MS = 20
PARALLELISM = 8
RATE_LIMIT = 20
RATE_LIMIT_CHANGES = 200

# Targets (issue 6).
PLAN_REQUESTS_FACTOR = 1.05
APPLY_REQUESTS_FACTOR = 1.02
PLAN_WALL_FACTOR = 1.5
LOCAL_VS_BARE_FACTOR = 3.0
LOCAL_MAX_S = 2.0
APPLY_THROUGHPUT_SHARE = 0.70
THROUGHPUT_CHANGES = 5_000
PEAK_RSS_MB = 300
MAX_429_SHARE = 0.01
# Targets (issue 16): the floor of a plan is a bare parse of the config plus
# the latency bound of its reads; requests stay at the page minimum.
PLAN_VS_FLOOR = 1.3
VALIDATE_VS_BARE = 2.0
# Targets (issue 24): plans from a snapshot cost what changed.
SNAPSHOT_UNCHANGED_REQUESTS = 2
OUT_OF_BAND_CHANGES = 100
BARE_PARSE_CODE = "import sys, yaml; yaml.load(open(sys.argv[1], 'rb').read(), Loader=yaml.CSafeLoader)"


# --- the organization -----------------------------------------------------------


@dataclass
class Org:
    """One side of the benchmark: users and who is in which instance.

    ``explicit`` are the members written under each instance; production
    instances also get the ``sre`` group through ``environments``.
    """

    roles: dict[str, str]  # email -> role (ADMIN included)
    sre: list[str]
    workspaces: list[tuple[str, list[str]]]  # (base name, environments); [] for a plain one
    explicit: dict[str, list[str]]  # instance -> emails written under it

    def instances(self) -> list[tuple[str, str | None, str, str | None]]:
        """(instance, environment, base, env) in config order."""
        out = []
        for base, envs in self.workspaces:
            if envs:
                out += [(f"{base}-{env}", env, base, env) for env in envs]
            else:
                out.append((base, None, base, None))
        return out

    def members(self, instance: str, environment: str | None) -> set[str]:
        extra = self.sre if environment == "production" else []
        return set(self.explicit[instance]) | set(extra)

    def membership_pairs(self) -> list[tuple[str, str]]:
        return [
            (name, email) for name, env, _, _ in self.instances() for email in sorted(self.members(name, env))
        ]

    def copy(self) -> Org:
        return Org(
            dict(self.roles),
            list(self.sre),
            list(self.workspaces),
            {k: list(v) for k, v in self.explicit.items()},
        )


def scale_org(users: int, workspaces: int, plain: int, per_instance: int) -> Org:
    """``users`` users (the admin included), ``workspaces`` x 3 + ``plain`` instances,
    ``per_instance`` members in each."""
    generated = [f"u{n:05d}@scale.example" for n in range(users - 1)]
    roles = {ADMIN: "admin"}
    roles.update((email, "admin" if n % 50 == 0 else "developer") for n, email in enumerate(generated))
    sre = generated[1:21]
    sre_set = set(sre)
    spec = [(f"svc{k:02d}", list(ENVIRONMENTS)) for k in range(workspaces)]
    spec += [(f"lab{k}", []) for k in range(plain)]
    org = Org(roles, sre, spec, {})
    for w, (name, env, _, _) in enumerate(org.instances()):
        wanted = per_instance - (len(sre) if env == "production" else 0)
        chosen: list[str] = []
        j = 0
        while len(chosen) < wanted:  # 7 is coprime with len(generated): no repeats
            email = generated[(w * 997 + j * 7) % len(generated)]
            j += 1
            if env == "production" and email in sre_set:
                continue
            chosen.append(email)
        org.explicit[name] = chosen
    return org


@dataclass
class Variant:
    name: str
    org: Org
    counts: dict[str, int] = field(default_factory=dict)  # kind of change -> how many

    @property
    def changes(self) -> int:
        return sum(self.counts.values())


def mutate(base: Org, changes: int, seed_: int) -> Variant:
    """``base`` with ``changes`` changes: 40% grants, 30% revocations, 10% invites, 20% role changes."""
    rng = random.Random(seed_)
    org = base.copy()
    grants, revokes, invites = changes * 40 // 100, changes * 30 // 100, changes * 10 // 100
    roles_n = changes - grants - revokes - invites
    instances = org.instances()
    generated = [e for e in org.roles if e != ADMIN]
    touched: set[tuple[str, str]] = set()
    for _ in range(revokes):
        while True:
            name = rng.choice(instances)[0]
            members = org.explicit[name]
            i = rng.randrange(len(members))
            if (name, members[i]) not in touched:
                touched.add((name, members.pop(i)))
                break
    for _ in range(grants):
        while True:
            name, env, _, _ = rng.choice(instances)
            email = rng.choice(generated)
            if (name, email) not in touched and email not in org.members(name, env):
                touched.add((name, email))
                org.explicit[name].append(email)
                break
    for n in range(invites):
        org.roles[f"new{n:05d}@scale.example"] = "developer"
    admins = [e for e in generated if org.roles[e] == "admin"]
    demotions = min(roles_n // 2, len(admins) // 2)
    for email in rng.sample(admins, demotions):
        org.roles[email] = "developer"
    developers = [e for e in generated if base.roles[e] == "developer"]
    for email in rng.sample(developers, roles_n - demotions):
        org.roles[email] = "admin"
    counts = {
        "grant": grants,
        "revoke": revokes,
        "invite": invites,
        "promote": roles_n - demotions,
        "demote": demotions,
    }
    return Variant(f"{changes:,} changes", org, counts)


def config_text(org: Org) -> str:
    """The YAML config of ``org`` (every 10th grant carries an expiry and a reason)."""
    out = [
        "# Generated by benchmarks/scale.py",
        "version: 1",
        "organization:",
        "  region: us-east-1",  # the benchmark passes --api-url
        f"  name: {ORG}",
        f"  token_env: {TOKEN_ENV}",
        "environments:",
        "  development: {members: []}",
        "  staging: {members: []}",
        '  production: {members: ["@sre"]}',
        "users:",
    ]
    out += [f"  - {{email: {email}, role: {role}}}" for email, role in org.roles.items()]
    out += ["groups:", "  sre:"] + [f"    - {email}" for email in org.sre]
    out.append("workspaces:")
    explicit = org.explicit

    def member_lines(emails: list[str], indent: str) -> list[str]:
        return [
            f"{indent}- {{user: {e}, expires: 2099-12-31, reason: OPS-{i}}}"
            if i % 10 == 0
            else f"{indent}- {e}"
            for i, e in enumerate(emails)
        ]

    for base, envs in org.workspaces:
        out.append(f"  - name: {base}")
        if envs:
            out.append(f"    environments: [{', '.join(envs)}]")
            out.append("    members:")
            for env in envs:
                out.append(f"      {env}:")
                out += member_lines(explicit[f"{base}-{env}"], "        ")
        else:
            out.append("    members:")
            out += member_lines(explicit[base], "      ")
    out += ["policy:", "  min_admins: 2", '  max_removals: "25%"', f"  protected_users: [{ADMIN}]"]
    return "\n".join(out) + "\n"


def seed_db(db: Path, org: Org) -> float:
    started = time.perf_counter()
    seed(
        db,
        users=((e, r, "active") for e, r in org.roles.items() if e != ADMIN),
        workspaces=[name for name, _, _, _ in org.instances()],
        memberships=org.membership_pairs(),
        admin_email=ADMIN,
        org_name=ORG,
    )
    return time.perf_counter() - started


# --- running things -----------------------------------------------------------------


class Sandbox:
    """``provisioner sandbox serve`` in a subprocess on 127.0.0.1."""

    def __init__(self, db: Path, latency_ms: int, rate_limit: int | None = None, recall_limits: bool = False):
        command = [
            sys.executable,
            "-m",
            "provisioner",
            "sandbox",
            "serve",
            "--db",
            str(db),
            "--port",
            "0",
            "--token",
            TOKEN,
            "--org-name",
            ORG,
            "--latency-ms",
            str(latency_ms),
        ]
        if rate_limit:
            command += ["--rate-limit", str(rate_limit)]
        if recall_limits:
            command.append("--recall-limits")
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        banner = self.process.stderr.readline()  # "Sandbox API at http://127.0.0.1:PORT/api/v1 (db ...)"
        if not banner.startswith("Sandbox API at "):
            self.process.kill()
            raise SystemExit(f"the sandbox did not start: {banner}{self.process.stderr.read()}")
        self.base_url = banner.split()[3]
        # Keep draining stderr so that a chatty server can never block on a full pipe.
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.process.stderr), daemon=True).start()

    def reset_stats(self) -> None:
        request = urllib.request.Request(
            f"{self.base_url}/_sandbox/stats/reset",
            method="POST",
            headers={"Authorization": f"Token {TOKEN}"},
        )
        urllib.request.urlopen(request, timeout=10).read()

    def stats(self) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/_sandbox/stats", headers={"Authorization": f"Token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class CliRun:
    returncode: int
    wall: float
    peak_rss_mb: float
    stdout: str
    stderr: list[tuple[float, str]]  # (seconds since start, line)


def run_cli(args: list[str], *, timeout: float = 300, env_extra: dict[str, str] | None = None) -> CliRun:
    """Run ``provisioner ARGS``; wall time, and peak RSS from wait4 on this very child."""
    # Every plan here measures a full read unless it asks for the snapshot (issue 24's section).
    env = {**os.environ, TOKEN_ENV: TOKEN, "NO_COLOR": "1", "PROVISIONER_NO_CACHE": "1", **(env_extra or {})}
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        lines: list[tuple[float, str]] = []

        def drain() -> None:  # stderr is line-buffered: stamp each line as it arrives
            for line in process.stderr:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        killer = threading.Timer(timeout, process.kill)  # bounded: never hangs the benchmark
        killer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        reader.join(10)
        out.seek(0)
        stdout = out.read()
    return CliRun(process.returncode, wall, usage.ru_maxrss / 1024, stdout, lines)


# --- the figures -------------------------------------------------------------------------


def pages(n: int) -> int:
    """Pages of a listing of ``n`` items (an empty listing is still one request)."""
    return max(1, math.ceil(n / PAGE_SIZE))


@dataclass
class ReadShape:
    """What a full read of the organization costs at least."""

    users: int
    workspaces: int
    per_workspace: list[int]

    webhooks: int = 0
    credentials: int = 0
    api_keys: int = 0

    @property
    def minimum(self) -> int:
        # The settings and key listings are organization-wide: pages, not workspaces (issues 13, 14).
        settings = pages(self.webhooks) + pages(self.credentials) + pages(self.api_keys)
        return 1 + pages(self.users) + pages(self.workspaces) + sum(map(pages, self.per_workspace)) + settings

    def rounds(self, parallelism: int) -> tuple[int, str]:
        """Request rounds that cannot overlap, and how they were counted.

        Round 1 sends /me/, the first users page and the workspaces page
        together. The users listing is one chain of pages (each needs the
        previous one's ``next``), and so is each workspace's memberships
        listing, which can only start after the workspaces page. From round 2
        on every slot can be busy, so the rest takes at least
        ceil(remaining / parallelism) rounds, and never fewer than the longest
        chain still to run.
        """
        user_pages = pages(self.users)
        member_pages = sum(map(pages, self.per_workspace))
        longest = max(user_pages - 1, max(map(pages, self.per_workspace), default=0))
        rest = (user_pages - 1) + member_pages + (pages(self.workspaces) - 1)
        rounds = 1 + max(longest, math.ceil(rest / parallelism))
        why = (
            f"1 round (/me, users p1, workspaces) + max(longest remaining chain {longest}, "
            f"ceil(({user_pages - 1} users + {member_pages} membership pages) / {parallelism}) "
            f"= {math.ceil(rest / parallelism)})"
        )
        return rounds, why


# --- workspace settings (issue 13) -------------------------------------------------------

SETTINGS_WEBHOOKS = 3  # per instance
SETTINGS_ROTATED = 10  # secrets changed between the two applies


def settings_lines(base: str, plain: bool) -> list[str]:
    """Per instance: 3 webhooks, 2 transcription credentials and 1 Zoom app (2 secrets)."""
    env = "" if plain else "_{ENVIRONMENT}"
    url_env = "" if plain else "/{environment}"
    out = ["    webhooks:"]
    for n in range(SETTINGS_WEBHOOKS):
        out += [
            f'      - url: "https://hooks.example.invalid/{{workspace}}{url_env}/{n}"',
            "        events: [bot.status_change, transcript.done]",
        ]
    out += [
        "    transcription:",
        f'      deepgram: {{api_key: {{env: "BENCH_DG_KEY_{{WORKSPACE}}{env}"}}}}',
        f'      assembly_ai: {{api_key: {{env: "BENCH_AAI_KEY_{{WORKSPACE}}{env}"}}}}',
        "    platforms:",
        f'      zoom: {{client_id: "zoom-{base}", client_secret: {{env: "BENCH_ZS_SECRET_{{WORKSPACE}}{env}"}},'
        f' webhook_secret: {{env: "BENCH_ZH_HOOK_{{WORKSPACE}}{env}"}}}}',
    ]
    return out


def settings_config(org: Org) -> str:
    """``config_text(org)`` with settings on every workspace entry."""
    lines = config_text(org).splitlines()
    out: list[str] = []
    plain = {base for base, envs in org.workspaces if not envs}
    current: str | None = None
    for line in lines + [""]:
        if (line.startswith("  - name: ") or line.startswith("policy:")) and current is not None:
            out += settings_lines(current, current in plain)
            current = None
        if line.startswith("  - name: "):
            current = line.split(": ", 1)[1]
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def settings_secrets(org: Org, rotated: int = 0) -> dict[str, str]:
    """A value for every secret variable; the first ``rotated`` deepgram keys changed."""
    values: dict[str, str] = {}
    n = 0
    for _, env, base, _ in org.instances():
        suffix = f"_{env.upper()}" if env else ""
        for prefix in ("BENCH_DG_KEY", "BENCH_AAI_KEY", "BENCH_ZS_SECRET", "BENCH_ZH_HOOK"):
            name = f"{prefix}_{base.upper()}{suffix}"
            values[name] = f"{name.lower()}-0123456789"
            if prefix == "BENCH_DG_KEY":
                if n < rotated:
                    values[name] += "-rotated"
                n += 1
    return values


def settings_benchmark(tmp: Path) -> None:
    """Plan and apply an organization whose 50 instances each carry settings."""
    org = scale_org(200, workspaces=16, plain=2, per_instance=30)
    instances = len(org.instances())
    webhooks, credentials = instances * SETTINGS_WEBHOOKS, instances * 3
    shape = ReadShape(
        len(org.roles),
        instances,
        [len(org.members(n, e)) for n, e, _, _ in org.instances()],
        webhooks=webhooks,
        credentials=credentials,
    )
    # Today's reads: what a plan read before settings existed (no settings listings at all).
    today = shape.minimum - pages(webhooks) - pages(credentials)
    print(
        f"organization: {len(org.roles)} users, {instances} instances, each with {SETTINGS_WEBHOOKS} "
        f"webhooks, 2 transcription credentials and a Zoom app ({webhooks} webhooks, {credentials} "
        f"credentials); page minimum {shape.minimum} = {today} for today's reads + "
        f"{shape.minimum - today} settings pages"
    )
    db = tmp / "settings.db"
    seed_db(db, org)
    config = tmp / "settings.yaml"
    config.write_text(settings_config(org))
    sink = ["--secrets-dir", str(tmp / "secrets")]
    with Sandbox(db, 0) as sandbox:
        made = run_cli(
            ["apply", "-c", str(config), "--api-url", sandbox.base_url, "--auto-approve", *sink],
            env_extra=settings_secrets(org),
            timeout=600,
        )
        if made.returncode != 0:
            raise SystemExit(
                "setting up the settings failed:\n" + "\n".join(line for _, line in made.stderr[-10:])
            )
    with Sandbox(db, LATENCY_MS) as sandbox:
        sandbox.reset_stats()
        plan = run_cli(
            ["plan", "-c", str(config), "--api-url", sandbox.base_url, "--detailed-exitcode"],
            env_extra=settings_secrets(org),
        )
        stats = sandbox.stats()
        show_routes(stats)
        check(
            "settings plan requests (issue 13)",
            f"{stats['total']} (page minimum {shape.minimum}: today's {today} + "
            f"{shape.minimum - today} settings pages; {stats['total'] / shape.minimum:.3f}x)",
            f"<= {PLAN_REQUESTS_FACTOR} x minimum",
            stats["total"] <= PLAN_REQUESTS_FACTOR * shape.minimum,
        )
        check(
            "unchanged secrets cost no request (issue 13)",
            f"exit {plan.returncode}; {stats['total'] - shape.minimum} requests beyond the pages",
            "exit 0 and 0 extra",
            plan.returncode == 0 and stats["total"] == shape.minimum,
        )
        sandbox.reset_stats()
        rotated = settings_secrets(org, SETTINGS_ROTATED)
        applied = run_cli(
            ["apply", "-c", str(config), "--api-url", sandbox.base_url, "--auto-approve", *sink],
            env_extra=rotated,
        )
        stats = sandbox.stats()
        writes = {r: n for r, n in stats["by_route"].items() if not r.startswith("GET ")}
        check(
            "settings apply requests (issue 13)",
            f"exit {applied.returncode}; {stats['total']} = reads + {sum(writes.values())} writes {writes}",
            f"= page minimum {shape.minimum} + {SETTINGS_ROTATED} PATCHes",
            applied.returncode == 0
            and stats["total"] == shape.minimum + SETTINGS_ROTATED
            and sum(writes.values()) == SETTINGS_ROTATED,
        )


# --- API keys (issue 14) ------------------------------------------------------------------

KEYS_PER_INSTANCE = 10  # 500 keys across the 50 instances
NEW_KEYS_PER_INSTANCE = 1  # the apply makes one more key in each instance


def keys_config(org: Org, per_instance: int) -> str:
    """``config_text(org)`` with ``per_instance`` keys, owned by the admin, on every workspace entry."""
    lines = config_text(org).splitlines()
    out: list[str] = []
    for line in lines:
        out.append(line)
        if line.startswith("  - name: "):
            out.append("    api_keys:")
            out += [f"      - {{name: key-{n}, owner: {ADMIN}}}" for n in range(per_instance)]
    return "\n".join(out) + "\n"


def keys_benchmark(tmp: Path) -> None:
    """Plan an organization with 500 keys; apply one that makes 50 more (and delivers each)."""
    org = scale_org(200, workspaces=16, plain=2, per_instance=30)
    instances = len(org.instances())
    keys = instances * KEYS_PER_INSTANCE
    shape = ReadShape(
        len(org.roles),
        instances,
        [len(org.members(n, e)) for n, e, _, _ in org.instances()],
        api_keys=keys,
    )
    today = shape.minimum - pages(keys) + 1  # before issue 14 the key listing was not read at all
    db = tmp / "keys.db"
    seed_db(db, org)
    config = tmp / "keys.yaml"
    config.write_text(keys_config(org, KEYS_PER_INSTANCE))
    sink = tmp / "key-secrets"
    print(
        f"organization: {len(org.roles)} users, {instances} instances x {KEYS_PER_INSTANCE} keys = {keys} keys; "
        f"page minimum {shape.minimum} (today's reads {today - 1} + {pages(keys)} key pages)"
    )
    with Sandbox(db, 0) as sandbox:
        made = run_cli(
            [
                "apply",
                "-c",
                str(config),
                "--api-url",
                sandbox.base_url,
                "--auto-approve",
                "--secrets-dir",
                str(sink),
            ],
            timeout=600,
        )
        if made.returncode != 0:
            raise SystemExit("making the keys failed:\n" + "\n".join(line for _, line in made.stderr[-10:]))
    with Sandbox(db, LATENCY_MS) as sandbox:
        sandbox.reset_stats()
        plan = run_cli(["plan", "-c", str(config), "--api-url", sandbox.base_url, "--detailed-exitcode"])
        stats = sandbox.stats()
        show_routes(stats)
        check(
            "API keys plan requests (issue 14)",
            f"exit {plan.returncode}; {stats['total']} (page minimum {shape.minimum}; "
            f"{stats['total'] / shape.minimum:.3f}x)",
            f"<= {PLAN_REQUESTS_FACTOR} x minimum, no changes",
            plan.returncode == 0 and stats["total"] <= PLAN_REQUESTS_FACTOR * shape.minimum,
        )
        more = tmp / "keys-more.yaml"
        more.write_text(keys_config(org, KEYS_PER_INSTANCE + NEW_KEYS_PER_INSTANCE))
        before = sum(1 for p in sink.rglob("*") if p.is_file())
        sandbox.reset_stats()
        applied = run_cli(
            [
                "apply",
                "-c",
                str(more),
                "--api-url",
                sandbox.base_url,
                "--auto-approve",
                "--secrets-dir",
                str(sink),
            ],
            timeout=600,
        )
        stats = sandbox.stats()
        created = instances * NEW_KEYS_PER_INSTANCE
        delivered = sum(1 for p in sink.rglob("*") if p.is_file()) - before
        writes = {r: n for r, n in stats["by_route"].items() if not r.startswith("GET ")}
        reads = stats["total"] - sum(writes.values())
        check(
            "API keys apply requests (issue 14)",
            f"exit {applied.returncode}; {sum(writes.values())} writes {writes}, {delivered} secrets delivered, "
            f"{reads} reads",
            f"= {created} creates + {created} deliveries, reads = the plan's {shape.minimum}",
            applied.returncode == 0
            and writes == {"POST /api/v1/api_keys/": created}
            and delivered == created
            and reads == shape.minimum,
        )


# --- plans from a snapshot (issue 24) ------------------------------------------------------


def _api(base_url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def out_of_band_role_changes(base_url: str, count: int) -> int:
    """Flip the role of ``count`` developers through the API, as someone would by hand."""
    flipped, url = 0, f"/users/?page_size={PAGE_SIZE}"
    while flipped < count and url:
        page = _api(base_url, "GET", url)
        for user in page["results"]:
            if flipped < count and user["role"] == "developer":
                _api(base_url, "PATCH", f"/users/{user['id']}/", {"role": "admin"})
                flipped += 1
        url = page["next"][len(base_url) :] if page["next"] else None
    return flipped


def _json_plan(sandbox: Sandbox, config: Path, *options: str) -> tuple[CliRun, dict, dict]:
    """One ``plan --format json`` run: the run, the sandbox's stats, the plan document."""
    sandbox.reset_stats()
    run = run_cli(
        ["plan", "-c", str(config), "--api-url", sandbox.base_url, "--format", "json", "--force", *options],
        env_extra={"PROVISIONER_NO_CACHE": ""},
    )
    stats = sandbox.stats()
    document = json.loads(run.stdout) if run.stdout.strip().startswith("{") else {}
    return run, stats, document


def _same_plan(a: dict, b: dict) -> bool:
    fields = ("changes", "digest", "state_fingerprint")
    return bool(a) and all(a.get(k) == b.get(k) for k in fields)


def snapshot_benchmark(tmp: Path, template: Path, config: Path, runs: int) -> None:
    """Unchanged and 100 out-of-band changes, planned from a snapshot, against the full read.

    The plan after the changes runs ``runs`` times from the same cache folder,
    each paired with a bare parse run just before it; the figure is the median
    ratio (the machine's speed drifts between minutes, the pair's does not).
    """
    db = tmp / "snapshot.db"
    shutil.copy(template, db)
    cache = tmp / "snapshot-cache"
    with Sandbox(db, LATENCY_MS) as sandbox:
        first, stats, full = _json_plan(sandbox, config, "--cache-dir", str(cache))
        print(
            f"  first plan (a full read, saves the snapshot): {stats['total']:,} requests, {first.wall:.2f} s"
        )

        run, stats, unchanged = _json_plan(sandbox, config, "--cache-dir", str(cache))
        print(f"\n  unchanged, from the snapshot: {run.wall:.2f} s")
        show_routes(stats)
        check(
            "unchanged plan from a snapshot: requests (issue 24)",
            f"{stats['total']}",
            f"<= {SNAPSHOT_UNCHANGED_REQUESTS}",
            stats["total"] <= SNAPSHOT_UNCHANGED_REQUESTS,
        )
        check(
            "unchanged plan from a snapshot = full read (issue 24)",
            "same changes, digest, fingerprint" if _same_plan(unchanged, full) else "DIFFERENT",
            "identical",
            _same_plan(unchanged, full),
        )

        flipped = out_of_band_role_changes(sandbox.base_url, OUT_OF_BAND_CHANGES)
        # Each run plans the same moment: the cache folder as the unchanged plan left it.
        before_feed = tmp / "snapshot-cache-before-feed"
        shutil.copytree(cache, before_feed)
        pairs: list[tuple[float, float, float]] = []  # (plan wall, bare parse, latency)
        for _ in range(runs):
            shutil.rmtree(cache)
            shutil.copytree(before_feed, cache)
            bare_now = bare_parse_s(config, runs=1)
            run, stats, fed = _json_plan(sandbox, config, "--cache-dir", str(cache))
            pairs.append((run.wall, bare_now, stats["total"] * LATENCY_MS / 1000))
        allowed = 2 + math.ceil(flipped / PAGE_SIZE)
        print(
            f"\n  {flipped} out-of-band changes, from the snapshot and the feed, {runs} runs: "
            + ", ".join(f"{wall:.2f} s" for wall, _, _ in pairs)
        )
        show_routes(stats)
        check(
            f"{flipped} out-of-band changes from a snapshot: requests (issue 24)",
            f"{stats['total']}",
            f"<= 2 + ceil({flipped} / {PAGE_SIZE}) = {allowed}",
            stats["total"] <= allowed,
        )
        ratios = sorted(wall / (bare_now + latency) for wall, bare_now, latency in pairs)
        wall, bare_now, latency = sorted(pairs)[len(pairs) // 2]
        median = ratios[len(ratios) // 2]
        check(
            f"{flipped} out-of-band changes from a snapshot: wall (issue 24)",
            f"median of {runs} paired runs {median:.2f}x (range {ratios[0]:.2f}-{ratios[-1]:.2f}x; "
            f"median run {wall:.2f} s against bare parse {bare_now:.2f} s + {latency:.2f} s latency)",
            "< 1 x (bare parse + latency)",
            median < 1,
        )
        _, full_stats, full_again = _json_plan(sandbox, config, "--no-cache")
        check(
            "plan from snapshot + feed = full read (issue 24)",
            f"{len(fed.get('changes', []))} changes each; "
            + ("same digest" if _same_plan(fed, full_again) else "DIFFERENT"),
            "identical",
            _same_plan(fed, full_again),
        )
        print(f"  (the full read it was compared with: {full_stats['total']:,} requests)")


# --- the published limits (issue 24) ----------------------------------------------------------

# Recall.ai's published limits a minute per workspace (= per key), and how a paced run is asked for.
PUBLISHED_LIST_PER_MINUTE = 60
PUBLISHED_OTHER_PER_MINUTE = 300
PUBLISHED_PACE = ["--pace", "published"]
PUBLISHED_VS_ALLOWED = 1.10
PUBLISHED_SNAPSHOT_WALL_S = 10.0
PUBLISHED_APPLY_CHANGES = 300
# Every GET of a collection of the contract, as the sandbox counts them: the list class.
LIST_ROUTES = frozenset(
    f"GET /api/v1/{name}/"
    for name in (
        "users",
        "workspaces",
        "workspace_memberships",
        "api_keys",
        "webhook_endpoints",
        "credentials",
        "changes",
    )
)


@dataclass(frozen=True)
class Allowed:
    """The time the published limits allow for a run's requests, and how it was counted.

    Each class's bucket holds a minute's allowance (the first minute's burst)
    and refills at its rate: lists beyond 60 take 1 s each, others beyond 300
    take 0.2 s each. A run can never be faster than its latency rounds either,
    nor than a bare parse of its config (it parses before its first request).
    A plan's two classes run side by side: allowed = bare parse +
    max(list time, other time, latency rounds). An apply writes after its
    read, with a full other bucket (a bucket holds no more than a minute's
    allowance, however long the read): allowed = bare parse + max(list time,
    read latency) + max(other time, write latency rounds).
    """

    lists: int
    others: int
    read_s: float
    writes_s: float
    bare_s: float

    @classmethod
    def of(
        cls, stats: dict, *, read_latency_s: float, bare_s: float, write_latency_s: float | None = None
    ) -> Allowed:
        """``write_latency_s`` for an apply (its writes come after the read), None for a plan."""
        lists = sum(n for route, n in stats["by_route"].items() if route in LIST_ROUTES)
        others = stats["total"] - lists
        list_s = max(0, lists - PUBLISHED_LIST_PER_MINUTE) * 60 / PUBLISHED_LIST_PER_MINUTE
        other_s = max(0, others - PUBLISHED_OTHER_PER_MINUTE) * 60 / PUBLISHED_OTHER_PER_MINUTE
        if write_latency_s is None:
            return cls(lists, others, max(list_s, other_s, read_latency_s), 0.0, bare_s)
        return cls(lists, others, max(list_s, read_latency_s), max(other_s, write_latency_s), bare_s)

    @property
    def seconds(self) -> float:
        return self.bare_s + self.read_s + self.writes_s

    def why(self) -> str:
        return (
            f"{self.lists:,} lists, {self.others:,} others (lists past 60 at 1/s, others past 300 at 5/s): "
            f"bare parse {self.bare_s:.2f} s + read {self.read_s:.1f} s + writes {self.writes_s:.1f} s "
            f"= {self.seconds:.1f} s"
        )


def _paced(sandbox: Sandbox, key: str, args: list[str], *, cache: Path | None = None) -> tuple[CliRun, dict]:
    """One CLI run with ``key``, paced to the published limits; the sandbox's counts of it."""
    sandbox.reset_stats()
    env = {TOKEN_ENV: key, "PROVISIONER_NO_CACHE": "" if cache else "1"}
    options = ["--cache-dir", str(cache)] if cache else []
    run = run_cli(
        [*args, "--api-url", sandbox.base_url, *PUBLISHED_PACE, *options], timeout=3600, env_extra=env
    )
    return run, sandbox.stats()


def _report_published(label: str, run: CliRun, stats: dict, allowed: Allowed | None) -> None:
    print(f"\n  {label}: exit {run.returncode}; {run.wall:.1f} s; {plan_summary(run.stdout)}")
    if run.returncode not in (0, 2):
        print("    stderr:", "\n".join(line for _, line in run.stderr[-10:]))
    show_routes(stats)
    check(
        f"{label}: 429 answers", f"{stats['throttled']} of {stats['total']:,}", "0", stats["throttled"] == 0
    )
    if allowed is not None:
        print(f"    time the limits allow: {allowed.why()}")
        check(
            f"{label}: wall vs what the limits allow",
            f"{run.wall:.1f} s = {run.wall / allowed.seconds:.3f}x {allowed.seconds:.1f} s",
            f"<= {PUBLISHED_VS_ALLOWED} x",
            run.wall <= PUBLISHED_VS_ALLOWED * allowed.seconds,
        )


def published_limits_benchmark(
    tmp: Path, template: Path, base: Org, shape: ReadShape, config: Path, bare: float, apply_changes: int
) -> None:
    """A full-read plan, snapshot plans and an apply, paced, under ``sandbox serve --recall-limits``.

    Each CI job has its own key, so each step starts with its key's full
    buckets: the plans with one key (a pull request's), the apply with
    another (the merge job's), the out-of-band changes with a third.
    """
    db = tmp / "published.db"
    shutil.copy(template, db)
    cache = tmp / "published-cache"
    latency = LATENCY_MS / 1000
    with Sandbox(db, LATENCY_MS, recall_limits=True) as sandbox:
        plan_key, apply_key = create_token(db, ADMIN), create_token(db, ADMIN)
        # A full read (--refresh reads in full, as --no-cache does) that also saves the snapshot.
        run, stats = _paced(sandbox, plan_key, ["plan", "-c", str(config), "--refresh"], cache=cache)
        rounds, _ = shape.rounds(PARALLELISM)
        allowed = Allowed.of(stats, read_latency_s=rounds * latency, bare_s=bare)
        _report_published("full-read plan", run, stats, allowed)
        check(
            "full-read plan: requests",
            f"{stats['total']:,}",
            f"= the page minimum {shape.minimum:,}",
            stats["total"] == shape.minimum,
        )

        for label in (
            "snapshot plan, unchanged",
            f"snapshot plan, {OUT_OF_BAND_CHANGES} out-of-band changes",
        ):
            if "out-of-band" in label:
                out_of_band_role_changes(sandbox.base_url, OUT_OF_BAND_CHANGES)
            run, stats = _paced(sandbox, plan_key, ["plan", "-c", str(config)], cache=cache)
            _report_published(label, run, stats, None)
            check(
                f"{label}: wall",
                f"{run.wall:.2f} s, {stats['total']} requests",
                f"< {PUBLISHED_SNAPSHOT_WALL_S:g} s",
                run.wall < PUBLISHED_SNAPSHOT_WALL_S,
            )

        if apply_changes:
            variant = mutate(base, apply_changes, seed_=24)
            path = tmp / "config-published.yaml"
            path.write_text(config_text(variant.org))
            run, stats = _paced(sandbox, apply_key, ["apply", "-c", str(path), "--auto-approve"])
            allowed = Allowed.of(
                stats,
                read_latency_s=rounds * latency,
                bare_s=bare,
                write_latency_s=apply_rounds(variant, PARALLELISM) * latency,
            )
            # The config's changes, and the out-of-band role changes above undone: the plan's count.
            planned = sum(map(int, re.findall(r"(\d+) to (?:add|change|remove)", run.stdout)))
            label = f"apply of {planned:,} changes"
            _report_published(label, run, stats, allowed)
            progress = progress_lines(run)
            failed = [line for _, line in progress if not line.startswith("applied: ")]
            check(
                f"{label}: applied",
                f"{len(progress) - len(failed):,} applied, {len(failed)} not (exit {run.returncode})",
                f"all {planned:,}",
                run.returncode == 0 and not failed and len(progress) == planned,
            )
        print(f"\n  one full read is {shape.minimum:,} requests; paced at the published limits it takes")
        print("  about (lists - 60) / 0.95 s, since the client refills at 95 % of the published rate")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Target:
    what: str
    measured: str
    target: str
    ok: bool


TARGETS: list[Target] = []


def check(what: str, measured: str, target: str, ok: bool) -> None:
    TARGETS.append(Target(what, measured, target, ok))
    print(f"    {what}: {measured}  (target {target})  {verdict(ok)}")


def show_routes(stats: dict) -> None:
    for route, n in stats["by_route"].items():
        print(f"      {n:>7,}  {route}")
    print(f"      {stats['total']:>7,}  total ({stats.get('throttled', 0):,} answered 429)")


def plan_summary(stdout: str) -> str:
    match = re.search(r"Plan: .*", stdout)
    if match:
        return match.group(0)
    return stdout.strip().splitlines()[-1] if stdout.strip() else "(no output)"


def bare_parse_s(config: Path, runs: int = 3) -> float:
    """Median wall seconds of a process that only parses ``config`` with CSafeLoader."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", BARE_PARSE_CODE, str(config)], check=True, timeout=300)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def run_plan(sandbox: Sandbox, config: Path, shape: ReadShape, label: str, bare: float) -> CliRun:
    sandbox.reset_stats()
    run = run_cli(
        [
            "plan",
            "-c",
            str(config),
            "--api-url",
            sandbox.base_url,
            "--parallelism",
            str(PARALLELISM),
            "--detailed-exitcode",
        ]
    )
    stats = sandbox.stats()
    print(f"\n  plan, {label}: exit {run.returncode}; {plan_summary(run.stdout)}")
    if run.returncode not in (0, 2):
        print("    stderr:", "\n".join(line for _, line in run.stderr[-10:]))
    print("    requests by route:")
    show_routes(stats)
    rounds, why = shape.rounds(PARALLELISM)
    bound = rounds * LATENCY_MS / 1000
    print(f"    latency lower bound: {rounds} rounds x {LATENCY_MS} ms = {bound:.2f} s; {why}")
    check(
        "plan requests",
        f"{stats['total']:,} (minimum {shape.minimum:,}, {stats['total'] / shape.minimum:.3f}x)",
        f"<= {PLAN_REQUESTS_FACTOR} x minimum",
        stats["total"] <= PLAN_REQUESTS_FACTOR * shape.minimum,
    )
    check(
        "plan wall time",
        f"{run.wall:.2f} s ({run.wall / bound:.2f}x the bound)",
        f"<= {PLAN_WALL_FACTOR} x {bound:.2f} s",
        run.wall <= PLAN_WALL_FACTOR * bound,
    )
    floor = bare + bound
    check(
        "plan wall vs floor (issue 16)",
        f"{run.wall:.2f} s = {run.wall / floor:.2f}x (bare parse {bare:.2f} s + bound {bound:.2f} s)",
        f"<= {PLAN_VS_FLOOR} x {floor:.2f} s",
        run.wall <= PLAN_VS_FLOOR * floor,
    )
    check(
        "plan requests at the page minimum (issue 16)",
        f"{stats['total']:,}",
        f"= {shape.minimum:,}",
        stats["total"] == shape.minimum,
    )
    check("plan peak RSS", f"{run.peak_rss_mb:.0f} MB", f"< {PEAK_RSS_MB} MB", run.peak_rss_mb < PEAK_RSS_MB)
    run.requests = stats["total"]  # type: ignore[attr-defined]
    return run


def apply_rounds(variant: Variant, parallelism: int) -> int:
    """Rounds of the apply's phases (each phase is a barrier; invites, promotions,
    grants, revocations, demotions in that order)."""
    return sum(math.ceil(n / parallelism) for n in variant.counts.values() if n)


def run_apply(sandbox: Sandbox, config: Path, variant: Variant, read_requests: int) -> tuple[CliRun, dict]:
    sandbox.reset_stats()
    args = [
        "apply",
        "-c",
        str(config),
        "--api-url",
        sandbox.base_url,
        "--parallelism",
        str(PARALLELISM),
        "--auto-approve",
    ]
    run = run_cli(args, timeout=600)
    stats = sandbox.stats()
    return run, stats


def progress_lines(run: CliRun) -> list[tuple[float, str]]:
    return [(t, line) for t, line in run.stderr if line.startswith(("applied: ", "failed: ", "skipped: "))]


def report_apply(run: CliRun, stats: dict, variant: Variant, read_requests: int, label: str) -> None:
    progress = progress_lines(run)
    failed = [line for _, line in progress if not line.startswith("applied: ")]
    writes = sum(n for route, n in stats["by_route"].items() if not route.startswith("GET "))
    apply_requests = stats["total"] - read_requests
    print(
        f"\n  apply, {label}: exit {run.returncode}; {len(progress):,} changes reported, "
        f"{len(failed)} not applied; {plan_summary(run.stdout)}"
    )
    for line in failed[:5]:
        print(f"    {line}")
    print("    requests by route (the read before applying included):")
    show_routes(stats)
    print(
        f"    apply requests = {stats['total']:,} total - {read_requests:,} read (as in plan) = "
        f"{apply_requests:,}; writes {writes:,}"
    )
    check(
        "apply requests",
        f"{apply_requests:,} for {variant.changes:,} changes ({apply_requests / variant.changes:.3f}x)",
        f"<= {APPLY_REQUESTS_FACTOR} x changes, no faults",
        apply_requests <= APPLY_REQUESTS_FACTOR * variant.changes and not failed and run.returncode == 0,
    )
    if progress:
        # The first line comes after the first round of requests; count that round back in.
        phase = progress[-1][0] - progress[0][0] + LATENCY_MS / 1000
        ideal = PARALLELISM / (LATENCY_MS / 1000)
        rate = variant.changes / phase
        barrier_bound = apply_rounds(variant, PARALLELISM) * LATENCY_MS / 1000
        print(
            f"    apply phase {phase:.2f} s (first to last progress line + one {LATENCY_MS} ms round); "
            f"phase barriers alone need {barrier_bound:.2f} s; whole command {run.wall:.2f} s"
        )
        if variant.changes >= THROUGHPUT_CHANGES:
            check(
                "apply throughput",
                f"{rate:,.0f} changes/s ({rate / ideal:.0%} of {ideal:.0f}/s)",
                f">= {APPLY_THROUGHPUT_SHARE:.0%} of parallelism/latency = {ideal:.0f}/s",
                rate >= APPLY_THROUGHPUT_SHARE * ideal,
            )
        else:
            print(f"    apply throughput: {rate:,.0f} changes/s ({rate / ideal:.0%} of {ideal:.0f}/s)")
    check("apply peak RSS", f"{run.peak_rss_mb:.0f} MB", f"< {PEAK_RSS_MB} MB", run.peak_rss_mb < PEAK_RSS_MB)


# --- local work ------------------------------------------------------------------------


def best_of(n: int, fn) -> float:  # noqa: ANN001
    best = math.inf
    for _ in range(n):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def local_work(path: Path, current: State, now: datetime) -> None:
    """What plan does without the network: load, validate, expand, diff, render."""
    config = load_config(path)
    plan = diff(
        current, config.desired, config.policy, now=now, organization=ORG, config_digest=config.digest
    )
    render_text(plan, color=False)


def read_current(template: Path, tmp: Path) -> State:
    """The seeded organization as the reader sees it (in-process sandbox, no latency)."""
    db = tmp / "read.db"
    shutil.copy(template, db)
    with start_sandbox(db, token=TOKEN, org_name=ORG, admin_email=ADMIN) as running:
        with ApiClient(running.base_url, TOKEN) as client:
            return read_state(client, parallelism=PARALLELISM)


# --- main ----------------------------------------------------------------------------------


def machine() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (
        f"{os.cpu_count()} CPUs, {mem:.1f} GiB RAM, Python {platform.python_version()}, "
        f"PyYAML {yaml.__version__} (libyaml: {yaml.__with_libyaml__}), {platform.platform()}"
    )


# --- Recall.ai's v2 API: integrations-only, per-workspace keys, published limits ----------

V2_INSTANCES = 50  # the organization's workspace limit
V2_LIST_PER_MINUTE = 60  # per workspace, as the reference publishes


def v2_config(instances: int) -> str:
    """An integrations-only config: ``instances`` workspaces (one environment each), a Zoom app each."""
    lines = [
        "version: 1",
        "organization:",
        "  api_url: {api_url}",
        "  name: scale-v2",
        '  workspace_token_env: "RECALL_API_KEY_{WORKSPACE}"',
        "workspaces:",
    ]
    for i in range(instances):
        lines += [
            f"  - name: app{i:02d}",
            "    platforms:",
            "      zoom:",
            f"        client_id: zoom-app{i:02d}",
            '        client_secret: {env: "ZOOM_SECRET_{WORKSPACE}"}',
            '        webhook_secret: {env: "ZOOM_HOOK_{WORKSPACE}"}',
        ]
    return "\n".join(lines) + "\n"


def v2_benchmark(tmp: Path, instances: int) -> None:
    """Plan, apply and plan again ``instances`` Zoom apps, each instance with its own key.

    Measures what issue 22 promises: no request outside /api/v2/ (the sandbox's
    request statistics), no 429 under the published per-workspace limits
    (``--recall-limits``), and the wall time against what the limits allow.
    """
    db = tmp / "v2.db"
    seed(db, admin_email=ADMIN, org_name=ORG)
    env: dict[str, str] = {}
    for i in range(instances):
        name = f"APP{i:02d}"
        env[f"RECALL_API_KEY_{name}"] = create_workspace_key(db, f"app{i:02d}")
        env[f"ZOOM_SECRET_{name}"] = f"zoom-secret-{i}-0123456789"
        env[f"ZOOM_HOOK_{name}"] = f"zoom-hook-{i}-0123456789"
    with Sandbox(db, LATENCY_MS, recall_limits=True) as sandbox:
        config = tmp / "integrations.yaml"
        config.write_text(v2_config(instances).replace("{api_url}", sandbox.base_url))
        # No organization key at all: an integrations-only config needs none.
        env[TOKEN_ENV] = ""
        for step, args in (
            ("plan", ["plan", "-c", str(config), "--detailed-exitcode"]),
            ("apply", ["apply", "-c", str(config), "--auto-approve"]),
            ("plan again", ["plan", "-c", str(config), "--detailed-exitcode"]),
        ):
            sandbox.reset_stats()
            run = run_cli(args, env_extra=env)
            stats = sandbox.stats()
            outside = sum(n for route, n in stats["by_route"].items() if " /api/v2/" not in route)
            print(f"  {step}: exit {run.returncode}; {run.wall:.1f} s; {stats['total']:,} requests")
            show_routes(stats)
            check(f"v2 {step}: requests outside /api/v2/", str(outside), "0", outside == 0)
            check(f"v2 {step}: 429 answers", str(stats["throttled"]), "0", stats["throttled"] == 0)
            if step == "plan again":
                check(
                    "v2 plan after apply",
                    f"exit {run.returncode}",
                    "exit 0 (no changes)",
                    run.returncode == 0,
                )
        # Each instance lists its apps once per plan: one list request per workspace, far
        # under 60/min, so the floor is latency; the limits bite only within one workspace.
        print(
            f"  {instances} instances, one key each; the published limits allow "
            f"{V2_LIST_PER_MINUTE} lists/min per workspace"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-instance", type=int, default=2_000, help="members per workspace instance")
    parser.add_argument("--skip-rate-limit", action="store_true", help="skip the --rate-limit run")
    parser.add_argument(
        "--only-snapshot", action="store_true", help="run only the snapshot plans (issue 24) after seeding"
    )
    parser.add_argument(
        "--snapshot-runs",
        type=int,
        default=5,
        help="paired runs of the plan after 100 out-of-band changes (the median counts)",
    )
    parser.add_argument(
        "--only-published-limits",
        action="store_true",
        help="run only the plans and the apply paced under sandbox serve --recall-limits (issue 24) after "
        "seeding; about 2 minutes at --users 1000 --per-instance 200, about 40 at the full size",
    )
    parser.add_argument(
        "--published-apply-changes",
        type=int,
        default=PUBLISHED_APPLY_CHANGES,
        help="changes the apply under the published limits makes (0: no apply)",
    )
    parser.add_argument(
        "--v2-only",
        type=int,
        metavar="INSTANCES",
        default=None,
        help="run only the Recall.ai v2 measurement, with this many instances (a tiny run: 3)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "provisioner"), quiet=1)
    if args.v2_only is not None:
        with tempfile.TemporaryDirectory(prefix="provisioner-scale-v2-") as tmp_name:
            print(f"\n== Recall.ai v2 API: integrations-only, {args.v2_only} instances, --recall-limits ==")
            v2_benchmark(Path(tmp_name), args.v2_only)
        failed = [t for t in TARGETS if not t.ok]
        print(f"\n{len(TARGETS) - len(failed)} of {len(TARGETS)} targets met")
        raise SystemExit(1 if failed else 0)
    print(f"machine: {machine()}")
    print(
        f"sandbox: latency {LATENCY_MS} ms per request; CLI: --parallelism {PARALLELISM}, "
        f"page_size {PAGE_SIZE}"
    )

    base = scale_org(args.users, workspaces=16, plain=2, per_instance=args.per_instance)
    memberships = base.membership_pairs()
    percents = (1, 5, 10)
    variants = [Variant("no changes", base)]
    variants += [mutate(base, len(memberships) * p // 100, seed_=p) for p in percents]
    shape = ReadShape(
        len(base.roles), len(base.instances()), [len(base.members(n, e)) for n, e, _, _ in base.instances()]
    )

    with tempfile.TemporaryDirectory(prefix="provisioner-scale-") as tmp_name:
        tmp = Path(tmp_name)
        template = tmp / "template.db"
        seconds = seed_db(template, base)
        print(
            f"organization: {len(base.roles):,} users, {len(base.instances())} workspace instances "
            f"(16 x {len(ENVIRONMENTS)} environments + 2), {len(memberships):,} memberships; "
            f"seeded in {seconds:.1f} s"
        )
        configs: list[Path] = []
        for i, variant in enumerate(variants):
            path = tmp / f"config-{i}.yaml"
            path.write_text(config_text(variant.org))
            configs.append(path)
            kinds = ", ".join(f"{n:,} {k}" for k, n in variant.counts.items()) or "none"
            print(f"  config {i}: {variant.name} ({kinds}); {path.stat().st_size / 2**20:.1f} MB")

        if args.only_published_limits:
            print(
                f"\n== under the published limits (sandbox serve --recall-limits, --latency-ms {LATENCY_MS}) =="
            )
            published_limits_benchmark(
                tmp, template, base, shape, configs[0], bare_parse_s(configs[0]), args.published_apply_changes
            )
            print(
                "\n  the full-size run (10,000 users: the plan and the apply each read 1,105 pages at 60 a "
                "minute, ~18 min each):\n    python benchmarks/scale.py --only-published-limits\n"
                "  without the apply (~19 min):\n"
                "    python benchmarks/scale.py --only-published-limits --published-apply-changes 0"
            )
            summary(started)
            return

        if args.only_snapshot:
            print(f"\n== plans from a snapshot (--latency-ms {LATENCY_MS}) ==")
            snapshot_benchmark(tmp, template, configs[0], args.snapshot_runs)
            summary(started)
            return

        # 1. Local work, in-process, against a pre-read current state.
        print("\n== local work (load + validate + expand + diff + render; no network), best of 3 ==")
        current = read_current(template, tmp)
        now = datetime.now(UTC)
        for i, (variant, path) in enumerate(zip(variants, configs)):
            text = path.read_text()
            bare = best_of(3, lambda: yaml.load(text, Loader=yaml.CSafeLoader))
            ours = best_of(3, lambda: local_work(path, current, now))  # noqa: F821 (del-ed after the loop)
            print(
                f"\n  {variant.name}: bare yaml.load(CSafeLoader) {bare:.2f} s, local work {ours:.2f} s "
                f"({ours / bare:.2f}x)"
            )
            if i == 0 or variant is variants[-1]:
                check(
                    f"local work ({variant.name})",
                    f"{ours:.2f} s = {ours / bare:.2f}x bare {bare:.2f} s",
                    f"<= {LOCAL_VS_BARE_FACTOR:g}x bare and < {LOCAL_MAX_S:g} s",
                    ours <= LOCAL_VS_BARE_FACTOR * bare and ours < LOCAL_MAX_S,
                )
        del current

        # 1b. validate as a whole process against a bare parse (issue 16).
        print("\n== validate (whole process, median of 3) against a bare CSafeLoader parse process ==")
        bares = [bare_parse_s(path) for path in configs]
        validate_runs = sorted(run_cli(["validate", "-c", str(configs[0])]).wall for _ in range(3))
        validate_s = validate_runs[1]
        check(
            "validate vs bare parse (issue 16)",
            f"{validate_s:.2f} s = {validate_s / bares[0]:.2f}x bare {bares[0]:.2f} s",
            f"<= {VALIDATE_VS_BARE:g}x bare",
            validate_s <= VALIDATE_VS_BARE * bares[0],
        )

        # 2. plan for every variant against one sandbox (plan changes nothing).
        print(f"\n== plan (provisioner plan, --latency-ms {LATENCY_MS}) ==")
        reads: dict[int, int] = {}
        db = tmp / "plan.db"
        shutil.copy(template, db)
        with Sandbox(db, LATENCY_MS) as sandbox:
            for i, (variant, path) in enumerate(zip(variants, configs)):
                run = run_plan(sandbox, path, shape, variant.name, bares[i])
                expected = 0 if not variant.changes else 2
                check(
                    f"plan exit code ({variant.name})",
                    str(run.returncode),
                    str(expected),
                    run.returncode == expected,
                )
                reads[i] = run.requests  # type: ignore[attr-defined]

        # 3. apply every variant with changes, each on a fresh copy of the organization.
        print(f"\n== apply (provisioner apply --auto-approve, --latency-ms {LATENCY_MS}) ==")
        for i, (variant, path) in enumerate(zip(variants, configs)):
            if not variant.changes:
                continue
            db = tmp / f"apply-{i}.db"
            shutil.copy(template, db)
            with Sandbox(db, LATENCY_MS) as sandbox:
                run, stats = run_apply(sandbox, path, variant, reads[i])
                report_apply(run, stats, variant, reads[i], variant.name)
                # The organization now matches the config: a second plan is empty.
                again = run_cli(
                    ["plan", "-c", str(path), "--api-url", sandbox.base_url, "--detailed-exitcode"]
                )
                check(
                    f"plan after apply ({variant.name})",
                    f"exit {again.returncode}, {plan_summary(again.stdout)}",
                    "exit 0 (no changes)",
                    again.returncode == 0,
                )
            db.unlink()

        # 4. workspace settings: organization-wide listings, digests instead of secrets.
        print(f"\n== workspace settings (plan and apply, --latency-ms {LATENCY_MS}) ==")
        settings_benchmark(tmp)

        # 5. API keys: one organization-wide listing, one create and one delivery per new key.
        print(f"\n== API keys (plan and apply, --latency-ms {LATENCY_MS}) ==")
        keys_benchmark(tmp)

        # 5b. plans from a snapshot: unchanged, and after out-of-band changes.
        print(f"\n== plans from a snapshot (--latency-ms {LATENCY_MS}) ==")
        snapshot_benchmark(tmp, template, configs[0], args.snapshot_runs)

        # 6. apply under a rate limit.
        if not args.skip_rate_limit:
            print(f"\n== apply under --rate-limit {RATE_LIMIT} (and --latency-ms {LATENCY_MS}) ==")
            variant = mutate(base, RATE_LIMIT_CHANGES, seed_=42)
            path = tmp / "config-rate.yaml"
            path.write_text(config_text(variant.org))
            db = tmp / "rate.db"
            shutil.copy(template, db)
            with Sandbox(db, LATENCY_MS, rate_limit=RATE_LIMIT) as sandbox:
                run, stats = run_apply(sandbox, path, variant, shape.minimum)
                # Trust no report: the organization must now match the config.
                again = run_cli(
                    ["plan", "-c", str(path), "--api-url", sandbox.base_url, "--detailed-exitcode"]
                )
                check(
                    "plan after rate-limited apply",
                    f"exit {again.returncode}, {plan_summary(again.stdout)}",
                    "exit 0 (no changes)",
                    again.returncode == 0,
                )
            progress = progress_lines(run)
            failed = [line for _, line in progress if not line.startswith("applied: ")]
            throttled = int(stats.get("throttled", 0))  # answered 429 by the sandbox's limiter
            print(
                f"  {variant.changes} changes; exit {run.returncode}; {run.wall:.1f} s; "
                f"{len(failed)} not applied"
            )
            show_routes(stats)
            check(
                "429 share under rate limit",
                f"{throttled} of {stats['total']:,} requests ({throttled / stats['total']:.2%})",
                f"< {MAX_429_SHARE:.0%}",
                throttled < MAX_429_SHARE * stats["total"],
            )
            check(
                "changes failed under rate limit",
                f"{len(failed)} (exit {run.returncode})",
                "0",
                not failed and run.returncode == 0 and len(progress) == variant.changes,
            )

        # 7. Recall.ai's v2 API: 50 instances with their own keys, under the published limits.
        print(f"\n== Recall.ai v2 API: integrations-only, {V2_INSTANCES} instances, --recall-limits ==")
        v2_benchmark(tmp, V2_INSTANCES)

    summary(started)


def summary(started: float) -> None:
    print("\n== summary ==")
    width = max(len(t.what) for t in TARGETS)
    for t in TARGETS:
        print(f"  {verdict(t.ok)}  {t.what:<{width}}  {t.measured}  [target {t.target}]")
    failed = [t for t in TARGETS if not t.ok]
    print(
        f"\n{len(TARGETS) - len(failed)} of {len(TARGETS)} targets met; "
        f"benchmark took {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
