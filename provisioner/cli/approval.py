"""``apply``'s approval options: the pull request, approvers and merge actor CI knows of.

Each has an environment variable, so a CI job can set them once for every
step: ``PROVISIONER_PULL_REQUEST``, ``PROVISIONER_APPROVERS`` (names separated
by commas or spaces) and ``PROVISIONER_MERGE_ACTOR``. They go into the audit
record, and the access review shows them.

Decisions worth knowing:

* The values are untrusted (a pull request's author can pick a branch or a
  login that holds markup): each must be printable text on one line, within
  the bounds in ``provisioner.audit``; anything else is a usage error that
  says which option and what to give. The renderers escape them as well.
* A bad value refuses the apply before anything is read: a record that
  cannot say who approved a run must not be written half-empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import click

from provisioner.audit import APPROVERS_LIMIT, NAME_LIMIT, PULL_REQUEST_LIMIT, Approval
from provisioner.escape import terminal

F = Callable[..., object]

PULL_REQUEST_ENV = "PROVISIONER_PULL_REQUEST"
APPROVERS_ENV = "PROVISIONER_APPROVERS"
MERGE_ACTOR_ENV = "PROVISIONER_MERGE_ACTOR"

_SEPARATORS = re.compile(r"[,\s]+")


def approval_options(f: F) -> F:
    """``--pull-request URL``, ``--approved-by NAME`` (repeatable), ``--merged-by NAME``."""
    f = click.option(
        "--merged-by",
        envvar=MERGE_ACTOR_ENV,
        default=None,
        metavar="NAME",
        help=f"Who merged the change (recorded in the audit record). Env: {MERGE_ACTOR_ENV}.",
    )(f)
    f = click.option(
        "--approved-by",
        "approvers",
        envvar=APPROVERS_ENV,
        multiple=True,
        metavar="NAME",
        help="Who approved the pull request; repeat, or separate names by commas "
        f"(recorded in the audit record). Env: {APPROVERS_ENV}.",
    )(f)
    f = click.option(
        "--pull-request",
        envvar=PULL_REQUEST_ENV,
        default=None,
        metavar="URL",
        help="The pull request this apply comes from (recorded in the audit record). "
        f"Env: {PULL_REQUEST_ENV}.",
    )(f)
    return f


def _checked(option: str, value: str, limit: int) -> str:
    text = value.strip()
    if not text or len(text) > limit or not text.isprintable():
        raise click.UsageError(
            f"{option} needs 1 to {limit} printable characters on one line, got "
            f"'{terminal(text[:40])}'{'…' if len(text) > 40 else ''}; it goes into the audit record"
        )
    return text


def approval_from_options(
    pull_request: str | None, approvers: tuple[str, ...], merged_by: str | None
) -> Approval:
    """The checked ``Approval``; empty values (an unset CI variable) count as not given."""
    names = [n for raw in approvers for n in _SEPARATORS.split(raw) if n]
    if len(names) > APPROVERS_LIMIT:
        raise click.UsageError(
            f"--approved-by names {len(names)} approvers; at most {APPROVERS_LIMIT} are recorded"
        )
    return Approval(
        pull_request=_checked("--pull-request", pull_request, PULL_REQUEST_LIMIT)
        if pull_request and pull_request.strip()
        else None,
        approvers=tuple(dict.fromkeys(_checked("--approved-by", n, NAME_LIMIT) for n in names)),
        merged_by=_checked("--merged-by", merged_by, NAME_LIMIT) if merged_by and merged_by.strip() else None,
    )
