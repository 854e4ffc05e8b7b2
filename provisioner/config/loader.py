"""Loading configs: files -> parsed documents -> schema -> merge -> semantic checks -> Config.

Decisions worth knowing:

* The repository is the boundary. A ``-c`` file, or a ``*.yaml`` entry of a
  ``-c`` folder, that is a symlink resolving outside the folder holding it is
  refused: a pull request could otherwise commit ``access.yaml ->
  ../.git-credentials`` and have CI read (and quote) a secret.
* Only regular files are read. FIFOs, devices and sockets are refused without
  opening them for reading (opening a FIFO would block), and so is anything
  under ``/proc``, ``/sys`` or ``/dev``, whose "files" are views of the
  running system. ``yamlsource.read_document`` checks the opened file again.
* File names are shown escaped: a folder entry may be named ``a\n::error::x.yaml``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path as FsPath

from provisioner.config.build import build_config
from provisioner.config.issues import Issues
from provisioner.config.merge import merge
from provisioner.config.schema import validate_document
from provisioner.config.yamlsource import Document, read_document
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ConfigError, ConfigIssue, Location
from provisioner.escape import terminal
from provisioner.model import Config

_SUFFIXES = (".yaml", ".yml")
_SYSTEM_TREES = ("/proc", "/sys", "/dev")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _refused(path: FsPath, shown: str) -> ConfigIssue | None:
    """The issue that refuses reading ``path``, located at the file itself, or None."""
    why = _refusal(path)
    return ConfigIssue(Location(shown, 1, 1), "", why) if why else None


def _refusal(path: FsPath) -> str | None:
    """Why ``path`` may not be read as a config file, or None.

    ``path`` may be a symlink only to something inside the folder that holds it.
    """
    holder = os.path.realpath(path.parent)
    real = os.path.realpath(path)
    if path.is_symlink() and not _inside(real, holder):
        return (
            "this is a symlink to a file outside the folder that holds it; a config "
            "may not read files from elsewhere (commit the file itself)"
        )
    if any(_inside(real, tree) for tree in _SYSTEM_TREES):
        return "this is a file of the running system, not a config file; point -c elsewhere"
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return None  # reading it reports the error
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        return (
            "this is not a regular file (a FIFO, device or socket); "
            "point -c at a config file or a directory of them"
        )
    return None


def _files(arg: str) -> tuple[list[tuple[str, str, FsPath]], list[ConfigIssue]]:
    """(shown name, path relative to ``arg``, path) of each file ``arg`` stands for."""
    path = FsPath(arg)
    shown_arg = terminal(arg)
    refused = _refused(path, shown_arg)
    if refused:
        return [], [refused]
    if path.is_dir():
        files: list[tuple[str, str, FsPath]] = []
        problems: list[ConfigIssue] = []
        for entry in sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES):
            shown = terminal(str(entry))
            refused = _refused(entry, shown)
            if refused:
                problems.append(refused)
            elif not entry.is_dir():
                files.append((shown, entry.name, entry))
        if not files and not problems:
            return [], [
                ConfigIssue(
                    None,
                    "",
                    f"{shown_arg}: the directory holds no *.yaml or "
                    "*.yml files; point -c at a config file or a directory of "
                    "them",
                )
            ]
        return files, problems
    if not path.exists():
        return [], [
            ConfigIssue(
                None,
                "",
                f"{shown_arg}: no such file or directory; "
                "point -c at a config file or a directory of *.yaml files",
            )
        ]
    return [(shown_arg, path.name, path)], []


def config_files(arg: str) -> list[tuple[str, str, FsPath]] | None:
    """(shown name, path relative to ``arg``, path) of each file ``-c arg`` loads; None when
    ``arg`` has a problem (loading it reports the problem)."""
    files, problems = _files(arg)
    return None if problems else files


def _load(
    arg: str | os.PathLike[str], issues: Issues, allowances: OperatorAllowances | None = None
) -> Config | None:
    files, problems = _files(os.fspath(arg))
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
