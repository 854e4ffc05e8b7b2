"""Collecting issues while checking, and giving them positions in one pass per file.

Checks record *paths*; positions are looked up once, at the end, by
re-reading only the files that have something to report (see
``Document.locate``). That keeps the error-free path fast on large configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from provisioner.config.yamlsource import Document, NodeInfo, Path, format_path
from provisioner.errors import ConfigIssue, Location

Message = Union[str, Callable[[NodeInfo], str]]


@dataclass(frozen=True)
class Pending:
    """An issue whose position is not known yet."""

    doc: Document
    path: Path
    message: Message  # may contain "{other}", replaced by the position of ``other``
    at_key: bool = False  # point at the key (e.g. an unknown key) instead of its value
    other: tuple[Document, Path] | None = None
    position: tuple[int, int] | None = None  # already known (line, column)


class Issues:
    """All issues of one run, across files."""

    def __init__(self) -> None:
        self.pending: list[Pending] = []
        self.located: list[ConfigIssue] = []

    def add(
        self,
        doc: Document,
        path: Path,
        message: Message,
        *,
        at_key: bool = False,
        other: tuple[Document, Path] | None = None,
        position: tuple[int, int] | None = None,
    ) -> None:
        self.pending.append(Pending(doc, tuple(path), message, at_key, other, position))

    def extend_located(self, issues: list[ConfigIssue]) -> None:
        self.located.extend(issues)

    def __bool__(self) -> bool:
        return bool(self.pending or self.located)

    def resolve(self) -> list[ConfigIssue]:
        """Every issue with its position, sorted by file, line and column."""
        wanted: dict[int, tuple[Document, set[Path]]] = {}
        for p in self.pending:
            wanted.setdefault(id(p.doc), (p.doc, set()))[1].add(p.path)
            if p.other:
                wanted.setdefault(id(p.other[0]), (p.other[0], set()))[1].add(p.other[1])
        infos = {key: doc.locate(paths) for key, (doc, paths) in wanted.items()}

        def where(doc: Document, path: Path, at_key: bool) -> Location:
            info = infos[id(doc)][path]
            if at_key and info.key_line is not None:
                return Location(doc.file, info.key_line, info.key_column or 1)
            return Location(doc.file, info.line, info.column)

        out = list(self.located)
        for p in self.pending:
            info = infos[id(p.doc)][p.path]
            message = p.message(info) if callable(p.message) else p.message
            if p.other:
                odoc, opath = p.other
                loc = where(odoc, opath, p.at_key)
                other = f"line {loc.line}" if odoc is p.doc else str(loc)
                message = message.replace("{other}", other)
            loc = (Location(p.doc.file, *p.position) if p.position
                   else where(p.doc, p.path, p.at_key))
            out.append(ConfigIssue(loc, format_path(p.path), message))
        # Unique and in reading order; issues without a location (unreadable files) first.
        unique = {(str(i.location), i.path, i.message): i for i in out}
        return sorted(
            unique.values(),
            key=lambda i: (i.location.file, i.location.line, i.location.column, i.path)
            if i.location
            else ("", 0, 0, i.path),
        )
