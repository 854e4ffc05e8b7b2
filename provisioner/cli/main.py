"""The ``provisioner`` command group, its lazy command table, and the one place errors become output.

Each command lives in its own module, which is imported only when that
command runs (click's documented lazy-group pattern): ``provisioner --help``
and ``provisioner validate`` never import the HTTP client, and only
``sandbox`` imports Werkzeug. ``COMMANDS`` names each command's module and
its one-line help, so ``--help`` lists every command without importing any.

A command parses its options, calls ``provisioner.service`` and renders what
comes back. It ends in one of three ways, all handled here, once:

* it returns an exit code (``int``): ``ProvisionerGroup.invoke`` exits with it;
* it raises ``ProvisionerError``: ``ProvisionerClickError`` shows the message
  on stderr (escaped by ``cli.output.echo_error``, the one function that
  prints errors) and exits with the error's exit code. No traceback reaches a
  user unless ``-vv`` asks for one, and even then it carries no API key
  because error messages are built without it;
* it raises a click usage error (an unknown option, a bad choice, a missing
  value): click gives those exit code 2, which would read as "changes" to a
  pipeline, so they are mapped to 1 here, for every command.

Exit codes mean the same everywhere: 0 success (no changes, no drift), 1 an
error of any kind, 2 changes or drift (``plan --detailed-exitcode``,
``drift``), 130/143 an apply stopped by SIGINT/SIGTERM.

The global options (``-v``, ``--color``) are accepted before the command and
after it: ``ProvisionerGroup.add_command`` gives every command (and every
command of a nested group) a copy of them that adds to the root's value.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Mapping
from typing import IO, Any

import click

from provisioner.cli import hints
from provisioner.cli.output import echo_error, run_redactor
from provisioner.errors import ApplyAbortedError, ProvisionerError
from provisioner.frozen import frozen
from provisioner.redaction import Redactor


class ProvisionerClickError(click.ClickException):
    """A ``ProvisionerError`` rendered for click: message and exit code."""

    def __init__(self, error: ProvisionerError):
        super().__init__(str(error))
        self.error = error
        # Taken while the command's context is current: ``show`` runs after it ended.
        self.redactor = run_redactor()
        # click declares ``exit_code`` a class variable but reads it from the instance.
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        echo_error(self.format_message(), self.redactor)
        if isinstance(self.error, ApplyAbortedError):
            # Abandoned requests may still be running in worker threads; the
            # interpreter would wait for them at exit. Everything known is written.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(self.exit_code)


_COMMAND_WORDS = "provisioner.command_words"  # ctx.meta key: (name, command, its words)
USAGE_EXIT_CODE = 1  # an error like any other; 2 means "changes" (see the module doc)
COLOR_CHOICES = ("auto", "always", "never")


def _usage_error(error: click.UsageError) -> click.UsageError:
    # click declares ``exit_code`` a class variable but reads it from the instance.
    error.exit_code = USAGE_EXIT_CODE  # type: ignore[misc]
    return error


def _late_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    """``-v`` after the command: adds to the count given before it."""
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["verbosity"] = root.obj.get("verbosity", 0) + value
        configure_logging(root.obj["verbosity"], run_redactor())


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
    """Give ``command`` (and its subcommands) the global options, unless it has its own."""
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    command.params.extend(p for p in _global_options() if not set(p.opts) & taken)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_options(sub)


@frozen
class LazyCommand:
    """Where a command lives (``module:attribute``) and its one-line help for ``--help``."""

    target: str
    help: str


# Every command, by name. The help is the first line of the command's
# docstring (tests/e2e/test_cli_commands.py keeps the two equal).
COMMANDS: Mapping[str, LazyCommand] = {
    "validate": LazyCommand(
        "provisioner.cli.validate:validate",
        "Check configs offline: syntax, schema, references and expansion. Exit 1 on any issue.",
    ),
    "plan": LazyCommand(
        "provisioner.cli.plan:plan", "Show what apply would change: who gains and who loses what, and where."
    ),
    "apply": LazyCommand("provisioner.cli.apply:apply", "Make the organization match the config."),
    "show": LazyCommand(
        "provisioner.cli.show:show", "Show a plan saved with `plan --out PLANFILE`, with its digest. Offline."
    ),
    "drift": LazyCommand(
        "provisioner.cli.drift:drift", "Check, read-only, whether the organization still matches the config."
    ),
    "export": LazyCommand(
        "provisioner.cli.export:export", "Export the current organization as a version-1 config."
    ),
    "review": LazyCommand(
        "provisioner.cli.review:review",
        "Write an access review of the organization as it is now: admins, production access with "
        "when and why it was granted, the access matrix, expiring grants and the changes of the period. "
        "Read-only; works with a developer's key.",
    ),
    "sandbox": LazyCommand(
        "provisioner.cli.sandbox:sandbox",
        "A local sandbox of the regional API (SQLite-backed) for trying plans and for tests.",
    ),
}


class ProvisionerGroup(click.Group):
    """A click group that loads its commands lazily and turns outcomes into output, once.

    Converts the project's error hierarchy and usage errors, and a command's
    returned exit code, in one place (see the module docstring).
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands: Mapping[str, LazyCommand] = dict(lazy_commands or {})

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The group's own options are parsed here, before ``invoke``.
        words = list(args)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.NoSuchOption as error:
            raise _usage_error(self._option_before_command(error, words) or error) from None
        except click.UsageError as error:
            raise _usage_error(error) from None

    def _option_before_command(self, error: click.NoSuchOption, words: list[str]) -> click.UsageError | None:
        """``provisioner -c x plan``: the hint to put ``-c x`` after the command, when it has it."""
        names = set(self.list_commands(error.ctx)) if error.ctx is not None else set()
        name = next((word for word in words if word in names), None)
        if name is None or error.ctx is None:
            return None
        command = self.get_command(error.ctx, name)
        return None if command is None else hints.misplaced_option(error, words, name, command)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if not name.startswith("-") and self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            raise hints.unknown_command(name, self.list_commands(ctx), ctx)
        resolved = super().resolve_command(ctx, args)
        # Kept for a usage error's hint (``invoke``): the words given to the command.
        ctx.meta[_COMMAND_WORDS] = (resolved[0], resolved[1], list(resolved[2]))
        return resolved

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except ProvisionerError as error:
            raise ProvisionerClickError(error) from None
        except click.UsageError as error:  # a command's options, or one it raised itself
            raise _usage_error(self._config_hint(ctx, error) or error) from None
        if isinstance(result, int) and not isinstance(result, bool) and result:
            ctx.exit(result)  # a command's exit code: 1 error, 2 changes or drift
        return result

    def _config_hint(self, ctx: click.Context, error: click.UsageError) -> click.UsageError | None:
        """``provisioner plan base.yaml``: the hint to give the config with ``-c``."""
        words = ctx.meta.get(_COMMAND_WORDS)
        if words is None or words[1] is None or error.ctx is None or error.ctx.command is not words[1]:
            return None
        name, command, args = words
        return hints.positional_config(error, name, command, args, ctx)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _with_global_options(cmd)
        super().add_command(cmd, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].target.split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module_name}.{attribute} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from the lazy table: no command module is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_commands and name not in self.commands:
                # A bare Command shortens the help exactly as the real one would.
                stand_in = click.Command(name, help=self.lazy_commands[name].help)
                rows.append((name, stand_in.get_short_help_str(limit)))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def configure_logging(verbosity: int, redactor: Redactor) -> None:
    """-v shows INFO, -vv DEBUG. Logs go to stderr, redacted of every secret the run knows.

    ``logging`` is imported here, not with the module: ``--help`` and
    ``--version`` never log, and the import is a tenth of their cost.
    """
    import logging

    from provisioner.cli.logformat import SafeFormatter

    level = logging.WARNING - 10 * min(verbosity, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s", redactor))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # urllib3 announces each retry as a WARNING; the final outcome is reported
    # by provisioner itself, so show the retries only when asked (-v).
    logging.getLogger("urllib3").setLevel(level if verbosity else logging.ERROR)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version is looked up only here (importlib.metadata costs more
    than the rest of ``--help``), never when the group is built."""
    if not value or ctx.resilient_parsing:
        return
    from provisioner import __version__

    click.echo(f"provisioner, version {__version__}")
    ctx.exit()


@click.group(
    cls=ProvisionerGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
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
    configure_logging(verbose, run_redactor())


def main() -> None:
    """Console-script entry point."""
    # A plan holds two states of up to 100,000 memberships each, built from
    # many small, acyclic objects. The default collector thresholds rescan
    # them again and again while they are being built (~0.3 s at full scale);
    # collecting less often costs little memory here.
    gc.set_threshold(50_000, 20, 100)
    cli(prog_name="provisioner")
