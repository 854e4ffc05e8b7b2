"""Point 6: bad input never reaches the API. Every malformed config in
tests/data/bad goes through ``plan`` against a sandbox: exit 1, a located
message, no traceback, and the sandbox served zero requests. The alias bomb
and a 10 MB file are refused in bounded time and memory; a hypothesis fuzz of
the loader only ever yields a Config or a ConfigError.

Promise 5 of docs/threat-model.md: every config of the hostile corpus
(tests/data/hostile, any area's case that carries ``config`` or ``files``)
is validated in a subprocess under ``resource`` limits and finishes within
5 s of CPU and 300 MB, without a traceback, and with a located message
whenever it is refused."""

from __future__ import annotations

import os
import re
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.cli.main import cli
from provisioner.config import load_config
from provisioner.errors import ConfigError
from provisioner.model import Config
from tests.hostile.check_input import assert_bounded, materialize, run_limited

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
CASES = sorted(BAD.glob("*.yaml"))
HOSTILE = sorted(
    path
    for path in (BAD.parent / "hostile").glob("*.yaml")
    if {"config", "files"} & set(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
)
EXPECT = re.compile(rb"^# expect: (\d+):(\d+) ")
FUZZ_EXAMPLES = int(os.environ.get("PROVISIONER_FUZZ_EXAMPLES", "60"))


def plan_in_process(path: Path, sandbox) -> click.testing.Result:  # noqa: ANN001, F821
    env = {"RECALL_API_KEY": sandbox.token, "PROVISIONER_TEST_KEY": sandbox.token, "NO_COLOR": "1"}
    return CliRunner().invoke(cli, ["plan", "-c", str(path), "--api-url", sandbox.base_url], env=env)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory):  # noqa: ANN001, ANN201
    from provisioner.sandbox import start_sandbox

    with start_sandbox(tmp_path_factory.mktemp("bad") / "bad.db") as running:
        yield running


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_config_through_plan_touches_no_api(path: Path, shared_sandbox) -> None:  # noqa: ANN001
    match = EXPECT.match(path.read_bytes().split(b"\n", 1)[0])
    assert match, path
    shared_sandbox.reset_stats()
    result = plan_in_process(path, shared_sandbox)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped exception
    assert "Traceback" not in result.output
    assert f"{path}:{int(match[1])}:{int(match[2])}:" in result.stderr
    assert shared_sandbox.stats()["total"] == 0


def _bounded(path: Path, sandbox, seconds: float, megabytes: int) -> str:  # noqa: ANN001
    sandbox.reset_stats()
    tracemalloc.start()
    started = time.monotonic()
    result = plan_in_process(path, sandbox)
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert elapsed < seconds, elapsed
    assert peak < megabytes * 1024 * 1024, peak
    assert sandbox.stats()["total"] == 0
    return result.stderr


def test_alias_bomb_through_plan_is_bounded(tmp_path: Path, shared_sandbox) -> None:  # noqa: ANN001
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 30):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert "alias" in _bounded(bomb, shared_sandbox, seconds=10, megabytes=50)


def test_ten_megabyte_file_through_plan_is_bounded(tmp_path: Path, shared_sandbox) -> None:  # noqa: ANN001
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.write(b"version: 1\nusers:\n")
        fh.write(b"  - {email: a@example.com, role: admin}\n" * 270_000)  # ~10.5 MB
    assert big.stat().st_size > 10 * 1024 * 1024
    assert "10 MB" in _bounded(big, shared_sandbox, seconds=10, megabytes=5)


_yamlish = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["admin", "developer", "a@b.io", "@grp", "production", "25%", "2030-01-01"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "version",
                    "users",
                    "email",
                    "role",
                    "groups",
                    "workspaces",
                    "name",
                    "members",
                    "environments",
                    "policy",
                    "organization",
                    "region",
                    "max_removals",
                    "min_admins",
                    "x",
                ]
            )
            | st.text(max_size=6),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=_yamlish, raw=st.binary(max_size=200), use_raw=st.booleans())
def test_loader_fuzz_only_config_or_config_error(tmp_path: Path, doc, raw: bytes, use_raw: bool) -> None:  # noqa: ANN001
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_bytes(
        raw if use_raw else yaml.safe_dump({"version": 1, **doc} if isinstance(doc, dict) else doc).encode()
    )
    try:
        loaded = load_config(path)
    except ConfigError as error:
        assert error.issues and all(str(i) for i in error.issues)
    else:
        assert isinstance(loaded, Config)


def test_the_hostile_corpus_has_configs_to_bound() -> None:
    assert len(HOSTILE) >= 16


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_config_is_bounded_in_a_limited_subprocess(path: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    run = run_limited(["validate", *materialize(case, tmp_path)], tmp_path)
    assert run.returncode in (0, 1), run.output
    assert_bounded(run)
    if run.returncode == 1:
        assert re.search(r"^\S.*:\d+:\d+: ", run.stderr, re.MULTILINE), run.stderr
