"""Reading one YAML file into plain Python data, safely and fast, with positions on demand.

We do not use ``yaml.load``: it silently keeps the last of two duplicate keys,
expands aliases without bound and cannot tell a plain ``no`` from a quoted
``"no"``. Instead we walk libyaml's *event* stream (the fastest thing PyYAML
offers, no Python ``Node`` objects) and build dicts, lists and scalars
ourselves. Positions are not recorded while building, because that would cost
time on every node of a large config; when an error needs a position,
``Document.locate`` parses the text again and picks out only the requested
paths.

Refused on purpose: aliases (``*name``; so an alias bomb fails at the first
alias, in bounded memory), every tag outside YAML's core scalar types, more
than one document per file, nesting deeper than ``MAX_DEPTH`` and files over
``MAX_BYTES``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode

from provisioner.config.files import MAX_BYTES
from provisioner.config.text import excerpt
from provisioner.errors import ConfigIssue, Location
from provisioner.frozen import frozen

MAX_DEPTH = 64

# The C parser when PyYAML was built with libyaml; the pure-Python one otherwise.
_Loader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader

Path = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
STR_TAG = _CORE + "str"
# Explicit tags a config may use: YAML's core scalar types. Everything else
# (``!!python/object``, ``!!binary``, ``!!set``, ``!custom``...) is refused.
_ALLOWED_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")) | {
    "!"
}
_ALLOWED_COLLECTION_TAGS = frozenset({None, "!", _CORE + "map", _CORE + "seq"})

# YAML 1.1 implicit resolution, indexed by first character like PyYAML does.
_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = (
    yaml.resolver.Resolver.yaml_implicit_resolvers
)
_constructor = yaml.constructor.SafeConstructor()
_CONSTRUCT: dict[str, Callable[[ScalarNode], Any]] = {
    _CORE + "int": _constructor.construct_yaml_int,
    _CORE + "float": _constructor.construct_yaml_float,
    _CORE + "bool": _constructor.construct_yaml_bool,
    _CORE + "null": _constructor.construct_yaml_null,
    _CORE + "timestamp": _constructor.construct_yaml_timestamp,
}


def format_path(path: Iterable[str | int]) -> str:
    """``("workspaces", 0, "members")`` -> ``workspaces[0].members``."""
    out = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.replace("_", "a").replace("-", "a").isalnum():
            shown = excerpt(part)
            out.append(f".{shown}" if out else shown)
        else:
            out.append(f"['{excerpt(part)}']")
    return "".join(out)


@frozen
class NodeInfo:
    """Where a value (and, in a mapping, its key) sits in the file, and how it was written."""

    line: int  # 1-based
    column: int  # 1-based
    key_line: int | None = None
    key_column: int | None = None
    raw: str | None = None  # the scalar's text as written
    plain: bool = False  # written without quotes, so YAML 1.1 resolution applied


@dataclass(slots=True)
class _Open:
    """A mapping or sequence that ``Document.locate`` is inside of."""

    is_mapping: bool
    path: Path
    key: str | None = None  # mapping: the key whose value comes next (None: not a string)
    index: int = 0  # sequence: the index of the next item
    key_line: int | None = None  # mapping: where that key is
    key_column: int | None = None
    expecting_key: bool = True  # mapping: the next scalar is a key

    def child(self) -> Path | None:
        """The path of the value that comes next here; None under a key that is no string.

        (Building refuses such keys, so nothing there is ever asked for.)
        """
        if not self.is_mapping:
            return self.path + (self.index,)
        return None if self.key is None else self.path + (self.key,)

    def after_value(self) -> None:
        if self.is_mapping:
            self.expecting_key = True
        else:
            self.index += 1


class _Stop(Exception):
    """Building cannot go on (alias, tag, depth...): the issue is already recorded."""


@dataclass
class Document:
    """One parsed config file: its bytes, its data, and positions on request."""

    file: str  # as shown to the user
    rel: str  # relative to the -c argument; part of the digest
    raw: bytes
    text: str = ""
    data: Any = None
    issues: list[ConfigIssue] = field(default_factory=list)
    # (line, column, path) of the second occurrence of a key; reported by the loader
    duplicates: list[tuple[int, int, Path]] = field(default_factory=list)

    def location(self, line: int, column: int) -> Location:
        return Location(self.file, line, column)

    def issue(self, line: int, column: int, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(self.location(line, column), format_path(path), message))

    def locate(self, targets: Iterable[Path]) -> dict[Path, NodeInfo]:
        """Positions of the values at ``targets`` (first occurrence of duplicate keys).

        Parses the text again; only called when there is something to report.
        A path that does not exist is located at its deepest existing parent.
        """
        locator = _Locator(set(targets))
        try:
            for ev in yaml.parse(self.text, Loader=_Loader):
                if locator.feed(ev):
                    break  # the rest of a large file need not be read again
        except yaml.YAMLError:
            pass  # already reported while building; keep what we found
        return locator.result()


_NODE_EVENTS = (ScalarEvent, MappingStartEvent, SequenceStartEvent, AliasEvent)


class _Locator:
    """One walk over a document's events that notes where the wanted paths are.

    Containers on a wanted path are entered (``stack``); any other container
    is skipped whole (``skip`` counts its depth), so a large file costs
    little more than its parse.
    """

    def __init__(self, wanted: set[Path]) -> None:
        self.wanted = wanted
        self.prefixes = {p[:i] for p in wanted for i in range(len(p) + 1)}
        self.found: dict[Path, NodeInfo] = {}
        self.stack: list[_Open] = []
        self.skip = 0  # depth of a subtree we are not interested in

    def feed(self, ev: Any) -> bool:
        """Take the next event; True once every wanted path is found."""
        cls = ev.__class__
        if self.skip:
            self._skipping(cls)
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            self._close()
        elif cls in _NODE_EVENTS:
            if self.stack and self.stack[-1].is_mapping and self.stack[-1].expecting_key:
                self._key(ev)
            else:
                return self._value(ev)
        return False

    def _skipping(self, cls: type) -> None:
        if cls is MappingStartEvent or cls is SequenceStartEvent:
            self.skip += 1
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            self.skip -= 1
            if not self.skip:
                self._after_value()

    def _close(self) -> None:
        self.stack.pop()
        self._after_value()

    def _after_value(self) -> None:
        if self.stack:
            self.stack[-1].after_value()

    def _key(self, ev: Any) -> None:
        """A mapping's key: remember it (and where it is) for the value that follows."""
        frame = self.stack[-1]
        frame.key = ev.value if isinstance(ev, ScalarEvent) else None
        frame.key_line, frame.key_column = _position(ev)
        frame.expecting_key = False
        if not isinstance(ev, (ScalarEvent, AliasEvent)):
            self.skip = 1  # a collection as a key: building refused it

    def _value(self, ev: Any) -> bool:
        """A value: note it if wanted, then enter it, skip it or move past it."""
        path, key_line, key_column = self._where()
        if path is not None and path in self.wanted and path not in self.found:
            self.found[path] = _node_info(ev, key_line, key_column)
            if len(self.found) == len(self.wanted):
                return True
        if isinstance(ev, (ScalarEvent, AliasEvent)):
            self._after_value()
        elif path is not None and path in self.prefixes:
            self.stack.append(_Open(is_mapping=isinstance(ev, MappingStartEvent), path=path))
        else:
            self.skip = 1
        return False

    def _where(self) -> tuple[Path | None, int | None, int | None]:
        """The path of the value that comes next, and where its key is (in a mapping)."""
        if not self.stack:
            return (), None, None
        frame = self.stack[-1]
        if frame.is_mapping:
            return frame.child(), frame.key_line, frame.key_column
        return frame.child(), None, None

    def result(self) -> dict[Path, NodeInfo]:
        """What was found, and for each path that does not exist its deepest existing parent."""
        for target in self.wanted - self.found.keys():
            self.found[target] = self._nearest(target)
        return self.found

    def _nearest(self, target: Path) -> NodeInfo:
        for i in range(len(target) - 1, -1, -1):
            if target[:i] in self.found:
                return self.found[target[:i]]
        return NodeInfo(1, 1)


def _node_info(ev: Any, key_line: int | None, key_column: int | None) -> NodeInfo:
    line, col = _position(ev)
    scalar = ev if isinstance(ev, ScalarEvent) else None
    raw = scalar.value if scalar else None
    plain = bool(scalar and scalar.implicit[0] and scalar.tag is None)
    return NodeInfo(line, col, key_line, key_column, raw, plain)


def _position(event: Any) -> tuple[int, int]:
    """The 1-based (line, column) where an event starts (libyaml always marks them)."""
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


def _indentation_tab(text: str, line: int, col: int) -> int | None:
    """The column of the tab that a YAML error at ``line:col`` is about, or None.

    The error's own character when it is a tab, else the first tab in the
    line's leading whitespace (where YAML allows only spaces).
    """
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    row = lines[line - 1]
    if 1 <= col <= len(row) and row[col - 1] == "\t":
        return col
    indentation = row[: len(row) - len(row.lstrip(" \t"))]
    return indentation.index("\t") + 1 if "\t" in indentation else None


def read_document(file: str, rel: str, path: str | os.PathLike[str]) -> Document:
    """Read and parse one file. Problems go to ``Document.issues``; ``data`` is then None."""
    doc = Document(file=file, rel=rel, raw=b"")
    try:
        # Non-blocking, so that a FIFO put in the file's place cannot hang the run;
        # then only a regular file is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb", closefd=True) as fh:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                doc.issue(
                    1,
                    1,
                    (),
                    "this is not a regular file (a FIFO, device or socket); point -c at a config file",
                )
                return doc
            if info.st_size > MAX_BYTES:
                doc.issue(
                    1,
                    1,
                    (),
                    f"the file is {info.st_size / 1048576:.1f} MB; a config file "
                    f"may be at most {MAX_BYTES // 1048576} MB (split it into a directory "
                    "of files)",
                )
                return doc
            # Read at most one byte past the limit: the file may have grown since stat.
            doc.raw = fh.read(MAX_BYTES + 1)
    except OSError as error:
        doc.issues.append(ConfigIssue(None, "", f"cannot read {file}: {error.strerror or error}"))
        return doc
    if len(doc.raw) > MAX_BYTES:
        doc.issue(1, 1, (), f"the file is larger than {MAX_BYTES // 1048576} MB; split it")
        return doc
    try:
        doc.text = doc.raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = doc.raw[: error.start]
        line = before.count(b"\n") + 1
        col = error.start - (before.rfind(b"\n") + 1) + 1
        doc.issue(line, col, (), f"byte 0x{doc.raw[error.start]:02x} is not UTF-8; save the file as UTF-8")
        return doc
    try:
        doc.data = _build(doc)
    except _Stop:
        doc.data = None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = error.problem or "invalid YAML"
        context = f" ({error.context})" if error.context else ""
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        tab = _indentation_tab(doc.text, line, col)
        if tab is not None:
            # libyaml says only "found character that cannot start any token".
            doc.issue(
                line,
                tab,
                (),
                f"a tab character at {file}:{line}:{tab}; YAML indents with spaces: "
                "replace the tab with spaces",
            )
            doc.data = None
            return doc
        # PyYAML's words may quote a character of the file: escape and shorten them.
        what, context = excerpt(what, 120), excerpt(context, 120)
        doc.issue(
            line,
            col,
            (),
            f"YAML syntax error: {what}{context}; check the indentation, colons and quotes here",
        )
        doc.data = None
    except yaml.reader.ReaderError as error:
        text_before = doc.text[: error.position]
        line = text_before.count("\n") + 1
        col = error.position - (text_before.rfind("\n") + 1) + 1
        char = error.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        doc.issue(
            line, col, (), f"character {shown} is not allowed in YAML; remove it or quote and escape it"
        )
        doc.data = None
    except yaml.YAMLError as error:  # anything else libyaml may raise
        doc.issue(1, 1, (), f"cannot parse YAML: {excerpt(error, 120)}")
        doc.data = None
    return doc


def _path_of(stack: list[list[Any]]) -> Path:
    path: list[str | int] = []
    for frame in stack:
        container, key = frame[0], frame[1]
        if isinstance(container, list):
            path.append(len(container))
        elif key is not _NO_KEY:
            path.append(key)
    return tuple(path)


_NO_KEY = object()
_DONE = object()


def _build(doc: Document) -> Any:
    """Build the document's data from the event stream (hot path: keep it lean).

    The loop handles the events of every node inline; what is rare (a
    collection's checks, a tag, an alias, a second document, a plain
    scalar's first resolution) is a call to a named step.
    """
    # frames: [container, pending key (or _NO_KEY)]; lists, not objects: this loop
    # runs once per YAML event, and a large config has millions.
    stack: list[list[Any]] = []
    root: Any = _DONE
    documents = 0
    plain: dict[str, Any] = {}  # plain scalar text -> its value, resolved once
    ev: Any  # libyaml's events; which attributes they have depends on the class
    for ev in yaml.parse(doc.text, Loader=_Loader):
        cls = ev.__class__
        if cls is ScalarEvent:
            value = ev.value
            tag = ev.tag
            if tag is None:
                if ev.implicit[0]:
                    value = plain.get(value, _DONE)
                    if value is _DONE:
                        value = _resolve_plain(ev.value, plain)
            elif tag != STR_TAG and tag != "!":
                value = _explicit(doc, stack, ev)
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            _check_collection(doc, stack, ev)
            stack.append([{} if cls is MappingStartEvent else [], _NO_KEY])
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            value = stack.pop()[0]
        elif cls is DocumentStartEvent:
            documents += 1
            _check_document(doc, ev, documents)
            continue
        elif cls is AliasEvent:
            _refuse_alias(doc, stack, ev)
        else:  # stream start/end, document end
            continue

        if not stack:
            root = value
            continue
        frame = stack[-1]
        container = frame[0]
        if container.__class__ is list:
            container.append(value)
        elif frame[1] is _NO_KEY:
            # Keys are taken as written (only a scalar can be one: _check_collection):
            # every key in the format is a string, and ``on:`` or ``no:`` as an
            # environment name should mean just that.
            key = ev.value
            if key in container:
                doc.duplicates.append(
                    (ev.start_mark.line + 1, ev.start_mark.column + 1, _path_of(stack) + (key,))
                )
            frame[1] = key
        else:
            container[frame[1]] = value
            frame[1] = _NO_KEY
    return _root(doc, root)


def _resolve_plain(value: str, memo: dict[str, Any]) -> Any:
    """A plain scalar's value by YAML 1.1 resolution (``no`` is false, ``0755`` is 493).

    Memoised per text in ``memo`` (every result is immutable): a file of a
    million `1`s resolves `1` once. An empty plain scalar is null.
    """
    hit: Any = None
    if value:
        hit = value
        for rtag, regexp in _RESOLVERS.get(value[0], ()):
            if regexp.match(value):
                hit = _construct(rtag, value, value)
                break
    memo[value] = hit
    return hit


def _check_collection(doc: Document, stack: list[list[Any]], ev: Any) -> None:
    """A mapping or sequence may start here: an allowed tag, not too deep, not a key."""
    if ev.tag not in _ALLOWED_COLLECTION_TAGS:
        _refuse_tag(doc, stack, ev)
    if len(stack) >= MAX_DEPTH:
        doc.issue(
            ev.start_mark.line + 1,
            ev.start_mark.column + 1,
            _path_of(stack),
            f"nested deeper than {MAX_DEPTH} levels; a config is never this deep",
        )
        raise _Stop
    if stack and isinstance(stack[-1][0], dict) and stack[-1][1] is _NO_KEY:
        doc.issue(
            ev.start_mark.line + 1,
            ev.start_mark.column + 1,
            _path_of(stack),
            "a mapping key must be a plain string, not a list or mapping",
        )
        raise _Stop


def _check_document(doc: Document, ev: Any, documents: int) -> None:
    """A file holds one document: a second ``---`` stops the build."""
    if documents > 1:
        doc.issue(
            ev.start_mark.line + 1,
            ev.start_mark.column + 1,
            (),
            "a config file holds one YAML document; remove this `---` and use a separate file for the rest",
        )
        raise _Stop


def _refuse_alias(doc: Document, stack: list[list[Any]], ev: Any) -> None:
    doc.issue(
        ev.start_mark.line + 1,
        ev.start_mark.column + 1,
        _path_of(stack),
        f"YAML aliases (*{excerpt(ev.anchor)}) are not supported; write the value out "
        "in full (or split the config into several files)",
    )
    raise _Stop


def _root(doc: Document, root: Any) -> Any:
    if root is _DONE or root is None:
        doc.issue(1, 1, (), "the file is empty; a config needs at least `version: 1`")
        raise _Stop
    return root


def _construct(tag: str, value: str, fallback: Any) -> Any:
    construct = _CONSTRUCT.get(tag)
    if construct is None:
        return value
    try:
        return construct(ScalarNode(tag, value))
    except (ValueError, TypeError, OverflowError):
        # e.g. ``2026-02-30`` matches the timestamp pattern but is no date:
        # keep the text, later checks say what is wrong with it.
        return fallback


def _explicit(doc: Document, stack: list[list[Any]], ev: Any) -> Any:
    if ev.tag not in _ALLOWED_SCALAR_TAGS:
        _refuse_tag(doc, stack, ev)
        return ev.value
    value = _construct(ev.tag, ev.value, _DONE)
    if value is _DONE:
        name = ev.tag[len(_CORE) :]
        doc.issue(
            ev.start_mark.line + 1,
            ev.start_mark.column + 1,
            _path_of(stack),
            f"`{excerpt(ev.value)}` is not a valid {name}; remove the `!!{name}` tag or fix the value",
        )
        return ev.value
    return value


def _refuse_tag(doc: Document, stack: list[list[Any]], ev: Any) -> None:
    tag = ev.tag
    shown = excerpt("!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag)
    doc.issue(
        ev.start_mark.line + 1,
        ev.start_mark.column + 1,
        _path_of(stack),
        f"the YAML tag `{shown}` is not allowed in a config; remove it "
        "(only plain strings, numbers, booleans, dates, lists and mappings are used)",
    )
    # Nothing is ever constructed from the tag, so going on to find more issues is safe.
