"""Secret references: reading the values a config points at, and comparing them with the API's digests.

A config never holds a secret, only a ``SecretRef`` (``{env: NAME}`` or
``{file: path}``, and a ``version``). A plan reads no value: it compares the
source the server recorded for each secret (``SecretRef.label``). ``resolve``
reads the values an apply writes, once, after the plan and before any change
(``validate`` and ``plan`` never call it), and reports every missing one at
once; ``available`` reads what a drift check can compare. The values live
only in a ``SecretValues``: never in a state, a change, a plan file or a
message.

Decisions worth knowing:

* **Change detection without reading back.** The API answers each
  write-only secret with a random salt and PBKDF2-HMAC-SHA256 of the value
  (``SecretDigest``). ``SecretValues.matches`` computes the same over the
  local value: equal means unchanged, and an unchanged secret costs no
  request. The iteration count comes from the server, so it is capped
  (``MAX_ITERATIONS``): a hostile answer must not make a plan spin for hours.
  An algorithm we do not know counts as changed (the plan says so, and the
  apply writes the value again), never as unchanged.
* **What a file reference may read.** Only a regular file inside the
  config's directory, through no symlink that leads outside it, and at most
  ``MAX_FILE_BYTES``: the author of a pull request writes the config that CI
  plans, and must not make it read ``/proc/self/environ`` or a runner's
  credentials into a request. One trailing newline is dropped (``echo`` adds
  one).
* **What an env reference may read** is checked when the config is loaded
  (``env_ref_problem``): not the API key's own variable, and not a CI
  system's credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from collections.abc import Iterable, Mapping

from provisioner.errors import SecretReferenceError
from provisioner.escape import terminal
from provisioner.model import SecretDigest, SecretRef, SecretUse

ALGORITHM = "pbkdf2_sha256"
MAX_ITERATIONS = 1_000_000
MAX_FILE_BYTES = 64 * 1024
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Variables a config may never read into a request: CI systems' own credentials.
_CI_CREDENTIALS = re.compile(
    r"(GITHUB_|ACTIONS_|RUNNER_|CI_JOB_|GITLAB_|BUILDKITE_AGENT_|CIRCLE_|SYSTEM_ACCESSTOKEN|GH_TOKEN|PROVISIONER_)"
)


def env_ref_problem(name: str, token_env: str) -> str | None:
    """Why a config may not read the variable ``name`` as a secret, or None."""
    if not ENV_NAME.fullmatch(name):
        return (
            f"`{terminal(name[:80])}` is not an environment variable name; use letters, digits "
            "and _ (templates: {WORKSPACE}, {ENVIRONMENT})"
        )
    if name == token_env:
        return (
            f"{name} holds the API key provisioner connects with; a setting may not send it "
            "anywhere. Put the setting's secret in a variable of its own"
        )
    if _CI_CREDENTIALS.match(name):
        return (
            f"{name} is a credential of the CI system or of provisioner itself; a config may not "
            "read it into a request. Store the secret in a variable of its own"
        )
    return None


def file_ref_problem(name: str) -> str | None:
    """Why a config may not name ``name`` as a secret file (before looking at the disk), or None."""
    if os.path.isabs(name) or name.startswith("~"):
        return "a secret file is named relative to the config's directory; remove the leading / or ~"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a secret file must be inside the config's directory; remove the .. parts"
    return None


def digest_of(value: str, salt: str, iterations: int) -> str:
    """PBKDF2-HMAC-SHA256 of ``value`` under the hex ``salt``: the contract's ``SecretDigest.digest``."""
    return hashlib.pbkdf2_hmac("sha256", value.encode("utf-8"), bytes.fromhex(salt), iterations).hex()


class SecretValues:
    """The values of a run's secret references, by reference. Never shown.

    ``repr`` and ``str`` name only how many there are; ``values`` is for
    redaction and for the apply's request bodies.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[SecretRef, str] | None = None) -> None:
        self._values: dict[SecretRef, str] = dict(values or {})

    def __repr__(self) -> str:
        return f"SecretValues({len(self._values)} values, not shown)"

    __str__ = __repr__

    def __contains__(self, ref: object) -> bool:
        return ref in self._values

    def value(self, ref: SecretRef) -> str:
        """The value of ``ref``; KeyError names only the reference."""
        try:
            return self._values[ref]
        except KeyError:
            raise KeyError(str(ref)) from None

    def values(self) -> tuple[str, ...]:
        """Every value (to redact from messages)."""
        return tuple(self._values.values())

    def matches(self, ref: SecretRef, digest: SecretDigest) -> bool:
        """Whether the value of ``ref`` is the one the API's ``digest`` was made from.

        False for an algorithm we do not know, an iteration count past
        ``MAX_ITERATIONS`` or a salt that is not hex: an unknown is a change.
        """
        value = self._values.get(ref)
        if value is None or digest.algorithm != ALGORITHM:
            return False
        if not 1 <= digest.iterations <= MAX_ITERATIONS:
            return False
        try:
            mine = digest_of(value, digest.salt, digest.iterations)
        except ValueError:
            return False
        return hmac.compare_digest(mine, digest.digest.lower())


def _read_file(base: str, name: str) -> tuple[str | None, str | None]:
    """(value, None) or (None, why it cannot be read)."""
    root = os.path.realpath(base)
    path = os.path.join(root, name)
    real = os.path.realpath(path)
    if not (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
        return None, "leads outside the config's directory (through a symlink); commit the file itself"
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None, "does not exist"
    except OSError as e:
        return None, f"cannot be opened ({e.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "is not a regular file"
        if info.st_size > MAX_FILE_BYTES:
            return None, f"is larger than {MAX_FILE_BYTES // 1024} KiB; a secret is short"
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        return None, "is empty"
    return text, None


def available(
    uses: Iterable[SecretUse], *, base: str, environ: Mapping[str, str] | None = None
) -> SecretValues:
    """The values of the references in ``uses`` that can be read; the others are left out.

    For ``drift`` in a job that holds some or all of the secrets: a value it
    cannot read is not compared, never an error.
    """
    env = os.environ if environ is None else environ
    values: dict[SecretRef, str] = {}
    for use in uses:
        ref = use.ref
        if ref in values:
            continue
        value = env.get(ref.name) if ref.source == "env" else _read_file(base, ref.name)[0]
        if value:
            values[ref] = value
    return SecretValues(values)


def resolve(
    uses: Iterable[SecretUse], *, base: str, environ: Mapping[str, str] | None = None
) -> SecretValues:
    """Read the value of every reference in ``uses``.

    ``base`` is the config's directory (file references are relative to it).
    Raises ``SecretReferenceError`` naming every reference that cannot be
    read, each with where the config uses it, and never a value.
    """
    env = os.environ if environ is None else environ
    values: dict[SecretRef, str] = {}
    problems: dict[SecretRef, tuple[str, list[str]]] = {}
    for use in uses:
        ref = use.ref
        if ref in values:
            continue
        where = f"{use.where or 'the config'}: {use.what} of {terminal(use.workspace)}"
        if ref in problems:
            problems[ref][1].append(where)
            continue
        why: str | None
        if ref.source == "env":
            value = env.get(ref.name)
            why = None if value else ("is not set" if value is None else "is empty")
        else:
            value, why = _read_file(base, ref.name)
        if why is None and value is not None:
            values[ref] = value
        else:
            problems[ref] = (why or "cannot be read", [where])
    if problems:
        lines = []
        for ref, (why, wheres) in sorted(problems.items(), key=lambda kv: (kv[0].source, kv[0].name)):
            first, *more = list(dict.fromkeys(wheres))
            kind = "environment variable" if ref.source == "env" else "file"
            also = f" (also {'; '.join(more)})" if more else ""
            lines.append(f"{first}: the {kind} {terminal(ref.name)} {why}{also}")
        n = len(problems)
        raise SecretReferenceError(
            f"{n} secret reference{'s' if n != 1 else ''} cannot be read; set "
            f"{'them' if n != 1 else 'it'} and plan again (nothing was changed):\n  " + "\n  ".join(lines)
        )
    return SecretValues(values)
