"""The lazy command table: ``--help`` lists every command from it, without importing any.

Each command's module is imported only when that command runs
(``provisioner.cli.main.COMMANDS``); the one-line help kept in the table must
say what the command's own docstring says.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from provisioner.cli.main import COMMANDS, cli

COMMAND_MODULES = sorted({lazy.target.split(":")[0] for lazy in COMMANDS.values()})


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_help_is_the_commands_own_first_paragraph(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.help is not None
    first_paragraph = " ".join(command.help.split("\n\n")[0].split())
    assert COMMANDS[name].help == first_paragraph


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    probe = (
        "import sys\n"
        "from provisioner.cli.main import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='provisioner')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', *sorted(m for m in sys.modules if m.startswith(('provisioner.', 'werkzeug', 'requests'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    listing, modules_line = out.split("MODULES")
    for name in COMMANDS:
        assert f"\n  {name} " in listing
    loaded = set(modules_line.split())
    assert not loaded & set(COMMAND_MODULES)
    assert not {m for m in loaded if m.startswith(("werkzeug", "requests"))}


def test_global_options_after_a_lazily_loaded_command(tmp_path) -> None:  # noqa: ANN001
    config = tmp_path / "org.yaml"
    config.write_text(
        "version: 1\norganization:\n  region: us-east-1\nusers:\n  - {email: a@example.com, role: admin}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", "validate", "-c", str(config), "-v", "--color", "never"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "OK (1 users" in result.stdout
