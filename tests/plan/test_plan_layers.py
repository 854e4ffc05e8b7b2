"""The vocabulary sits below the resource types: no import circle, no lazy import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import provisioner

PACKAGE = Path(provisioner.__file__).parent


def test_the_change_vocabulary_imports_no_resource_type() -> None:
    # A fresh interpreter: this test process has long imported everything.
    probe = "import sys, provisioner.plan.change; print(sorted(m for m in sys.modules if m.startswith('provisioner')))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert "provisioner.resources" not in loaded
    assert "provisioner.plan.model" not in loaded
    assert "provisioner.apply" not in loaded


def _function_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.ImportFrom)
                    and inner.module
                    and inner.module.startswith("provisioner")
                ):
                    found.append(f"{path.name}:{inner.lineno} {inner.module}")
    return found


def test_plan_model_and_resources_need_no_lazy_import_of_each_other() -> None:
    files = [
        PACKAGE / "plan" / "model.py",
        PACKAGE / "apply" / "report.py",
        *(PACKAGE / "resources").glob("*.py"),
    ]
    lazy = [hit for path in files for hit in _function_level_imports(path)]
    assert [hit for hit in lazy if "plan" in hit or "resources" in hit or "apply" in hit] == []
