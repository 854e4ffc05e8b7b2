"""The docs render as written: every markdown table keeps all of its rows on GitHub (issue 23).

GitHub renders markdown with cmark-gfm; ``cmarkgfm`` is its Python binding. A
blank line inside a table ends it, and the rows after it render as a
paragraph of pipes: the source still looks like a table, the page does not.
So each run of table lines in the source (outside code fences) must come out
as one ``<table>`` with one ``<tr>`` per line, the delimiter row excepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DELIMITER_ROW = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class SourceTable:
    """A run of consecutive lines starting with ``|`` outside code fences."""

    first_line: int
    lines: tuple[str, ...]

    @property
    def rows(self) -> int:
        """The rows GitHub should show: every line but the delimiter row."""
        return sum(1 for line in self.lines if not DELIMITER_ROW.match(line))


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of ``text`` outside fenced code blocks."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif (
            fence is not None
            and match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= len(fence)
        ):
            if not line.strip()[len(match.group(1)) :].strip():
                fence = None
        elif fence is None:
            out.append((number, line))
    return out


def source_tables(text: str) -> list[SourceTable]:
    """Every run of table lines in the source, blank-line breaks included as separate runs."""
    tables: list[SourceTable] = []
    run: list[tuple[int, str]] = []
    previous = 0
    for number, line in [*prose_lines(text), (-1, "")]:
        is_row = line.lstrip().startswith("|")
        if is_row and (not run or number == previous + 1):
            run.append((number, line))
        else:
            if run:
                tables.append(SourceTable(run[0][0], tuple(row for _, row in run)))
            run = [(number, line)] if is_row else []
        previous = number
    return tables


class _TableRows(HTMLParser):
    """The number of ``<tr>`` of each ``<table>`` in rendered HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append(0)
        elif tag == "tr":
            self.tables[-1] += 1


def rendered_tables(text: str) -> list[int]:
    """Rows per table as GitHub renders ``text`` (cmark-gfm with GitHub's extensions)."""
    html = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    parser = _TableRows()
    parser.feed(html)
    return parser.tables


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_renders_with_all_of_its_rows(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = [(table.first_line, table.rows) for table in source_tables(text)]
    rendered = rendered_tables(text)
    assert [rows for _, rows in expected] == rendered, (
        f"{path.name}: source tables (first line, rows) {expected} render as tables of {rendered} rows; "
        "a blank line or a missing delimiter row breaks a table on GitHub"
    )


def test_a_blank_line_inside_a_table_is_caught() -> None:
    broken = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n"
    assert [t.rows for t in source_tables(broken)] == [2, 1]
    assert rendered_tables(broken) == [2]


def test_tables_inside_code_fences_are_not_tables() -> None:
    text = "````markdown\n| a |\n|---|\n| 1 |\n````\n\n```text\n| x |\n```\n"
    assert source_tables(text) == [] and rendered_tables(text) == []


def test_the_guarantees_page_lists_every_promise_of_the_readme() -> None:
    def promises(text: str) -> set[str]:
        return set(re.findall(r"^\| (\d+[a-z]?) \|", text, flags=re.M))

    readme = promises(DOCS[0].read_text(encoding="utf-8"))
    assert {"1", "10", "11", "12", "13"} <= readme
    assert promises((ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")) == readme
