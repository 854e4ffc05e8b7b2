"""Loaded configs cached beside the state snapshot: the real CLI against a sandbox on loopback.

A plan of an unchanged config takes it from the cache, an edited config is
read again (and its errors are reported exactly as without a cache), a
damaged entry is a miss, and the plan is always the one a plan without any
cache gives. ``apply`` never reads the cache: a forged entry can mislead a
plan, not an apply.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from provisioner.sandbox import RunningSandbox
from tests.e2e.test_snapshot import BODY, CACHED, comparable, write
from tests.support import Api, Cli

MARK = "provisioner.config: config: "
FROM_CACHE = "config: from the cache"
FROM_FILES = "config: loaded from its files"


def plan(cli: Cli, config: str, *options: str) -> tuple[dict[str, Any], str]:
    """``plan --format json -v``: the document and what the run logged about its config."""
    done = cli("-v", "plan", "-c", config, "--format", "json", "--force", *options, extra_env=CACHED)
    assert done.returncode == 0, done.stderr
    said = [line.split("provisioner.config: ", 1)[1] for line in done.stderr.splitlines() if MARK in line]
    assert len(said) == 1, done.stderr
    return json.loads(done.stdout), said[0]


def entry(cache: Path) -> Path:
    (found,) = cache.glob("config-*.json")
    return found


def test_an_unchanged_config_comes_from_the_cache_and_an_edited_one_is_read_again(
    sandbox: RunningSandbox, cli: Cli, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = str(tmp_path / "cache")
    first, said = plan(cli, config, "--cache-dir", cache)
    assert said.startswith(FROM_FILES) and "no cached config" in said
    again, said = plan(cli, config, "--cache-dir", cache)
    assert said.startswith(FROM_CACHE)
    uncached = cli("plan", "-c", config, "--format", "json", "--force", "--no-cache")
    assert comparable(again) == comparable(first) == comparable(json.loads(uncached.stdout))
    assert again["changes"], "the plan has changes to compare"

    edited = BODY.replace("    members: [bob@acme.com]\n", "    members: [alice@acme.com, bob@acme.com]\n")
    write(tmp_path, sandbox, edited)
    after_edit, said = plan(cli, config, "--cache-dir", cache)
    assert said.startswith(FROM_FILES) and "differ" in said
    uncached = cli("plan", "-c", config, "--format", "json", "--force", "--no-cache")
    assert comparable(after_edit) == comparable(json.loads(uncached.stdout))
    assert len(after_edit["changes"]) == len(first["changes"]) + 1
    assert len(list(Path(cache).glob("config-*.json"))) == 1  # the edit replaced the entry


def test_the_errors_of_an_edited_config_are_reported_as_without_a_cache(
    sandbox: RunningSandbox, cli: Cli, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = str(tmp_path / "cache")
    plan(cli, config, "--cache-dir", cache)
    plan(cli, config, "--cache-dir", cache)  # cached now
    write(
        tmp_path, sandbox, BODY.replace("role: developer", "role: owner").replace("playground", "play ground")
    )
    cached = cli("plan", "-c", config, "--cache-dir", cache, extra_env=CACHED)
    uncached = cli("plan", "-c", config, "--no-cache")
    assert cached.returncode == uncached.returncode == 1
    assert cached.stderr == uncached.stderr
    assert "owner" in cached.stderr and cached.stdout == uncached.stdout == ""


def test_a_damaged_entry_is_a_miss_and_the_plan_is_the_same(
    sandbox: RunningSandbox, cli: Cli, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = tmp_path / "cache"
    first, _ = plan(cli, config, "--cache-dir", str(cache))
    damaged = entry(cache).read_bytes().replace(b"bob@acme.com", b"bob@acme.org")
    entry(cache).write_bytes(damaged)
    again, said = plan(cli, config, "--cache-dir", str(cache))
    assert said.startswith(FROM_FILES) and "integrity" in said
    assert comparable(again) == comparable(first)
    assert b"bob@acme.org" not in entry(cache).read_bytes()  # saved again from the files

    # --refresh loads the files although the entry matches.
    _, said = plan(cli, config, "--cache-dir", str(cache), "--refresh")
    assert said.startswith(FROM_FILES)


def forge(path: Path, old: bytes, new: bytes) -> None:
    """Rewrite a cache entry's body and give it a matching digest, as whoever can write it can."""
    body = path.read_bytes().rpartition(b"\n")[0].replace(old, new)
    assert old not in body
    path.write_bytes(body + b"\n" + hashlib.sha256(body).hexdigest().encode())


def test_a_forged_entry_misleads_a_plan_but_never_an_apply(
    sandbox: RunningSandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:
    config = write(tmp_path, sandbox)
    cache = tmp_path / "cache"
    plan(cli, config, "--cache-dir", str(cache))
    forge(entry(cache), b'"bob@acme.com"', b'"eve@acme.com"')
    misled, said = plan(cli, config, "--cache-dir", str(cache))
    assert said.startswith(FROM_CACHE)
    assert any("eve@acme.com" in change["key"] for change in misled["changes"])  # trusted by the plan

    applied = cli(
        "apply", "-c", config, "--auto-approve", extra_env={**CACHED, "PROVISIONER_CACHE_DIR": str(cache)}
    )
    assert applied.returncode == 0, applied.stderr
    users = api.users()
    assert "bob@acme.com" in users and "eve@acme.com" not in users  # the apply read the files
