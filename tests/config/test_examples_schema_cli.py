"""Examples validate, the schema is a valid 2020-12 schema, and `validate` speaks three formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from provisioner.cli.main import cli
from provisioner.config import load_config
from provisioner.config.schema import config_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "quickstart.yaml",
    ROOT / "examples" / "acme.yaml",
    ROOT / "examples" / "multi-file",
]
BAD = ROOT / "tests" / "data" / "bad" / "role-Admin.yaml"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    config = load_config(path)
    assert config.desired.users and config.desired.workspaces and config.desired.memberships
    assert any(m.expires is not None for m in config.desired.memberships.values())


def test_examples_point_editors_at_the_schema() -> None:
    files = [p for e in EXAMPLES for p in ([e] if e.is_file() else sorted(e.glob("*.yaml")))]
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == ROOT / "schemas" / "config.schema.json"


def test_quickstart_runs_against_the_sandbox_admin() -> None:
    config = load_config(EXAMPLES[0])
    assert config.desired.users["admin@example.com"].role == "admin"
    assert config.organization.region == "us-east-1" and config.organization.name is None
    assert config.environments == ("development", "staging", "production")


def test_schema_is_valid_and_documented() -> None:
    schema = config_schema()
    Draft202012Validator.check_schema(schema)
    assert schema == json.loads((ROOT / "schemas" / "config.schema.json").read_text())

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert "description" in sub or "$ref" in sub, f"{where}.{name} lacks a description"
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "$")


def test_validate_text_ok_and_error() -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["validate", "-c", str(EXAMPLES[1]), "-c", str(EXAMPLES[2])])
    assert ok.exit_code == 0, ok.output
    assert "OK (7 users, 6 workspace instances, 18 memberships)" in ok.output
    assert ok.output.count("OK (") == 2
    bad = runner.invoke(cli, ["validate", "-c", str(BAD)])
    assert bad.exit_code == 1
    assert f"{BAD}:7:35: users[2].role: `Admin` is not a valid role" in bad.output
    assert "1 error found" in bad.output


def test_validate_json() -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["validate", "-c", str(BAD), "--format", "json"])
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    assert report["errors"] == [
        {
            "file": str(BAD),
            "line": 7,
            "column": 35,
            "path": "users[2].role",
            "message": "`Admin` is not a valid role; use one of: admin, developer; did you mean `admin`?",
        }
    ]
    ok = runner.invoke(cli, ["validate", "-c", str(EXAMPLES[0]), "--format", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {"valid": True, "errors": []}


def test_validate_github_annotations() -> None:
    result = CliRunner().invoke(cli, ["validate", "-c", str(BAD), "--format", "github"])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"::error file={BAD},line=7,col=35::users[2].role: `Admin`")


def test_validate_missing_path_is_clean(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "no such file or directory" in result.output
    assert "Traceback" not in result.output
