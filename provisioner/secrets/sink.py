"""Where server-generated secrets go: a directory of private files, or a command.

The server returns a webhook's signing secret, and a workspace's rotated
verification secret, exactly once: in the answer to the request that made it.
The operator chooses where such a secret goes, with ``--secrets-dir DIR``
(``DirectorySink``) or ``--secrets-command CMD`` (``CommandSink``);
``sink_from_options`` turns the two options into one sink. A secret never goes
to stdout, and never into a message, a log line or a ``repr``.

Decisions worth knowing:

* **Names are untrusted.** The organization, workspace and object names come
  from the API. ``GeneratedSecret.name`` (the name a secret store or variable
  gets) keeps only ``[A-Z0-9_]``; a directory sink's path components keep only
  ``[A-Za-z0-9._-]`` and percent-encode the rest (``_component``), so no name
  can climb out of the directory, hide a file or fail obscurely.
* **The directory sink writes 0600 from the first byte.** Each file is created
  under a temporary name with ``O_CREAT | O_EXCL`` and mode 0600 (then
  ``fchmod``, so the umask cannot narrow it to useless or matter at all),
  written, fsynced and renamed over the old one: a reader sees the old secret
  or the new one, never half of one, and never a file others may read. A
  rotation is the same atomic replace. Directories it creates are 0700.
* **No link is followed inside the directory.** Each level is opened relative
  to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY``: a symbolic
  link planted at ``DIR/<organization>`` fails the delivery instead of sending
  the secret where the link points. ``DIR`` itself may be a link: the operator
  chose it.
* **The file holds the value exactly, without a trailing newline.** Tools that
  read a file whole (``gh secret set NAME < file``, ``vault kv put k v=@file``)
  would otherwise store the newline as part of the secret.
* **The command sink runs no shell.** The command line is split once, like a
  shell would (``shlex``), and run directly, so no name from the API is ever
  interpreted. Its only placeholder is ``{name}``, replaced in every argument
  by ``GeneratedSecret.name``; other braces pass through (a JSON argument, a
  vault path). The secret is on stdin, never in argv (visible to every user
  in ``ps``) or the environment (inherited by every child of the command).
* **The command gets a minimal environment**: ``PATH``, ``HOME``, the locale
  (``LANG``, ``LANGUAGE``, ``LC_*``), the secret's name and place
  (``PROVISIONER_SECRET_*``), and only the variables the operator named on the
  command line (``--secrets-command-env NAME``, e.g. ``GH_TOKEN`` for
  ``gh secret set``). Never the whole environment: that holds the run's API
  key and the values of the config's secret references, and a wrapper script
  that echoes its environment would put them in the job log. The run's key
  variable and the config's referenced variables cannot be passed at all
  (``check_passed_env``).
* **The command's stdout is discarded** (``cat``, ``tee`` or a chatty tool
  would print the secret), and its stderr is read only when it fails: at most
  ``STDERR_READ`` bytes, redacted of the secret before it is cut to
  ``STDERR_EXCERPT`` characters, then escaped for a terminal or CI log.
* **The command runs in its own process group**, killed as a whole on timeout
  or interruption, so a wrapper script cannot leave a child holding the secret.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import string
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field
from typing import Protocol

from provisioner.errors import SinkError
from provisioner.escape import log_text, terminal
from provisioner.frozen import frozen
from provisioner.redaction import excerpt
from provisioner.secrets.names import default_name, spelled

# A directory sink's path component, in characters (all ASCII, so bytes too):
# well under the 255 bytes file systems allow, leaving room for the temp name.
MAX_COMPONENT = 100
_HASH_CHARS = 16
# What ``CommandSink`` waits for one command by default, in seconds.
DEFAULT_TIMEOUT = 60.0
# How much of a failed command's stderr is read, and how much of it is shown.
STDERR_READ = 64 * 1024
STDERR_EXCERPT = 500

# What the command inherits from provisioner's environment, besides what the operator names.
_INHERITED = ("PATH", "HOME", "LANG", "LANGUAGE")
_INHERITED_PREFIX = "LC_"

_KEPT = frozenset(string.ascii_letters + string.digits + "._-")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC


@frozen(slots=True)
class GeneratedSecret:
    """A secret the server generated (a webhook signing secret, a rotated verification secret)."""

    organization: str  # the organization's name, as the API reports it (untrusted)
    workspace: str  # the workspace instance name, e.g. "notetaker-production" (untrusted)
    environment: str | None  # e.g. "production"; None for a workspace without environments
    object: (
        str  # what it belongs to, for messages: e.g. "webhook https://hooks.example.invalid/x" (untrusted)
    )
    slug: str  # a stable, short name part chosen by the caller, e.g. "webhook-3f2a9c1b"
    value: str = field(repr=False)  # the secret; never in repr, str, messages or logs
    label: str | None = None  # the name the config chose for it (an API key's ``sink``), if any

    @property
    def name(self) -> str:
        """The secret's name for a secret store or an environment variable (``secrets.names``).

        ``label`` when the config chose one (the config's builder computed and
        checked it, default included), else ``RECALL_<WORKSPACE>_<SLUG>``;
        spelled ``[A-Z0-9_]`` either way, so ``gh secret set`` and every shell
        accept it.
        """
        if self.label:
            return spelled(self.label)
        return default_name(self.workspace, self.slug)


class SecretSink(Protocol):
    """Somewhere a generated secret can be delivered: ``DirectorySink`` or ``CommandSink``."""

    def describe(self) -> str:
        """Where secrets go, for messages: ``directory /x/y`` or ``command gh``. Not escaped."""
        ...

    def deliver(self, secret: GeneratedSecret) -> str:
        """Deliver ``secret``; return where it went (never the value). Raises ``SinkError``."""
        ...


class RememberingSink:
    """A sink that first tells ``learn`` the secret it delivers (the run's ``Redactor.learn``).

    So every output after the delivery, the sink's own failure message
    included, redacts that secret too.
    """

    def __init__(self, sink: SecretSink, learn: Callable[[str], None]) -> None:
        self.sink = sink
        self.learn = learn

    def describe(self) -> str:
        """The wrapped sink's description."""
        return self.sink.describe()

    def deliver(self, secret: GeneratedSecret) -> str:
        """Learn ``secret``'s value, then deliver it through the wrapped sink."""
        self.learn(secret.value)
        return self.sink.deliver(secret)


def _component(text: str) -> str:
    """``text`` as one safe file name: ``[A-Za-z0-9._-]`` kept, every other byte as ``%XX``.

    A leading ``.`` or ``-`` is encoded too, so no component is ``.``, ``..``,
    a hidden file or something a shell command mistakes for an option. The
    empty name becomes ``%``, which no other name encodes to. A result longer
    than ``MAX_COMPONENT`` is cut and ends in ``~`` and a hash of the whole
    (``~`` is otherwise always encoded), so distinct names stay distinct.
    """
    if not text:
        return "%"
    parts: list[str] = []
    for i, char in enumerate(text):
        if char in _KEPT and not (i == 0 and char in ".-"):
            parts.append(char)
        else:
            # surrogatepass: a lone surrogate from a JSON body still encodes.
            parts.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    encoded = "".join(parts)
    if len(encoded) <= MAX_COMPONENT:
        return encoded
    head = encoded[: MAX_COMPONENT - _HASH_CHARS - 1]
    inside_escape = head.rfind("%", len(head) - 2)  # never end on half of a %XX
    if inside_escape != -1:
        head = head[:inside_escape]
    return f"{head}~{hashlib.sha256(encoded.encode()).hexdigest()[:_HASH_CHARS]}"


def _secret_bytes(secret: GeneratedSecret) -> bytes:
    try:
        return secret.value.encode("utf-8")
    except UnicodeEncodeError:  # its message quotes the character: not shown
        raise SinkError(
            f"the secret {secret.name} of {terminal(secret.object)} is not valid text and cannot be "
            "delivered; rotate it to get a new one"
        ) from None


def _failure(secret: GeneratedSecret, message: str) -> SinkError:
    # Every name in a message is the API's: a server could name an object after
    # the secret it generated. The value is taken out of the finished message.
    if secret.value:
        message = message.replace(secret.value, "***")
    return SinkError(message)


class DirectorySink:
    """``--secrets-dir DIR``: each secret in ``DIR/<organization>/<workspace>/<NAME>``, mode 0600.

    Construction reads nothing but the root's type; directories are created at
    the first delivery.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        if not text or "\0" in text:
            raise SinkError("--secrets-dir needs a directory path; it is created if missing")
        # Absolute now: a later change of the working directory must not move it.
        self.root = os.path.abspath(text)
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise SinkError(
                f"--secrets-dir {terminal(self.root)} is not a directory; give a directory "
                "(it is created, mode 0700, if missing)"
            )

    def describe(self) -> str:
        """``directory /abs/path``."""
        return f"directory {self.root}"

    def path_of(self, secret: GeneratedSecret) -> str:
        """The file ``secret`` goes to (it need not exist): named after its destination name."""
        return os.path.join(
            self.root, _component(secret.organization), _component(secret.workspace), _component(secret.name)
        )

    def deliver(self, secret: GeneratedSecret) -> str:
        """Write ``secret`` to its file, atomically and mode 0600; return the file's path."""
        data = _secret_bytes(secret)
        # The file is named after the secret's destination name (``sink:`` or the
        # default), so a person tells two endpoints' secrets apart.
        organization, workspace, slug = (
            _component(secret.organization),
            _component(secret.workspace),
            _component(secret.name),
        )
        path = os.path.join(self.root, organization, workspace, slug)
        what = f"the secret {secret.name} of {terminal(secret.object)}"
        try:
            directory = self._open_root()
        except OSError as error:
            raise _failure(
                secret,
                f"cannot write {what}: --secrets-dir {terminal(self.root)}: {error.strerror}; "
                "give a directory this user can create or write",
            ) from None
        try:
            for name in (organization, workspace):
                parent = directory
                directory = self._enter(parent, name, secret, what)
                os.close(parent)
            _write_atomically(directory, slug, data)
        except OSError as error:
            raise _failure(
                secret,
                f"cannot write {what} to {terminal(path)}: {error.strerror}; "
                f"check {terminal(self.root)} and its permissions",
            ) from None
        finally:
            os.close(directory)
        return path

    def _open_root(self) -> int:
        # The root and any missing parents are made 0700: a parent that others
        # may write would let them swap the directory out.
        missing: list[str] = []
        here = self.root
        while not os.path.lexists(here):
            missing.append(here)
            parent = os.path.dirname(here)
            if parent == here:
                break
            here = parent
        for path in reversed(missing):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                continue
            os.chmod(path, 0o700)
        # Without O_NOFOLLOW: the root may be a link, chosen by the operator.
        return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)

    def _enter(self, parent: int, name: str, secret: GeneratedSecret, what: str) -> int:
        """The directory ``name`` inside ``parent``, created 0700 if missing, never through a link."""
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
            created = True
        except FileExistsError:
            created = False
        try:
            child = os.open(name, _DIRECTORY, dir_fd=parent)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _failure(
                    secret,
                    f"cannot write {what}: {terminal(name)} inside --secrets-dir "
                    f"{terminal(self.root)} is a symbolic link or not a directory; secrets are "
                    "written only to real directories below it: remove it, or choose another directory",
                ) from None
            raise
        if created:
            try:
                os.fchmod(child, 0o700)  # the umask narrowed it, or did nothing: now exactly 0700
            except BaseException:
                os.close(child)
                raise
        return child


def _write_atomically(directory: int, name: str, data: bytes) -> None:
    """``data`` into ``name`` inside ``directory``: a 0600 temp file, fsynced, then renamed over it."""
    # A leading "." never starts a real name (``_component`` encodes it): no clash.
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, 0o600, dir_fd=directory
    )
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may have narrowed it; nothing can have widened it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=directory)
        except OSError:
            pass
        raise
    os.fsync(directory)  # the rename itself survives a crash


class CommandSink:
    """``--secrets-command CMD``: run ``CMD`` once per secret, the secret on stdin.

    ``CMD`` is split like a shell would, once, and run without a shell; every
    ``{name}`` in an argument becomes ``GeneratedSecret.name``. The command also
    finds ``PROVISIONER_SECRET_NAME``, ``_ORGANIZATION``, ``_WORKSPACE``,
    ``_ENVIRONMENT`` (empty for a workspace without environments) and
    ``_OBJECT`` in its environment, which holds nothing else but ``PATH``,
    ``HOME``, the locale and the variables named in ``passed_env``. For example
    ``--secrets-command 'gh secret set {name} --repo acme/notetaker'
    --secrets-command-env GH_TOKEN``.
    """

    def __init__(
        self, command: str, *, timeout: float = DEFAULT_TIMEOUT, passed_env: Sequence[str] = ()
    ) -> None:
        example = "for example --secrets-command 'gh secret set {name} --repo owner/name'"
        try:
            argv = shlex.split(command)
        except ValueError as error:
            raise SinkError(
                f"--secrets-command cannot be read ({error}); write one command line, quoting "
                f"arguments that contain spaces, {example}"
            ) from None
        if not argv:
            raise SinkError(f"--secrets-command is empty; give the command that stores a secret, {example}")
        if any("\0" in arg for arg in argv):
            raise SinkError("--secrets-command contains a NUL character, which no command line can carry")
        if shutil.which(argv[0]) is None:
            raise SinkError(_not_found(argv[0]))
        for name in passed_env:
            if not _ENV_NAME.fullmatch(name):
                raise SinkError(
                    f"--secrets-command-env {terminal(name[:80])} is not an environment variable name; "
                    "give the name of a variable the command needs, e.g. --secrets-command-env GH_TOKEN"
                )
        self.argv: tuple[str, ...] = tuple(argv)
        self.timeout = timeout
        # Variables the operator chose to pass on (the command's own credentials).
        self.passed_env: tuple[str, ...] = tuple(dict.fromkeys(passed_env))

    def describe(self) -> str:
        """``command <first word>``."""
        return f"command {self.argv[0]}"

    def deliver(self, secret: GeneratedSecret) -> str:
        """Run the command for ``secret``; return ``command X (name RECALL_...)``."""
        data = _secret_bytes(secret)
        program = terminal(self.argv[0])
        what = f"the secret {secret.name} of {terminal(secret.object)}"
        argv = [arg.replace("{name}", secret.name) for arg in self.argv]
        env = {
            **_minimal_env(os.environ, self.passed_env),
            "PROVISIONER_SECRET_NAME": secret.name,
            "PROVISIONER_SECRET_ORGANIZATION": _env_value(secret.organization),
            "PROVISIONER_SECRET_WORKSPACE": _env_value(secret.workspace),
            "PROVISIONER_SECRET_ENVIRONMENT": _env_value(secret.environment or ""),
            "PROVISIONER_SECRET_OBJECT": _env_value(secret.object),
        }
        with tempfile.TemporaryFile() as stderr:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise _failure(secret, f"cannot deliver {what}: {_not_found(self.argv[0])}") from None
            except OSError as error:
                raise _failure(
                    secret,
                    f"cannot deliver {what}: command {program} could not be started: {error.strerror}",
                ) from None
            try:
                process.communicate(data, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _stop(process)
                raise _failure(
                    secret,
                    f"cannot deliver {what}: command {program} did not finish within {self.timeout:g} s "
                    "and was stopped; check that it needs no prompt answered (the secret is its only input)",
                ) from None
            except BaseException:  # interrupted: the command must not outlive us with the secret
                _stop(process)
                raise
            if process.returncode != 0:
                stderr.seek(0)
                said = stderr.read(STDERR_READ).decode("utf-8", "replace")
                raise _failure(
                    secret,
                    f"cannot deliver {what}: command {program} {_outcome(process.returncode)}"
                    + _quote(said, secret.value),
                )
        return f"command {self.argv[0]} (name {secret.name})"


def _minimal_env(environ: Mapping[str, str], passed: Sequence[str]) -> dict[str, str]:
    """What the command inherits: ``PATH``, ``HOME``, the locale, and the ``passed`` variables."""
    return {
        name: value
        for name, value in environ.items()
        if name in _INHERITED or name.startswith(_INHERITED_PREFIX) or name in passed
    }


def check_passed_env(sink: SecretSink | None, token_env: str, referenced: Iterable[str]) -> None:
    """Refuse ``--secrets-command-env`` naming the run's key variable or a config secret's variable.

    Raises ``SinkError``. The command may need its own credential (``GH_TOKEN``),
    never the key provisioner connects with nor a value the config sends.
    """
    passed = getattr(sink, "passed_env", ())
    forbidden = {token_env, *referenced}
    refused = [n for n in passed if n in forbidden]
    if refused:
        names = ", ".join(sorted(refused))
        raise SinkError(
            f"--secrets-command-env may not pass {names} to the command: it holds the API key "
            "provisioner connects with or a secret the config sends. Pass only what the command itself "
            "needs (e.g. GH_TOKEN for `gh secret set`)"
        )


def _not_found(program: str) -> str:
    return (
        f"command {terminal(program)} not found; install it, put it on PATH or give its full path "
        "in --secrets-command"
    )


def _env_value(text: str) -> str:
    # An environment variable cannot hold NUL or a lone surrogate: both are
    # written as escapes rather than failing the delivery.
    return text.replace("\0", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its own group: start_new_session
        except ProcessLookupError:
            pass
    process.wait()


def _outcome(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _quote(stderr: str, value: str) -> str:
    """The start of a failed command's stderr, the secret redacted before it is cut, escaped."""
    if not stderr.strip():
        return " and wrote nothing to stderr"
    if value:
        # ``excerpt`` leaves keys under 8 characters alone (see ``redact``); a
        # secret is taken out whatever its length.
        stderr = stderr.replace(value, "***")
    shown = excerpt(stderr.strip(), value, STDERR_EXCERPT)
    return "; its stderr:\n" + "\n".join("  " + line for line in log_text(shown).split("\n"))


def sink_from_options(
    secrets_dir: str | None, secrets_command: str | None, passed_env: Sequence[str] = ()
) -> SecretSink | None:
    """The sink ``--secrets-dir`` or ``--secrets-command`` asks for; None when neither is given.

    Both at once is an error: a secret goes to one place, and which one should
    not depend on an order of precedence nobody remembers. ``passed_env``
    (``--secrets-command-env``) only goes with ``--secrets-command``.
    """
    if secrets_dir is not None and secrets_command is not None:
        raise SinkError("--secrets-dir and --secrets-command were both given; choose one")
    if passed_env and secrets_command is None:
        raise SinkError("--secrets-command-env names variables for --secrets-command; give that too")
    if secrets_dir is not None:
        return DirectorySink(secrets_dir)
    if secrets_command is not None:
        return CommandSink(secrets_command, passed_env=passed_env)
    return None
