"""No hand-written function is graded D or worse by radon's cyclomatic complexity.

A function that radon grades D (complexity 21 or more) is where the next bug
hides: split it into named steps, one per concern, and a short driver that
calls them in order (as Alembic's ``autogenerate/compare/tables.py`` does).
The generated schema checks (``*/_schema_compiled.py``) are not written by
hand and are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Function

PACKAGE = Path(__file__).resolve().parents[1] / "provisioner"
GENERATED = {PACKAGE / "config" / "_schema_compiled.py", PACKAGE / "plan" / "_schema_compiled.py"}
WORST_ALLOWED = "C"

# Functions still graded D or worse. Empty: every hand-written function reads as named steps.
# Never add to it: split the function instead.
STILL_BEING_SPLIT: frozenset[str] = frozenset()


def _functions(blocks: list[Function]) -> Iterator[Function]:
    """Every function and method, and the functions nested in them."""
    for block in blocks:
        if isinstance(block, Function):
            yield block
            yield from _functions(block.closures)


def graded() -> dict[str, tuple[str, int]]:
    """``file::function`` -> (radon's grade, complexity) for every hand-written function."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in GENERATED:
            continue
        name = path.relative_to(PACKAGE).as_posix()
        for function in _functions(cc_visit(path.read_text(encoding="utf-8"))):
            out[f"{name}::{function.fullname}"] = (cc_rank(function.complexity), function.complexity)
    return out


def test_no_hand_written_function_is_graded_d_or_worse() -> None:
    too_complex = {
        name: f"{grade} ({complexity})"
        for name, (grade, complexity) in graded().items()
        if grade > WORST_ALLOWED and name not in STILL_BEING_SPLIT
    }
    assert not too_complex, "radon grades these functions D or worse; split each into named steps: " + repr(
        too_complex
    )


def test_the_check_sees_a_complex_function() -> None:
    # The premise: radon is really run, and a D is really caught.
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(25))
    [function] = list(_functions(cc_visit(f"def f(x):\n{branches}\n    return -1\n")))
    assert cc_rank(function.complexity) > WORST_ALLOWED
