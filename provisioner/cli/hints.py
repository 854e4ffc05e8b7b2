"""Usage errors that teach: what a newcomer typed wrong, and the command they meant.

click's own messages say what is wrong ("No such option '-c'", "Missing
option '-c'"); these add what to type instead, as a command that works when
copied. ``cli.main.ProvisionerGroup`` calls them where click raises, once.

Decisions worth knowing:

* A hint is added only when it is certainly right: an option placed before
  the command is named only if the command has it; a stray word is read as a
  config only for a command that takes ``-c`` and no positional argument.
* Every word of a suggested command is the user's own and is shell-quoted
  (``shlex.join``); the whole message is escaped by ``cli.output.echo_error``.
* Command typos use ``difflib`` over every command name, lazy ones included
  (click's own suggestion sees only the commands already imported).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

import click

PROG = "provisioner"
CONFIG_OPTION = "-c"


def _suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The one candidate closest to ``word``, if any is close."""
    import difflib  # only on an error: ``provisioner --help`` stays light

    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_command(name: str, commands: Iterable[str], ctx: click.Context | None) -> click.UsageError:
    """``No such command 'plna'. Did you mean plan?`` (the suggestion only when one is close)."""
    message = f"No such command {name!r}."
    match = _suggest(name, commands)
    if match is not None:
        message += f" Did you mean {match}?"
    else:
        message += f" Run `{PROG} --help` to list the commands."
    return click.UsageError(message, ctx)


def command_options(command: click.Command) -> set[str]:
    """Every option string of ``command`` (``-c``, ``--config``, ...)."""
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def misplaced_option(
    error: click.NoSuchOption, args: Sequence[str], name: str, command: click.Command
) -> click.UsageError | None:
    """An option of ``command`` given before it: the same words, with the command first.

    ``args`` are the words after ``provisioner``; ``name`` is the command among
    them. The group's own options are accepted after the command too, so
    moving every word before the command behind it keeps their meaning.
    """
    option = error.option_name.split("=", 1)[0]
    if option not in command_options(command):
        return None
    position = list(args).index(name)
    fixed = [PROG, name, *args[:position], *args[position + 1 :]]
    return click.UsageError(
        f"No such option {option!r} before the command: {option} is an option of `{name}`; "
        f"put it after the command: {shlex.join(fixed)}",
        error.ctx,
    )


def _strays(command: click.Command, name: str, args: Sequence[str], parent: click.Context) -> list[str]:
    """The words of ``args`` that no option of ``command`` consumed (parsed leniently)."""
    try:
        ctx = command.make_context(name, list(args), parent=parent, resilient_parsing=True)
    except click.ClickException:
        return []
    return [word for word in ctx.args if not word.startswith("-")]


def _config_param(command: click.Command) -> click.Parameter | None:
    """The ``-c`` option of ``command`` when it takes no positional argument, else None."""
    if any(isinstance(p, click.Argument) for p in command.params):
        return None
    return next((p for p in command.params if CONFIG_OPTION in p.opts), None)


def positional_config(
    error: click.UsageError, name: str, command: click.Command, args: Sequence[str], parent: click.Context
) -> click.UsageError | None:
    """A config given without ``-c``: ``did you mean -c base.yaml``, as a whole command.

    Two cases: no ``-c`` at all (click says the option is missing), and a
    second word after one ``-c`` (click says "unexpected extra argument").
    """
    config = _config_param(command)
    if config is None:
        return None
    strays = _strays(command, name, args, parent)
    if not strays:
        return None
    if isinstance(error, click.MissingParameter) and error.param is config:
        fixed = [PROG, name, *(w for word in args for w in (["-c", word] if word in strays else [word]))]
        quoted = " ".join(f"-c {shlex.quote(word)}" for word in strays)
        return click.UsageError(
            f"{error.format_message()} A config is given with -c: did you mean {quoted}? "
            f"That is: {shlex.join(fixed)}",
            error.ctx,
        )
    if "unexpected extra argument" in error.format_message():
        return click.UsageError(
            f"{error.format_message().rstrip('.')}. -c takes one path; each -c is a separate "
            "organization, and a config split over several files goes in one folder given as "
            "-c FOLDER (its *.yaml files merge into one organization)",
            error.ctx,
        )
    return None
