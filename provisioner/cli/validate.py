"""`provisioner validate`: check configs offline and report every issue.

Formats: ``text`` (``file:line:col: path: message`` on stderr), ``json``
(``{"valid", "errors"}`` on stdout, for tools) and ``github`` (workflow
``::error`` annotations on stdout). Exit 0 when every config is valid, 1 otherwise.
"""

from __future__ import annotations

import json

import click

from provisioner.config import load_configs
from provisioner.errors import ConfigError, ConfigIssue
from provisioner.model import Config


def _summary(path: str, config: Config) -> str:
    state = config.desired
    return (f"{path}: OK ({len(state.users)} users, {len(state.workspaces)} workspace "
            f"instances, {len(state.memberships)} memberships)")


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
    # Workflow commands need %, CR and LF escaped in the message and the properties.
    def esc(text: str, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    message = esc(f"{issue.path}: {issue.message}" if issue.path else issue.message)
    loc = issue.location
    if loc is None:
        return f"::error::{message}"
    return f"::error file={esc(loc.file, True)},line={loc.line},col={loc.column}::{message}"


@click.command("validate")
@click.option("-c", "--config", "paths", multiple=True, required=True,
              help="A config file or a directory of *.yaml files (one organization). Repeat "
                   "for several organizations.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="How to report the result.")
def validate(paths: tuple[str, ...], fmt: str) -> None:
    """Check configs offline: syntax, schema, references and expansion. Exit 1 on any issue."""
    try:
        configs = load_configs(paths)
    except ConfigError as error:
        issues = error.issues
        if fmt == "json":
            click.echo(json.dumps({"valid": False, "errors": [_as_dict(i) for i in issues]},
                                  indent=2))
        elif fmt == "github":
            for issue in issues:
                click.echo(_github(issue))
        else:
            for issue in issues:
                click.echo(str(issue), err=True)
            n = len(issues)
            click.echo(f"{n} error{'s' if n != 1 else ''} found; the config is not valid", err=True)
        raise SystemExit(1) from None
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "errors": []}, indent=2))
    else:
        for path, config in zip(paths, configs):
            click.echo(_summary(path, config))
