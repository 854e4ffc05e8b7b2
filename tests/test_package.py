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


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    # setuptools takes an explicit package list: a folder left off it is missing
    # from an installed (non-editable) tool, which editable test runs never notice.
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(root).parts) for p in (root / "provisioner").rglob("__init__.py")
    }
    assert on_disk - listed == set(), f"add these to [tool.setuptools] packages: {sorted(on_disk - listed)}"
