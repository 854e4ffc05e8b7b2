"""The package installs, exposes its CLI and ships its schemas."""

from importlib.resources import files

from click.testing import CliRunner

from provisioner import __version__
from provisioner.cli.main import cli


def test_version_is_reported() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_schemas_ship_with_the_package() -> None:
    names = {p.name for p in files("provisioner.schemas").iterdir()}
    assert "openapi.yaml" in names
