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
  request. The iteration count comes from the server, so it is bounded on
  both sides: at most ``MAX_ITERATIONS`` (a hostile answer must not make a
  plan spin for hours), at least ``MIN_ITERATIONS`` (below).
  An algorithm we do not know counts as changed (the plan says so, and the
  apply writes the value again), never as unchanged.
* **What a file reference may read.** Only a regular file inside the
  config's directory, through no symlink that leads outside it, and at most
  ``MAX_FILE_BYTES``: the author of a pull request writes the config that CI
  plans, and must not make it read ``/proc/self/environ`` or a runner's
  credentials into a request. No part of its path, as written or as the
  links resolve, may start with ``.``: ``.git/config`` holds the token
  ``actions/checkout`` persists, and dot-directories (``.git``, ``.ssh``,
  ``.aws``, ``.docker``) are where tools keep credentials. One trailing
  newline is dropped (``echo`` adds one).
* **What an env reference may read** is an allow rule, checked when the
  config is loaded (``env_ref_problem``), like ``token_env``'s: a name the
  operator allowed outside the repository (``PROVISIONER_ALLOWED_SECRET_ENVS``,
  comma-separated globs), or a name that says it holds a secret (one of its
  words is in ``SECRET_WORDS``) and is in no namespace of a CI system, a cloud
  or a package registry (its first word is not in ``FOREIGN_NAMESPACES``).
  Never the run's own key variable, nor any variable of provisioner's or
  Recall's keys (RECALL or PROVISIONER as a word), whoever allows it.
* **A digest made with too few iterations is never trusted.** A server that
  hashes with fewer than ``MIN_ITERATIONS`` (OWASP's figure for
  PBKDF2-HMAC-SHA256) lets whoever reads the digest test guesses cheaply, and
  we would be confirming "unchanged" from it: it counts as unknown, so the
  value is written again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Iterable, Mapping

from provisioner.errors import SecretReferenceError
from provisioner.escape import terminal
from provisioner.model import ReadSecretDigest, SecretDigest, SecretRef, SecretUse

ALGORITHM = "pbkdf2_sha256"
# OWASP's Password Storage Cheat Sheet figure for PBKDF2-HMAC-SHA256 (2023).
MIN_ITERATIONS = 600_000
MAX_ITERATIONS = 1_000_000
MAX_FILE_BYTES = 64 * 1024
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Where the operator allows more variable names, outside the repository.
ALLOWED_SECRET_ENVS_ENV = "PROVISIONER_ALLOWED_SECRET_ENVS"
# A name that holds a secret says so in one of its words (split at ``_``):
# DEEPGRAM_KEY_PRODUCTION, ZOOM_HOOK_STAGING, HOSTILE_SECRET. A variable that
# says nothing of the kind (CI_REPOSITORY_URL, HOME) is no secret of the config.
SECRET_WORDS = frozenset(
    {
        "KEY",
        "APIKEY",
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "HOOK",
        "WEBHOOK",
    }
)
# First words that belong to a CI system, a cloud or a package registry: their
# secrets are the job's, never a workspace setting's (GITHUB_TOKEN,
# CI_REGISTRY_PASSWORD, AWS_SECRET_ACCESS_KEY). The operator may still allow
# one by name.
FOREIGN_NAMESPACES = frozenset(
    {
        "ACTIONS",
        "ARM",
        "AWS",
        "AZURE",
        "BITBUCKET",
        "BUILDKITE",
        "CI",
        "CIRCLE",
        "CIRCLECI",
        "CLOUDSDK",
        "CODECOV",
        "DOCKER",
        "DRONE",
        "GCP",
        "GH",
        "GITHUB",
        "GITLAB",
        "GIT",
        "GOOGLE",
        "JENKINS",
        "NPM",
        "PYPI",
        "RUNNER",
        "SSH",
        "SYSTEM",
        "TF",
        "TRAVIS",
        "TWINE",
        "VAULT",
    }
)
# provisioner's and Recall's own key variables: RECALL or PROVISIONER as a word
# (the shape ``token_env`` must have). Never readable into a request.
_OWN_KEYS = re.compile(r"([A-Z0-9]+_)*(RECALL|PROVISIONER)(_[A-Z0-9]+)*")


def allowed_secret_envs(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The operator's globs from ``PROVISIONER_ALLOWED_SECRET_ENVS`` (comma-separated)."""
    env = os.environ if environ is None else environ
    return tuple(g.strip() for g in env.get(ALLOWED_SECRET_ENVS_ENV, "").split(",") if g.strip())


def env_ref_problem(name: str, token_env: str, allowed: Iterable[str] = ()) -> str | None:
    """Why a config may not read the variable ``name`` as a secret, or None.

    ``allowed`` are the operator's globs (``allowed_secret_envs``); see the
    module docstring for the rule.
    """
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
    upper = name.upper()
    if _OWN_KEYS.fullmatch(upper):
        return (
            f"{name} has RECALL or PROVISIONER as a word of its name, the shape of provisioner's and "
            "Recall's own key variables; a config may not read such a variable into a request. Put "
            "the setting's secret in a variable named for it, e.g. DEEPGRAM_KEY_PRODUCTION"
        )
    if any(fnmatch.fnmatchcase(name, glob) for glob in allowed):
        return None
    words = upper.split("_")
    if words[0] in FOREIGN_NAMESPACES:
        return (
            f"{name} is in the namespace of a CI system, a cloud or a registry ({words[0]}_…), whose "
            "variables are the job's credentials, not a workspace setting's; a config may not read "
            "it into a request. Store the secret in a variable named for it (e.g. "
            f"DEEPGRAM_KEY_PRODUCTION), or, as the operator, allow it outside the repository with "
            f"{ALLOWED_SECRET_ENVS_ENV}={name}"
        )
    if not SECRET_WORDS.intersection(words):
        return (
            f"{name} does not name a secret: a config may read a variable only if a word of its name "
            "says it holds one (KEY, SECRET, TOKEN, PASSWORD, HOOK, …; e.g. DEEPGRAM_KEY_PRODUCTION), "
            "so that a pull request cannot send any other variable of the job. Rename the variable, "
            f"or, as the operator, allow it outside the repository with {ALLOWED_SECRET_ENVS_ENV}={name} "
            "(comma-separated globs)"
        )
    return None


def file_ref_problem(name: str) -> str | None:
    """Why a config may not name ``name`` as a secret file (before looking at the disk), or None."""
    if os.path.isabs(name) or name.startswith("~"):
        return "a secret file is named relative to the config's directory; remove the leading / or ~"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a secret file must be inside the config's directory; remove the .. parts"
    hidden = _hidden_part(parts)
    if hidden is not None:
        return _hidden_problem(hidden)
    return None


def _hidden_part(parts: Iterable[str]) -> str | None:
    """The first part that starts with ``.`` (``.git``, ``.env``); ``.`` itself is no part."""
    return next((p for p in parts if p.startswith(".") and p != "."), None)


def _hidden_problem(part: str) -> str:
    return (
        f"a secret file may not be in or be a dot-file or dot-directory (`{terminal(part[:80])}`): "
        ".git/config holds the token CI checked out with, and tools keep credentials in "
        "dot-directories. Keep the secret in a file of its own outside them, e.g. secrets/NAME"
    )


def digest_of(value: str, salt: str, iterations: int) -> str:
    """PBKDF2-HMAC-SHA256 of ``value`` under the hex ``salt``: the contract's ``SecretDigest.digest``."""
    return hashlib.pbkdf2_hmac("sha256", value.encode("utf-8"), bytes.fromhex(salt), iterations).hex()


READ_ALGORITHM = "sha256-read"


def read_digest_of(value: str, salt: str) -> str:
    """Salted SHA-256 of a value the v2 API returned in clear (``ReadSecretDigest.digest``)."""
    return hashlib.sha256(bytes.fromhex(salt) + value.encode("utf-8")).hexdigest()


def digest_problem(digest: SecretDigest) -> str | None:
    """Why the server's ``digest`` cannot be compared with a value, or None."""
    if digest.algorithm != ALGORITHM:
        return f"its algorithm {terminal(digest.algorithm[:40])} is not {ALGORITHM}"
    if digest.iterations < MIN_ITERATIONS:
        return (
            f"it was made with {digest.iterations:,} iterations, fewer than the {MIN_ITERATIONS:,} "
            "that make guessing a secret from its digest costly: too weak to compare"
        )
    if digest.iterations > MAX_ITERATIONS:
        return (
            f"it was made with {digest.iterations:,} iterations, more than the {MAX_ITERATIONS:,} we compute"
        )
    return None


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

    def merged(self, other: SecretValues) -> SecretValues:
        """These values and ``other``'s (``other`` wins on the same reference)."""
        return SecretValues({**self._values, **other._values})

    def values(self) -> tuple[str, ...]:
        """Every value (to redact from messages)."""
        return tuple(self._values.values())

    def matches(self, ref: SecretRef, digest: SecretDigest) -> bool:
        """Whether the value of ``ref`` is the one the API's ``digest`` was made from.

        False for an algorithm we do not know, an iteration count below
        ``MIN_ITERATIONS`` (too weak to trust) or past ``MAX_ITERATIONS``, or a
        salt that is not hex: an unknown is a change.
        """
        value = self._values.get(ref)
        if value is not None and isinstance(digest, ReadSecretDigest):
            # Made by our reader from the value itself (never parsed from a server's answer).
            return hmac.compare_digest(read_digest_of(value, digest.salt), digest.digest)
        if value is None or digest_problem(digest) is not None:
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
    hidden = _hidden_part(os.path.relpath(real, root).split(os.sep))
    if hidden is not None:
        # A link inside the folder may still lead into .git: what is read counts, not what is named.
        return None, f"leads into `{terminal(hidden[:80])}` (through a symlink); " + _hidden_problem(hidden)
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
