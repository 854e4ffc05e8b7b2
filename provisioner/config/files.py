"""Which files a ``-c`` argument stands for, and which of them may be read as config files.

Apart from the loader so that a plan whose config comes from the config cache
(``provisioner.config.cache``) can list and hash the files without importing
the YAML parser and the checks.

Decisions worth knowing (the loader's, kept here with the code that makes them):

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

import os
import stat
from pathlib import Path as FsPath

from provisioner.errors import ConfigIssue, Location
from provisioner.escape import terminal

# The largest config file read at all (the loader refuses a bigger one with its
# own message; the config cache's key does not read one either).
MAX_BYTES = 10 * 1024 * 1024
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


def list_files(arg: str) -> tuple[list[tuple[str, str, FsPath]], list[ConfigIssue]]:
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
    files, problems = list_files(arg)
    return None if problems else files
