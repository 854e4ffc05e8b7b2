"""Collecting issues while checking, and giving them positions in one pass per file.

Checks record *paths*; positions are looked up once, at the end, by
re-reading only the files that have something to report (see
``Document.locate``). That keeps the error-free path fast on large configs.

Collection is bounded: after ``MAX_ISSUES`` distinct issues the rest are only
counted, and ``resolve`` ends with "and K more errors". A hostile file with a
million mistakes then costs no more memory than one with 200, and checkers
that can stop early ask ``full``.
"""

from __future__ import annotations

from collections.abc import Callable

from provisioner.config.yamlsource import Document, NodeInfo, Path, format_path
from provisioner.errors import ConfigIssue, Location
from provisioner.frozen import frozen

Message = str | Callable[[NodeInfo], str]

MAX_ISSUES = 200


@frozen
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

    def __init__(self, limit: int = MAX_ISSUES) -> None:
        self.pending: list[Pending] = []
        self.located: list[ConfigIssue] = []
        self.limit = limit
        self.more = 0  # issues counted but not kept, beyond ``limit``
        self.stopped = False  # a checker stopped counting early: ``more`` is a lower bound
        self._seen: set[tuple[object, ...]] = set()

    @property
    def full(self) -> bool:
        """True once ``limit`` issues are kept: later ones are only counted."""
        return len(self.pending) + len(self.located) >= self.limit

    def _keep(self, key: tuple[object, ...]) -> bool:
        if key in self._seen:
            return False  # the same issue found twice (e.g. a member checked per instance)
        if self.full:
            self.more += 1
            return False
        self._seen.add(key)
        return True

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
        path = tuple(path)
        text = message if isinstance(message, str) else id(message)
        if self._keep((id(doc), path, text, at_key, position)):
            self.pending.append(Pending(doc, path, message, at_key, other, position))

    def extend_located(self, issues: list[ConfigIssue]) -> None:
        for issue in issues:
            if self._keep((str(issue.location), issue.path, issue.message)):
                self.located.append(issue)

    def __bool__(self) -> bool:
        return bool(self.pending or self.located or self.more)

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
            loc = Location(p.doc.file, *p.position) if p.position else where(p.doc, p.path, p.at_key)
            out.append(ConfigIssue(loc, format_path(p.path), message))
        # Unique and in reading order; issues without a location (unreadable files) first.
        unique = {(str(i.location), i.path, i.message): i for i in out}
        ordered = sorted(
            unique.values(),
            key=lambda i: (
                (i.location.file, i.location.line, i.location.column, i.path)
                if i.location
                else ("", 0, 0, i.path)
            ),
        )
        return ordered

    def omitted(self) -> str | None:
        """ "and K more errors not shown …", when collection stopped listing; else None."""
        if not self.more:
            return None
        least = "at least " if self.stopped else ""
        return (
            f"and {least}{self.more} more error{'s' if self.more != 1 else ''} not shown "
            f"(only the first {self.limit} are listed); fix these first"
        )
