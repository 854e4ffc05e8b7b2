"""Merging the files of a config directory into one organization.

Lists concatenate (``users``, ``workspaces``, ``policy.protected_users``...);
the mappings ``organization``, ``policy`` and ``policy.ignore`` merge key by
key; ``groups`` and ``environments`` merge by name. Anything defined twice
(a scalar such as ``organization.region``, or the same group or environment)
is an error naming both places. ``version`` may, and should, repeat: every
file carries it so that editors can check each file against the schema.

The merged data keeps an ``origin`` index from merged paths to (file, path in
that file), so that later checks report positions in the right file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provisioner.config.issues import Issues
from provisioner.config.text import excerpt
from provisioner.config.yamlsource import Document, Path

# Mappings whose keys merge recursively; under all other mappings a repeated key conflicts.
_DEEP: frozenset[Path] = frozenset({(), ("organization",), ("policy",), ("policy", "ignore")})
# Mappings of named things: same name twice is a duplicate definition.
_NAMED: frozenset[Path] = frozenset({("groups",), ("environments",)})


@dataclass
class Merged:
    """One organization's data, merged from its files, with where each part came from."""

    data: dict[str, Any]
    docs: list[Document]
    origin: dict[Path, tuple[Document, Path]] = field(default_factory=dict)

    def source(self, path: Path) -> tuple[Document, Path]:
        """The file and in-file path of a merged path (longest known prefix wins)."""
        for i in range(len(path), -1, -1):
            hit = self.origin.get(path[:i])
            if hit is not None:
                doc, base = hit
                return doc, base + tuple(path[i:])
        return self.docs[0], tuple(path)

    def report(
        self, issues: Issues, path: Path, message: Any, *, at_key: bool = False, other: Path | None = None
    ) -> None:
        """Record an issue at a merged path (and name ``other`` in ``{other}``)."""
        doc, local = self.source(path)
        issues.add(
            doc, local, message, at_key=at_key, other=self.source(other) if other is not None else None
        )


def merge(docs: list[Document], issues: Issues) -> Merged:
    """Merge the parsed files (in order) into one organization."""
    merged = Merged(data={}, docs=docs)
    if len(docs) == 1 and isinstance(docs[0].data, dict):
        merged.data = docs[0].data
        merged.origin[()] = (docs[0], ())
        return merged
    for doc in docs:
        if isinstance(doc.data, dict):
            _merge_into(merged, merged.data, doc.data, doc, (), issues)
    return merged


def _merge_into(
    merged: Merged, target: dict[str, Any], source: dict[str, Any], doc: Document, path: Path, issues: Issues
) -> None:
    for key, value in source.items():
        here = path + (key,)
        if key not in target:
            target[key] = value
            merged.origin[here] = (doc, here)
            continue
        existing = target[key]
        if here == ("version",) and existing == value:
            continue
        if path in _DEEP and isinstance(existing, dict) and isinstance(value, dict):
            if here in _NAMED:
                _merge_named(merged, existing, value, doc, here, issues)
            else:
                # Copy before changing: the first file's data must stay as read.
                target[key] = existing = dict(existing)
                _merge_into(merged, existing, value, doc, here, issues)
            continue
        if isinstance(existing, list) and isinstance(value, list):
            target[key] = existing + value
            for i in range(len(value)):
                merged.origin[here + (len(existing) + i,)] = (doc, here + (i,))
            continue
        issues.add(
            doc,
            here,
            f"`{_show(here)}` is already defined at {{other}}; define it in one file only",
            at_key=True,
            other=merged.source(here),
        )


def _merge_named(
    merged: Merged, target: dict[str, Any], source: dict[str, Any], doc: Document, path: Path, issues: Issues
) -> None:
    # ``target`` may be the first file's own dict: copy on first write.
    copy = dict(target)
    kind = "group" if path == ("groups",) else "environment"
    for name, value in source.items():
        here = path + (name,)
        if name in copy:
            issues.add(
                doc,
                here,
                f"{kind} `{excerpt(name)}` is already defined at {{other}}; define it in one file only",
                at_key=True,
                other=merged.source(here),
            )
            continue
        copy[name] = value
        merged.origin[here] = (doc, here)
    parent: Any = merged.data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = copy


def _show(path: Path) -> str:
    return ".".join(excerpt(p) for p in path)
