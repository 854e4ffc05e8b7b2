"""The one error hierarchy of provisioner.

Every failure a user can meet is a ``ProvisionerError``. Each message says what
happened, where, and what to do next. The CLI turns these into clean output and
an exit code in exactly one place (``provisioner.cli.main``); nothing else
catches them to print.

Messages must never contain an API key. Code that builds a message from a
request or response goes through ``provisioner.api.client``, which redacts.
"""

from __future__ import annotations

from provisioner.frozen import frozen


class ProvisionerError(Exception):
    """Base class of every error provisioner reports to a user."""

    exit_code: int = 1


@frozen
class Location:
    """A place in a config file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@frozen
class ConfigIssue:
    """One problem found in a config: where, at which path, and what to do."""

    location: Location | None
    path: str  # e.g. "workspaces[0].members.production[1]"; "" for the document
    message: str

    def __str__(self) -> str:
        where = str(self.location) if self.location else "<config>"
        at = f" {self.path}:" if self.path else ""
        return f"{where}:{at} {self.message}"


class ConfigError(ProvisionerError):
    """The config is invalid. Carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue] | tuple[ConfigIssue, ...], *, omitted: str | None = None):
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        # "and K more errors not shown …" when collection stopped listing them.
        self.omitted = omitted
        n = len(self.issues)
        head = f"{n}{'+' if omitted else ''} error{'s' if n != 1 else ''} in config"
        tail = f"\n  {omitted}" if omitted else ""
        super().__init__(head + ":\n" + "\n".join(f"  {i}" for i in self.issues) + tail)


class ApiError(ProvisionerError):
    """The regional API answered with an error, or could not be reached.

    ``status`` is the HTTP status when there was one; ``code`` the API's error
    code (``already_exists``, ``not_supported``, ...). Only the HTTP client
    creates these; nothing above it looks at status codes except through the
    subclasses below.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.method = method
        self.url = url


class AuthenticationError(ApiError):
    """401: the key is missing or unknown."""


class PermissionDeniedError(ApiError):
    """403: the key's user may not do this (for example a developer writing)."""


class NotFoundError(ApiError):
    """404: the object does not exist (any more)."""


class NotABaseUrlError(ApiError):
    """``GET /me/`` answered 404: the configured URL is not an API base URL."""


class ConflictError(ApiError):
    """409: the object already exists."""


class PreconditionFailedError(ApiError):
    """412: the object changed since it was read (If-Match mismatch)."""


class RateLimitedError(ApiError):
    """429 whose Retry-After exceeds what we are willing to wait."""


class TransportError(ApiError):
    """The request could not be completed: timeouts, refused connections,
    retries exhausted, refused redirects or insecure URLs."""


class SecretReferenceError(ProvisionerError):
    """A secret reference of the config cannot be read at plan time (unset variable, missing file).

    The message names every such reference and where the config uses it; never a value.
    """


class UnsafePlanError(ProvisionerError):
    """A guard refused the plan (lockout, min_admins, protected users, mass removal, ...)."""


class StalePlanError(ProvisionerError):
    """A saved plan may not be applied: state changed, file modified, other version, too old."""


class ApplyError(ProvisionerError):
    """An apply finished with failed or skipped changes. The report is in the message."""


class ApplyInterruptedError(ApplyError):
    """SIGINT or SIGTERM stopped an apply; exits 128 + the signal's number (130, 143)."""

    def __init__(self, message: str, *, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class ApplyAbortedError(ApplyInterruptedError):
    """A second signal abandoned the changes in flight; their worker threads may still run.

    Whoever reports it ends the process without waiting for those threads
    (``os._exit``): everything known has been written.
    """


class SinkError(ProvisionerError):
    """A server-generated secret could not be delivered to the operator's sink.

    Raised for a bad ``--secrets-dir``/``--secrets-command`` (both given, an
    unparsable command, a root that is not a directory) and for a delivery that
    failed (a symlink inside the directory, a command that failed or timed
    out). The message names the secret and where it was going, never its value.
    """


class RefusedError(ProvisionerError):
    """The user did not confirm, or confirmation was impossible (no terminal, no --auto-approve)."""
