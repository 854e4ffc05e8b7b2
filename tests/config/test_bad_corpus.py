"""Every file in tests/data/bad is rejected by `provisioner validate` with a located message.

Each file's first line states the expectation: ``# expect: LINE:COL key words``.
The 10 MB file and the alias bomb are generated here, into tmp_path.
"""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioner.cli.main import cli
from provisioner.config import load_config
from provisioner.errors import ConfigError

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
CASES = sorted(BAD.glob("*.yaml"))
EXPECT = re.compile(rb"^# expect: (\d+):(\d+) (.+)$")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_config_is_rejected_with_a_located_message(path: Path) -> None:
    match = EXPECT.match(path.read_bytes().split(b"\n", 1)[0])
    assert match, f"{path.name}: first line must be '# expect: LINE:COL words'"
    line, col, words = int(match[1]), int(match[2]), match[3].decode().strip()

    result = CliRunner().invoke(cli, ["validate", "-c", str(path)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"{path}:{line}:{col}:" in result.output
    located = [ln for ln in result.output.splitlines() if ln.startswith(f"{path}:{line}:{col}:")]
    assert any(words in ln for ln in located), result.output


def test_oversized_file_is_rejected_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.write(b"version: 1\nusers:\n")
        fh.write(b"  - {email: a@example.com, role: admin}\n" * 300_000)  # ~11.7 MB
    tracemalloc.start()
    with pytest.raises(ConfigError) as caught:
        load_config(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "at most 10 MB" in caught.value.issues[0].message
    assert peak < 2 * 1024 * 1024  # the file was never read into memory


def test_alias_bomb_fails_fast_in_bounded_memory(tmp_path: Path) -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 30):  # 10**30 elements if expanded
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    with pytest.raises(ConfigError) as caught:
        load_config(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    first = caught.value.issues[0]
    assert "aliases" in first.message
    assert (first.location.line, first.location.column) == (3, 10)  # the first `*a0`
    assert peak < 50 * 1024 * 1024
