"""The schema check generated ahead of time: fresh, used, and replaced when stale.

``provisioner/config/_schema_compiled.py`` is generated from the schema by
``python -m provisioner.fastcheck``; ``test_fuzz.py`` checks that the
check agrees with jsonschema on generated documents.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from provisioner import fastcheck
from provisioner.config import _schema_compiled

CONFIG = fastcheck.CONFIG

QUICKSTART = yaml.safe_load((Path(__file__).parents[2] / "examples" / "quickstart.yaml").read_text("utf-8"))


def test_generated_check_matches_the_shipped_schema() -> None:
    digest = fastcheck.schema_digest(CONFIG.schema_bytes())
    assert _schema_compiled.SCHEMA_SHA256 == digest, (
        "provisioner/config/_schema_compiled.py was generated from another version of "
        "schemas/config.schema.json; regenerate it: python -m provisioner.fastcheck"
    )


def test_the_generated_module_is_what_a_fresh_digest_loads() -> None:
    digest = fastcheck.schema_digest(CONFIG.schema_bytes())
    assert CONFIG.generated(digest) is _schema_compiled.validate


def test_a_stale_generated_module_is_not_used() -> None:
    assert CONFIG.generated("0" * 64) is None


def test_generate_stamps_the_digest_and_names_the_root_validator() -> None:
    raw = CONFIG.schema_bytes()
    source = CONFIG.generate(raw)
    assert f'SCHEMA_SHA256 = "{fastcheck.schema_digest(raw)}"' in source
    namespace: dict[str, object] = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # our own generated code
    validate = namespace["validate"]
    assert callable(validate)
    assert validate(QUICKSTART) == QUICKSTART


def test_the_check_answers_yes_and_no() -> None:
    check = CONFIG.load_check()
    assert check is not None
    assert check(QUICKSTART) is True
    assert check({**QUICKSTART, "unknown_key": 1}) is False
    assert check({**QUICKSTART, "version": "one"}) is False


def test_the_compiled_fallback_agrees_with_the_generated_check() -> None:
    compiled = fastcheck._compile(CONFIG.schema_bytes())
    assert compiled is not None
    generated = importlib.import_module(CONFIG.module).validate
    for doc in (QUICKSTART, {**QUICKSTART, "users": "nobody"}, {}, []):
        assert _outcome(compiled, doc) == _outcome(generated, doc)


def _outcome(validate: object, doc: object) -> bool:
    assert callable(validate)
    try:
        validate(doc)
    except ValueError:  # fastjsonschema's exceptions, and the generated module's own
        return False
    return True


def test_the_generated_code_imports_only_re_or_generation_stops() -> None:
    source = CONFIG.generate(CONFIG.schema_bytes())
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import re"]
    with pytest.raises(RuntimeError, match="update _LIBRARY_IMPORTS"):
        fastcheck._standalone("import re\nimport os\n")
