"""``provisioner validate``: check configs offline and report every issue.

Formats (``provisioner.render.validate``): ``text`` (``file:line:col: path:
message`` on stderr), ``json`` (``{"valid", "errors"}`` on stdout, for tools)
and ``github`` (workflow ``::error`` annotations on stdout). Exit 0 when every
config is valid, 1 otherwise.
"""

from __future__ import annotations

import click

from provisioner.cli.output import echo_text
from provisioner.render.validate import VALIDATE_RENDERERS
from provisioner.service.validate import validate as validate_configs


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
    type=click.Choice(list(VALIDATE_RENDERERS)),
    default="text",
    show_default=True,
    help="How to report the result.",
)
def validate(paths: tuple[str, ...], fmt: str) -> int:
    """Check configs offline: syntax, schema, references and expansion. Exit 1 on any issue."""
    result = validate_configs(paths)
    rendered = VALIDATE_RENDERERS[fmt](result)
    echo_text(rendered.stderr, err=True)
    echo_text(rendered.stdout)
    return result.exit_code
