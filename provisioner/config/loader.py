"""Loading configs: files -> parsed documents -> schema -> merge -> semantic checks -> Config.

Decisions worth knowing:

* Which files a ``-c`` stands for, and which may be read (the repository is
  the boundary; only regular files), is ``provisioner.config.files``.
* ``digest`` is the SHA-256 of every file's name and bytes, in order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path as FsPath

from provisioner.config.build import build_config
from provisioner.config.files import list_files
from provisioner.config.issues import Issues
from provisioner.config.merge import merge
from provisioner.config.schema import validate_document
from provisioner.config.yamlsource import Document, read_document
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ConfigError
from provisioner.model import Config


def _load(
    arg: str | os.PathLike[str], issues: Issues, allowances: OperatorAllowances | None = None
) -> Config | None:
    files, problems = list_files(os.fspath(arg))
    issues.extend_located(problems)
    docs: list[Document] = []
    for shown, rel, path in files:
        doc = read_document(shown, rel, path)
        docs.append(doc)
        issues.extend_located(doc.issues)
        for line, col, dup in doc.duplicates:
            issues.add(
                doc,
                dup,
                f"`{dup[-1]}` appears twice in this mapping (first at {{other}}); "
                "YAML would silently keep only the last one, so remove one",
                other=(doc, dup),
                position=(line, col),
            )
        if doc.data is not None:
            validate_document(doc, issues)
    if not docs or all(doc.data is None for doc in docs):
        return None
    merged = merge([d for d in docs if d.data is not None], issues)
    config = build_config(merged, issues, allowances)
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(doc.rel.encode("utf-8") + b"\0" + doc.raw)
    folder = FsPath(arg) if FsPath(arg).is_dir() else FsPath(arg).parent
    return replace(
        config,
        sources=tuple(d.file for d in docs),
        digest=digest.hexdigest(),
        secret_base=os.path.abspath(folder),
    )


def load_configs(
    paths: Sequence[str | os.PathLike[str]], *, allowances: OperatorAllowances | None = None
) -> list[Config]:
    """Load several organizations (one per path); report the issues of all at once.

    ``allowances``: what the operator allowed outside the repo (API URLs, key
    variables); by default read from the environment.
    Raises ``ConfigError`` carrying every issue found in every path.
    """
    issues = Issues()
    configs = [_load(path, issues, allowances) for path in paths]
    if issues:
        raise ConfigError(issues.resolve(), omitted=issues.omitted())
    return [c for c in configs if c is not None]


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load one organization from a file or a directory of ``*.yaml`` files.

    Raises ``ConfigError`` carrying every issue found. Makes no network call.
    """
    return load_configs([path])[0]
