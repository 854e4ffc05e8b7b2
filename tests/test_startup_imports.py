"""What a run imports before it does any work (issue 16: the fixed cost people feel).

Each check runs a fresh interpreter with ``-X importtime`` and reads which
modules were imported and, for the first import of each, which module imported
it: a failure names the chain (``requests <- provisioner.api.client <- ...``)
so the import to make lazy is plain.

* Importing the CLI imports no Werkzeug (only ``sandbox`` and ``--sandbox``
  need it), no requests (only commands that talk to an API) and no jsonschema
  (only a config with errors needs it).
* ``validate`` of a valid config does not import jsonschema: the schema check
  is generated ahead of time (``provisioner/fastcheck.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
HEAVY = ("werkzeug", "requests", "jsonschema")


@dataclass(frozen=True)
class Imported:
    """One line of ``-X importtime``: a module and its depth in the import tree."""

    name: str
    depth: int


def imports_of(*args: str, env: dict[str, str] | None = None) -> list[Imported]:
    """The modules ``python -X importtime ARGS`` imports, in the order importtime prints them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"python {' '.join(args)} failed:\n{result.stderr[-2000:]}"
    found: list[Imported] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        field = line.rsplit("|", 1)[1]
        name = field.strip()
        if name == "imported package":  # the header line
            continue
        found.append(Imported(name, (len(field) - len(field.lstrip(" ")) - 1) // 2))
    assert found, f"no -X importtime output from python {' '.join(args)}"
    return found


def chain(found: list[Imported], index: int) -> str:
    """``module <- importer <- its importer ...`` for the import at ``index``.

    importtime prints a module after everything it imported, one level less
    indented: a module's importer is the next line with a smaller depth.
    """
    names = [found[index].name]
    depth = found[index].depth
    for later in found[index + 1 :]:
        if later.depth < depth:
            names.append(later.name)
            depth = later.depth
    return " <- ".join(names)


def heavy_imports(found: list[Imported], packages: tuple[str, ...]) -> list[str]:
    """For each of ``packages`` that was imported, the chain of its first import."""
    out = []
    for package in packages:
        for i, item in enumerate(found):
            if _within(item.name, package):
                names = chain(found, i).split(" <- ")
                # Start at the package's outermost module: its own internals are noise.
                top = max(j for j, name in enumerate(names) if _within(name, package))
                out.append(" <- ".join(names[top:]))
                break
    return out


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_importing_the_cli_imports_no_werkzeug_requests_or_jsonschema() -> None:
    found = imports_of("-c", "import provisioner.cli.main")
    heavy = heavy_imports(found, HEAVY)
    assert not heavy, (
        "importing provisioner.cli.main imports what only some commands need "
        "(load commands lazily; import these inside the code that uses them):\n  " + "\n  ".join(heavy)
    )


def test_loading_a_valid_config_does_not_import_jsonschema() -> None:
    found = imports_of(
        "-c", f"from provisioner.config import load_configs; load_configs([{str(QUICKSTART)!r}])"
    )
    heavy = heavy_imports(found, ("jsonschema", "requests", "werkzeug"))
    assert not heavy, "loading a valid config imports:\n  " + "\n  ".join(heavy)


def test_validate_of_a_valid_config_does_not_import_jsonschema() -> None:
    found = imports_of("-m", "provisioner", "validate", "-c", str(QUICKSTART))
    heavy = heavy_imports(found, ("jsonschema",))
    assert not heavy, (
        "`provisioner validate` of a valid config imports jsonschema, which only a config "
        "with errors needs:\n  " + "\n  ".join(heavy)
    )


def test_the_schema_checks_generated_ahead_of_time_import_no_library() -> None:
    """Issue 24: fastjsonschema's package and decimal cost ~8 ms of every ``validate``;
    the generated modules define what they used of them (``provisioner/fastcheck.py``)."""
    found = imports_of("-m", "provisioner", "validate", "-c", str(QUICKSTART))
    slow = heavy_imports(found, ("fastjsonschema", "decimal"))
    assert not slow, "`provisioner validate` imports:\n  " + "\n  ".join(slow)


def test_the_import_chain_is_read_from_importtime() -> None:
    # The helper itself: a module's importer is found, so a failure above names it.
    found = imports_of("-c", "import json")
    index = next(i for i, item in enumerate(found) if item.name == "json.decoder")
    assert chain(found, index).startswith("json.decoder <- json")


def test_help_looks_up_no_version_and_sets_up_no_logging() -> None:
    """Issue 24: ``--help`` costs 3 x ``python -c pass`` at most; importlib.metadata (the
    version lookup, with the email package) and logging were a third of it."""
    found = imports_of("-m", "provisioner", "--help")
    slow = heavy_imports(found, ("importlib.metadata", "logging", "email"))
    assert not slow, "`provisioner --help` imports:\n  " + "\n  ".join(slow)


def test_validate_looks_up_no_version_and_reads_the_schema_without_importlib_resources() -> None:
    found = imports_of("-m", "provisioner", "validate", "-c", str(QUICKSTART))
    slow = heavy_imports(found, ("importlib.metadata", "importlib.resources", "email"))
    assert not slow, "`provisioner validate` imports:\n  " + "\n  ".join(slow)


def test_validate_imports_no_html_tables() -> None:
    """Issue 24: the html package and its entity tables are for the review's page
    (``escape.html``), not for every command that imports ``provisioner.escape``."""
    found = imports_of("-m", "provisioner", "validate", "-c", str(QUICKSTART))
    slow = heavy_imports(found, ("html",))
    assert not slow, "`provisioner validate` imports:\n  " + "\n  ".join(slow)


def test_a_plan_whose_config_is_cached_imports_no_yaml_and_no_config_checks(tmp_path) -> None:
    """Issue 24: a cached config (``provisioner.config.cache``) is the loaded result itself;
    the plan that uses it needs neither the YAML parser nor the schema check nor the loader."""
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "DEEPGRAM_KEY_DEVELOPMENT": "dev-key",
        "DEEPGRAM_KEY_STAGING": "staging-key",
        "DEEPGRAM_KEY_PRODUCTION": "prod-key",
    }
    env.pop("PROVISIONER_NO_CACHE", None)
    env.pop("PROVISIONER_CACHE_DIR", None)
    db, secrets = str(tmp_path / "sandbox.db"), str(tmp_path / "secrets")
    plan = ["-m", "provisioner", "plan", "-c", str(QUICKSTART), "--sandbox", db]
    for args in (
        ["-m", "provisioner", "apply", "-c", str(QUICKSTART), "--sandbox", db, "--auto-approve"]
        + ["--secrets-dir", secrets],
        plan,  # loads the files, and caches the result
    ):
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    found = imports_of(*plan, env=env)
    slow = heavy_imports(
        found, ("yaml", "provisioner.config.loader", "provisioner.config.schema", "fastjsonschema")
    )
    assert not slow, "a plan of a cached config imports:\n  " + "\n  ".join(slow)
