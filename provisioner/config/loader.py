"""Loading configs: files -> parsed documents -> schema -> merge -> semantic checks -> Config."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Sequence

from provisioner.config.build import build_config
from provisioner.config.issues import Issues
from provisioner.config.merge import merge
from provisioner.config.schema import validate_document
from provisioner.config.yamlsource import Document, read_document
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ConfigError, ConfigIssue
from provisioner.model import Config

_SUFFIXES = (".yaml", ".yml")


def _files(arg: str) -> tuple[list[tuple[str, str, FsPath]], list[ConfigIssue]]:
    """(shown name, path relative to ``arg``, path) of each file ``arg`` stands for."""
    path = FsPath(arg)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        if not found:
            return [], [ConfigIssue(None, "", f"{arg}: the directory holds no *.yaml or *.yml "
                                    "files; point -c at a config file or a directory of them")]
        return [(str(p), p.name, p) for p in found], []
    if not path.exists():
        return [], [ConfigIssue(None, "", f"{arg}: no such file or directory; "
                                "point -c at a config file or a directory of *.yaml files")]
    return [(str(path), path.name, path)], []


def _load(
    arg: str | os.PathLike, issues: Issues, allowances: OperatorAllowances | None = None
) -> Config | None:
    files, problems = _files(os.fspath(arg))
    issues.extend_located(problems)
    docs: list[Document] = []
    for shown, rel, path in files:
        doc = read_document(shown, rel, path)
        docs.append(doc)
        issues.extend_located(doc.issues)
        for line, col, dup in doc.duplicates:
            issues.add(doc, dup, f"`{dup[-1]}` appears twice in this mapping (first at {{other}}); "
                       "YAML would silently keep only the last one, so remove one",
                       other=(doc, dup), position=(line, col))
        if doc.data is not None:
            validate_document(doc, issues)
    if not docs or all(doc.data is None for doc in docs):
        return None
    merged = merge([d for d in docs if d.data is not None], issues)
    config = build_config(merged, issues, allowances)
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(doc.rel.encode("utf-8") + b"\0" + doc.raw)
    return replace(config, sources=tuple(d.file for d in docs), digest=digest.hexdigest())


def load_configs(
    paths: Sequence[str | os.PathLike], *, allowances: OperatorAllowances | None = None
) -> list[Config]:
    """Load several organizations (one per path); report the issues of all at once.

    ``allowances``: what the operator allowed outside the repo (API URLs, key
    variables); by default read from the environment.
    Raises ``ConfigError`` carrying every issue found in every path.
    """
    issues = Issues()
    configs = [_load(path, issues, allowances) for path in paths]
    if issues:
        raise ConfigError(issues.resolve())
    return [c for c in configs if c is not None]


def load_config(path: str | os.PathLike) -> Config:
    """Load one organization from a file or a directory of ``*.yaml`` files.

    Raises ``ConfigError`` carrying every issue found. Makes no network call.
    """
    return load_configs([path])[0]
