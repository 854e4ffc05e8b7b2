"""Schema checks generated ahead of time: a yes/no answer in microseconds a node.

Two documents are checked against a shipped JSON Schema on every run: the
config (``schemas/config.schema.json``, every ``validate`` and ``plan``) and
the plan's JSON form (``schemas/plan.schema.json``, every ``plan --format
json``, as a self-check of what we emit). jsonschema spends ~30 µs a node and
takes ~0.1 s to import; so each schema is compiled by
``fastjsonschema.compile_to_code`` into Python source that ships in the
package (``provisioner/config/_schema_compiled.py``,
``provisioner/plan/_schema_compiled.py``). A run imports it from its ``.pyc``
and asks it first; jsonschema runs only on a "no", for the located error.

Regenerate after changing a schema (a test fails until you do)::

    python -m provisioner.fastcheck

Decisions worth knowing:

* **Where the generated code lives, and why not a cache.** Anything we import is
  code we run. A cache in a user directory (``~/.cache``) would be a file that
  any process of that user, or a misconfigured shared home, could replace; a
  digest stored beside it proves nothing, since whoever writes the one can
  write the other, and a digest of the *code* cannot be known without
  generating the code, the very cost a cache would avoid. So the generated
  modules are committed to the repository and installed inside the package:
  reviewed, versioned and exactly as trusted as every other module of the
  tool, and nothing is ever written or executed from outside the package.
* **They cannot go stale silently.** Each module carries the sha256 of the
  schema text it was made from. At run time the shipped schema is hashed
  (microseconds) and compared: on a mismatch (a schema edited without
  regenerating) the check is compiled in memory from the schema, slower but
  right.
* **Draft 2020-12 words fastjsonschema does not know are translated first.**
  fastjsonschema implements drafts 4 to 7 and ignores a keyword it does not
  know, which would make its "yes" more lenient than jsonschema's. The plan
  schema's tuples (``prefixItems`` with ``items: false``) are rewritten to
  draft 7's ``items: [...]`` with ``additionalItems: false``, which mean the
  same; a schema holding any other 2020-12-only keyword is refused at
  generation (``DRAFT_2020_ONLY``).
* **It checks what jsonschema checks.** ``format`` is not asserted (jsonschema
  without a format checker does not either) and a schema's ``default`` is never
  written into the document (``use_default=False, use_formats=False`` wherever it compiles).
* **jsonschema still decides every "no".** The fast check only answers "valid?"
  first, because almost every document is. Hypothesis tests check that the two
  agree (``tests/config/test_fuzz.py``, ``tests/plan/test_plan_fastcheck.py``).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.frozen import frozen

Check = Callable[[Any], bool]

__all__ = ["CONFIG", "DRAFT_2020_ONLY", "PLAN", "Check", "GeneratedCheck", "draft7"]

# Keywords of draft 2019-09/2020-12 that fastjsonschema would silently ignore.
DRAFT_2020_ONLY = frozenset(
    (
        "$anchor",
        "$dynamicAnchor",
        "$dynamicRef",
        "$recursiveRef",
        "$recursiveAnchor",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedItems",
        "unevaluatedProperties",
        "minContains",
        "maxContains",
    )
)
# Where a mapping's keys are names chosen by the schema's author, not keywords.
_NAMED_SCHEMAS = frozenset(("properties", "$defs", "definitions", "patternProperties"))
# Whose values are data (or prose), never schemas: copied as they are.
_DATA = frozenset(("const", "enum", "default", "examples", "description", "title", "errorMessage"))


def draft7(node: Any, *, keys_are_names: bool = False) -> Any:
    """``node`` with draft 2020-12's tuple words in draft 7's spelling (see the module's notes).

    Raises ValueError on a 2020-12 keyword with no draft 7 spelling.
    """
    if isinstance(node, list):
        return [draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    if keys_are_names:
        return {name: draft7(schema) for name, schema in node.items()}
    unknown = DRAFT_2020_ONLY & node.keys()
    if unknown:
        raise ValueError(f"the schema uses {sorted(unknown)}, which fastjsonschema does not check")
    out = {
        key: value if key in _DATA else draft7(value, keys_are_names=key in _NAMED_SCHEMAS)
        for key, value in node.items()
    }
    if "prefixItems" in out:
        if "items" in out:
            out["additionalItems"] = out.pop("items")
        out["items"] = out.pop("prefixItems")
    return out


@frozen
class GeneratedCheck:
    """One shipped schema and the module generated from it."""

    schema_file: str  # in the provisioner.schemas package
    module: str  # the generated module's import name

    @property
    def path(self) -> Path:
        """Where the generated module is written (inside this package)."""
        package = Path(__file__).resolve().parent
        return package.joinpath(*self.module.split(".")[1:]).with_suffix(".py")

    def schema_bytes(self) -> bytes:
        """The schema as shipped in the package.

        Read beside the ``provisioner.schemas`` package's own file rather than
        through ``importlib.resources``, whose import (tempfile, shutil, zipfile)
        costs more than the read on every run; an installed wheel is a folder,
        never a zip.
        """
        package = importlib.import_module("provisioner.schemas")
        return Path(str(package.__file__)).with_name(self.schema_file).read_bytes()

    def generate(self, raw: bytes) -> str:
        """Python source for a validator of the schema ``raw``, stamped with its digest."""
        import fastjsonschema  # only here: a run never compiles when the module is fresh

        code = fastjsonschema.compile_to_code(draft7(_schema(raw)), use_default=False, use_formats=False)
        # The root schema's function comes first; its name is derived from the
        # schema's $id. Give it a fixed name to import.
        root = re.search(r"^def (\w+)\(", code, re.MULTILINE)
        if root is None:
            raise RuntimeError("fastjsonschema generated no function; cannot generate the schema check")
        header = (
            f"# Generated by `python -m provisioner.fastcheck` from schemas/{self.schema_file}.\n"
            "# Do not edit: change the schema and regenerate (see provisioner/fastcheck.py).\n"
            "# mypy: ignore-errors\n"
            "# (generated code, checked by the agreement tests rather than by mypy)\n"
            f'SCHEMA_SHA256 = "{schema_digest(raw)}"\n'
        )
        return f"{header}{_standalone(code)}\n\nvalidate = {root.group(1)}\n"

    def load_check(self) -> Check | None:
        """The yes/no check: the generated module when it matches the schema, else compiled now.

        None when the schema is one fastjsonschema cannot compile (callers then use
        jsonschema alone).
        """
        raw = self.schema_bytes()
        validate = self.generated(schema_digest(raw))
        if validate is None:
            validate = _compile(raw)
            if validate is None:
                return None
        return _as_check(validate)

    def generated(self, digest: str) -> Callable[[Any], Any] | None:
        """The generated ``validate`` when its recorded digest is ``digest``."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            _log("no generated check of %s; compiling the schema", self.schema_file)
            return None
        if getattr(module, "SCHEMA_SHA256", None) != digest:
            _log("the generated check of %s is stale; compiling the schema", self.schema_file)
            return None
        validate: Callable[[Any], Any] = module.validate
        return validate


# What the generated code imports, and what it gets instead: nothing but ``re``.
# fastjsonschema's package (its generators, a ref resolver, urllib) and decimal cost
# ~8 ms of every ``validate``, for two exception classes and an isinstance check.
_LIBRARY_IMPORTS = {
    "from decimal import Decimal\n": (
        "class Decimal:\n"
        '    """No document checked here holds a decimal.Decimal (YAML and JSON give int and float);\n'
        '    one would get a no from this check, and jsonschema the decision."""\n'
    ),
    "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n": (
        "class JsonSchemaValueException(ValueError):\n"
        '    """The document does not match (the check answers no)."""\n\n'
        "    def __init__(self, message, value=None, name=None, definition=None, rule=None):\n"
        "        super().__init__(message)\n\n\n"
        "class JsonSchemaValuesException(ValueError):\n"
        '    """The document does not match (the check answers no)."""\n'
    ),
}


def _standalone(code: str) -> str:
    """The generated code with its library imports replaced (``_LIBRARY_IMPORTS``).

    Raises RuntimeError when fastjsonschema's code no longer starts with those
    imports (a new release): regenerate only after updating them here.
    """
    for line, replacement in _LIBRARY_IMPORTS.items():
        if line not in code:
            raise RuntimeError(
                f"fastjsonschema's code no longer imports {line.strip()!r}; update _LIBRARY_IMPORTS"
            )
        code = code.replace(line, replacement, 1)
    if re.search(r"^(from|import) (?!re$)", code, re.MULTILINE):
        raise RuntimeError("the generated code imports more than re; update _LIBRARY_IMPORTS")
    return code


CONFIG = GeneratedCheck("config.schema.json", "provisioner.config._schema_compiled")
PLAN = GeneratedCheck("plan.schema.json", "provisioner.plan._schema_compiled")
_ALL = (CONFIG, PLAN)


def _log(message: str, *args: Any) -> None:
    # logging is imported only here: ~8 ms of every ``validate``, for a debug line that a
    # fresh module never writes.
    import logging

    logging.getLogger(__name__).debug(message, *args)


def _schema(raw: bytes) -> Any:
    import json  # only to generate or compile: a fresh module needs no schema parsed

    return json.loads(raw)


def schema_digest(raw: bytes) -> str:
    """The sha256 a generated module records for the schema text ``raw``."""
    return hashlib.sha256(raw).hexdigest()


def _compile(raw: bytes) -> Callable[[Any], Any] | None:
    import fastjsonschema

    try:
        compiled: Callable[[Any], Any] = fastjsonschema.compile(
            draft7(_schema(raw)), use_default=False, use_formats=False
        )
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError):
        return None
    return compiled


def _as_check(validate: Callable[[Any], Any]) -> Check:
    def check(data: Any) -> bool:
        # A mismatch is a ValueError, whether the generated code's own exception or
        # fastjsonschema's (the fallback compiled now). Any other ValueError is a no
        # too: a no is always safe, as jsonschema then decides.
        try:
            validate(data)
        except ValueError:
            return False
        return True

    return check


def main() -> int:
    """Write every generated module next to its package; print what was written."""
    for target in _ALL:
        target.path.write_text(target.generate(target.schema_bytes()), encoding="utf-8")
        print(f"wrote {target.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
