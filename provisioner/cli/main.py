"""The ``provisioner`` command group and the one place errors become output.

Each command lives in its own module and is registered here. Commands raise
``ProvisionerError``; ``ProvisionerGroup.invoke`` turns any of them into a
clean message on stderr (escaped by ``cli.output.echo_error``, the one
function that prints errors) and the error's exit code. No traceback reaches a
user unless ``-vv`` asks for one, and even then it carries no API key because
error messages are built without it.

Exit codes mean the same everywhere: 0 success (no changes, no drift), 1 an
error of any kind, 2 changes or drift (``plan --detailed-exitcode``,
``drift``). Click gives usage errors (an unknown option, a bad choice, a
missing value) exit code 2, which would read as "changes" to a pipeline;
``ProvisionerGroup`` maps them to 1, once, for every command.

The global options (``-v``, ``--color``) are accepted before the command and
after it: ``ProvisionerGroup.add_command`` gives every command (and every
command of a nested group) a copy of them that adds to the root's value.
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


USAGE_EXIT_CODE = 1  # an error like any other; 2 means "changes" (see the module doc)
COLOR_CHOICES = ("auto", "always", "never")


def _usage_error(error: click.UsageError) -> click.UsageError:
    error.exit_code = USAGE_EXIT_CODE
    return error


def _late_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    """``-v`` after the command: adds to the count given before it."""
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["verbosity"] = root.obj.get("verbosity", 0) + value
        configure_logging(root.obj["verbosity"])


def _late_color(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--color`` after the command: overrides the one given before it."""
    if value is not None:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["color"] = value
        ctx.color = root.color = _click_color(value)


def _click_color(choice: str) -> bool | None:
    """What click's ``echo`` should do with ANSI codes: keep (True), strip (False), decide (None)."""
    return {"always": True, "never": False}.get(choice)


def _global_options() -> list[click.Option]:
    """Fresh copies of the global options for one command (not exposed to its callback)."""
    return [
        click.Option(
            ["-v", "--verbose", "late_verbose"],
            count=True,
            expose_value=False,
            callback=_late_verbose,
            help="More output on stderr: -v info, -vv debug.",
        ),
        click.Option(
            ["--color", "late_color"],
            type=click.Choice(COLOR_CHOICES),
            default=None,
            expose_value=False,
            callback=_late_color,
            help="Colour the text output: auto (on a terminal, unless NO_COLOR), always, never.",
        ),
    ]


def _with_global_options(command: click.Command) -> None:
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    command.params.extend(p for p in _global_options() if not set(p.opts) & taken)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_options(sub)


class ProvisionerGroup(click.Group):
    """A click group that converts the project's error hierarchy and usage errors, once."""

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001, ANN201 - click's signature
        # The group's own options are parsed here, before ``invoke``.
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise _usage_error(error) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ProvisionerError as error:
            raise ProvisionerClickError(error) from None
        except click.UsageError as error:  # a command's options, or one it raised itself
            raise _usage_error(error) from None

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _with_global_options(cmd)
        super().add_command(cmd, name)


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
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More output on stderr: -v info, -vv debug. Also accepted after the command.",
)
@click.option(
    "--color",
    type=click.Choice(COLOR_CHOICES),
    default="auto",
    show_default=True,
    help="Colour the text output: auto (on a terminal, unless NO_COLOR), always, never. "
    "Also accepted after the command.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, color: str) -> None:
    """Access management as code: declare users, roles and workspaces in YAML,
    then plan and apply them against the regional API."""
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose
    ctx.obj["color"] = color
    ctx.color = _click_color(color)  # else click strips the codes whenever stdout is no terminal
    configure_logging(verbose)


def _register() -> None:
    # Each command module owns its command and options; the list is explicit.
    from provisioner.cli.drift import drift
    from provisioner.cli.export import export
    from provisioner.cli.reconcile import apply, plan
    from provisioner.cli.review import review
    from provisioner.cli.sandbox import sandbox
    from provisioner.cli.show import show
    from provisioner.cli.validate import validate

    for command in (validate, plan, apply, show, drift, export, sandbox, review):
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
