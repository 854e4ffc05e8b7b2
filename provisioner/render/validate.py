"""The result of ``validate``: the validate registry (text, json, github).

* ``text``: ``file:line:col: path: message`` on stderr, one line per issue and a
  count; for valid configs one ``OK`` line each on stdout.
* ``json``: ``{"valid", "errors", "omitted"}`` on stdout, for tools.
* ``github``: workflow ``::error`` annotations on stdout, for GitHub Actions.

A renderer returns a ``Rendered``: what goes to stdout and what to stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from provisioner.errors import ConfigError, ConfigIssue
from provisioner.escape import github_message, github_property, log_text, terminal_lines
from provisioner.frozen import frozen
from provisioner.model import Config
from provisioner.service.validate import Validation


@frozen
class Rendered:
    """Output bound for the two streams; each ends with a newline unless empty."""

    stdout: str = ""
    stderr: str = ""


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _summary(path: str, config: Config) -> str:
    state = config.desired
    settings = ""
    if state.webhooks or state.credentials:
        settings = f", {len(state.webhooks)} webhooks, {len(state.credentials)} credentials"
    return (
        f"{path}: OK ({len(state.users)} users, {len(state.workspaces)} workspace "
        f"instances, {len(state.memberships)} memberships{settings})"
    )


def _as_dict(issue: ConfigIssue) -> dict[str, object]:
    loc = issue.location
    return {
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "column": loc.column if loc else None,
        "path": issue.path,
        "message": issue.message,
    }


def _github(issue: ConfigIssue) -> str:
    """One ``::error`` workflow command, always a single line.

    The message and file name quote the config (keys, values, file names: all
    from the pull request), so they are escaped for a terminal first and then
    for a workflow command (``%``, CR and LF percent-encoded; ``:`` and ``,`` too
    in a property): no part of them can end the command or start another.
    """
    text = f"{issue.path}: {issue.message}" if issue.path else issue.message
    message = github_message(terminal_lines(text))
    loc = issue.location
    if loc is None:
        return f"::error::{message}"
    file = github_property(terminal_lines(loc.file))
    return f"::error file={file},line={loc.line},col={loc.column}::{message}"


def _text_errors(error: ConfigError) -> list[str]:
    lines = [log_text(str(issue)) for issue in error.issues]
    if error.omitted:
        lines.append(error.omitted)
    n = len(error.issues)
    more = " (and more not shown)" if error.omitted else ""
    lines.append(f"{n} error{'s' if n != 1 else ''} found{more}; the config is not valid")
    return lines


def validate_text(result: Validation) -> Rendered:
    """Issues on stderr (escaped for a terminal and a CI log); ``OK`` lines on stdout."""
    if result.error is not None:
        return Rendered(stderr=_lines(_text_errors(result.error)))
    return Rendered(
        stdout=_lines(
            [log_text(_summary(path, config)) for path, config in zip(result.paths, result.configs)]
        )
    )


def validate_json(result: Validation) -> Rendered:
    import json  # here: the text form (the pre-commit hook's) needs no JSON

    """One JSON document on stdout; JSON's encoder escapes every value."""
    if result.error is None:
        return Rendered(stdout=json.dumps({"valid": True, "errors": []}, indent=2) + "\n")
    error = result.error
    document = {"valid": False, "errors": [_as_dict(i) for i in error.issues], "omitted": error.omitted}
    return Rendered(stdout=json.dumps(document, indent=2) + "\n")


def validate_github(result: Validation) -> Rendered:
    """One ``::error`` annotation per issue; valid configs print their ``OK`` lines."""
    if result.error is None:
        return validate_text(result)
    lines = [_github(issue) for issue in result.error.issues]
    if result.error.omitted:
        lines.append(f"::error::{github_message(result.error.omitted)}")
    return Rendered(stdout=_lines(lines))


ValidateRenderer = Callable[[Validation], Rendered]

# The order is the order of ``--format``'s choices in ``--help``.
VALIDATE_RENDERERS: Mapping[str, ValidateRenderer] = {
    "text": validate_text,
    "json": validate_json,
    "github": validate_github,
}
