"""`provisioner validate`: check configs offline and report every issue.

Formats: ``text`` (``file:line:col: path: message`` on stderr), ``json``
(``{"valid", "errors"}`` on stdout, for tools) and ``github`` (workflow
``::error`` annotations on stdout). Exit 0 when every config is valid, 1 otherwise.
"""

from __future__ import annotations

import json

import click

from provisioner.cli.output import safe_message
from provisioner.config import load_configs
from provisioner.errors import ConfigError, ConfigIssue
from provisioner.escape import github_message, github_property, terminal_lines
from provisioner.model import Config


def _summary(path: str, config: Config) -> str:
    state = config.desired
    return (
        f"{path}: OK ({len(state.users)} users, {len(state.workspaces)} workspace "
        f"instances, {len(state.memberships)} memberships)"
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


@click.command("validate")
@click.option(
    "-c",
    "--config",
    "paths",
    multiple=True,
    required=True,
    help="A config file or a directory of *.yaml files (one organization). Repeat for several organizations.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="How to report the result.",
)
def validate(paths: tuple[str, ...], fmt: str) -> None:
    """Check configs offline: syntax, schema, references and expansion. Exit 1 on any issue."""
    try:
        configs = load_configs(paths)
    except ConfigError as error:
        issues = error.issues
        if fmt == "json":
            click.echo(
                json.dumps(
                    {"valid": False, "errors": [_as_dict(i) for i in issues], "omitted": error.omitted},
                    indent=2,
                )
            )
        elif fmt == "github":
            for issue in issues:
                click.echo(_github(issue))
            if error.omitted:
                click.echo(f"::error::{github_message(error.omitted)}")
        else:
            for issue in issues:
                click.echo(safe_message(str(issue)), err=True)
            if error.omitted:
                click.echo(error.omitted, err=True)
            n = len(issues)
            more = " (and more not shown)" if error.omitted else ""
            click.echo(f"{n} error{'s' if n != 1 else ''} found{more}; the config is not valid", err=True)
        raise SystemExit(1) from None
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "errors": []}, indent=2))
    else:
        for path, config in zip(paths, configs):
            click.echo(safe_message(_summary(path, config)))
