"""The ``provisioner`` command group and the one place errors become output.

Each command lives in its own module and is registered here. Commands raise
``ProvisionerError``; ``ProvisionerGroup.invoke`` turns any of them into a
clean message on stderr (escaped by ``cli.output.echo_error``, the one
function that prints errors) and the error's exit code. No traceback reaches a
user unless ``-vv`` asks for one, and even then it carries no API key because
error messages are built without it.
"""

from __future__ import annotations

import gc
import logging
import sys

import click

from provisioner import __version__
from provisioner.cli.output import echo_error, safe_message
from provisioner.errors import ProvisionerError


class ProvisionerClickError(click.ClickException):
    """A ``ProvisionerError`` rendered for click: message and exit code."""

    def __init__(self, error: ProvisionerError):
        super().__init__(str(error))
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        echo_error(self.format_message())


class ProvisionerGroup(click.Group):
    """A click group that converts the project's error hierarchy, once."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ProvisionerError as error:
            raise ProvisionerClickError(error) from None


class SafeFormatter(logging.Formatter):
    """Log lines escaped like error messages: log arguments include names from
    the config and the API, and stderr is a terminal or a CI log."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_message(super().format(record))


def configure_logging(verbosity: int) -> None:
    """-v shows INFO, -vv DEBUG. Logs go to stderr and never contain the key."""
    level = logging.WARNING - 10 * min(verbosity, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # urllib3 announces each retry as a WARNING; the final outcome is reported
    # by provisioner itself, so show the retries only when asked (-v).
    logging.getLogger("urllib3").setLevel(level if verbosity else logging.ERROR)


@click.group(cls=ProvisionerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provisioner")
@click.option("-v", "--verbose", count=True, help="More output on stderr: -v info, -vv debug.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Access management as code: declare users, roles and workspaces in YAML,
    then plan and apply them against the regional API."""
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose
    configure_logging(verbose)


def _register() -> None:
    # Each command module owns its command and options; the list is explicit.
    from provisioner.cli.drift import drift
    from provisioner.cli.export import export
    from provisioner.cli.reconcile import apply, plan
    from provisioner.cli.sandbox import sandbox
    from provisioner.cli.show import show
    from provisioner.cli.validate import validate

    for command in (validate, plan, apply, show, drift, export, sandbox):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    # A plan holds two states of up to 100,000 memberships each, built from
    # many small, acyclic objects. The default collector thresholds rescan
    # them again and again while they are being built (~0.3 s at full scale);
    # collecting less often costs little memory here.
    gc.set_threshold(50_000, 20, 100)
    cli(prog_name="provisioner")
