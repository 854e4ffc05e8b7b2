"""The plan schema's check generated ahead of time: fresh, used, and never more lenient than jsonschema.

``plan --format json`` checks what it emits against ``schemas/plan.schema.json``.
The generated check (``provisioner/plan/_schema_compiled.py``, made by
``python -m provisioner.fastcheck``) answers first and jsonschema decides only
on its "no"; so a "yes" where jsonschema says "no" would let a wrong document
out. These tests show the two agree on real plans and on every mutation
hypothesis makes of them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner import fastcheck
from provisioner.plan import _schema_compiled
from provisioner.plan.serialize import plan_schema, plan_to_dict, validate_plan_document
from provisioner.render.plan_json import render_json
from tests.plan.test_plan_render import _small
from tests.plan.test_plan_settings import digest_of, plan_for

PLAN = fastcheck.PLAN
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _documents() -> list[dict[str, Any]]:
    """Real plan documents: memberships, users and workspaces; settings with secrets and digests."""
    small = json.loads(render_json(_small()[2], tool_version="0.1.0"))
    settings_plan = plan_to_dict(plan_for(digest_of("v")), tool_version="t")
    with_policy = {**small, "policy_changes": [["policy.max_removals", "10", "25%"]], "production": ["p"]}
    return [small, settings_plan, with_policy]


def _valid(document: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(plan_schema()).is_valid(document))


def _fast(document: Any) -> bool:
    check = PLAN.load_check()
    assert check is not None  # the plan schema compiles
    return check(document)


def test_the_generated_check_matches_the_shipped_schema() -> None:
    digest = fastcheck.schema_digest(PLAN.schema_bytes())
    assert _schema_compiled.SCHEMA_SHA256 == digest, (
        "provisioner/plan/_schema_compiled.py was generated from another version of "
        "schemas/plan.schema.json; regenerate it: python -m provisioner.fastcheck"
    )
    assert PLAN.generated(digest) is _schema_compiled.validate


def test_real_plans_are_valid_to_both() -> None:
    for document in _documents():
        assert _valid(document) and _fast(document)


def test_a_tuple_with_a_wrong_member_is_refused_by_the_fast_check() -> None:
    # prefixItems is a 2020-12 word: compiled as it is, fastjsonschema ignores it
    # and answers yes. Translated to draft 7's items list, it answers no.
    document = _documents()[2]
    broken = {**document, "policy_changes": [["policy.max_removals", 10, "25%"]]}
    assert not _valid(broken)
    assert not _fast(broken)
    import fastjsonschema

    untranslated = fastjsonschema.compile(json.loads(PLAN.schema_bytes()))
    untranslated(broken)  # the leniency the translation removes: no exception


def test_the_translation_keeps_data_and_names_and_refuses_unknown_2020_words() -> None:
    schema = {
        "properties": {"prefixItems": {"type": "string"}},
        "const": {"prefixItems": 1},
        "items": {"prefixItems": [{"type": "string"}], "items": False},
    }
    assert fastcheck.draft7(schema) == {
        "properties": {"prefixItems": {"type": "string"}},
        "const": {"prefixItems": 1},
        "items": {"items": [{"type": "string"}], "additionalItems": False},
    }
    with pytest.raises(ValueError, match="unevaluatedProperties"):
        fastcheck.draft7({"properties": {"a": {"unevaluatedProperties": False}}})


def test_validate_plan_document_still_raises_jsonschemas_located_error() -> None:
    document = _documents()[0]
    with pytest.raises(jsonschema.ValidationError) as caught:
        validate_plan_document({**document, "format_version": 1})
    assert list(caught.value.absolute_path) == ["format_version"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``node`` (the root included)."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A real plan document with one value replaced, one key dropped or one key added."""
    document = copy.deepcopy(draw(st.sampled_from(_documents())))
    path = draw(st.sampled_from(_paths(document)[1:]))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["replace", "drop", "add"]))
    if how == "replace":
        parent[path[-1]] = draw(JSON_VALUES)
    elif how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "drop":
        parent.pop(path[-1])
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=6))] = draw(JSON_VALUES)
    else:
        parent.append(draw(JSON_VALUES))
    return document


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_the_fast_check_agrees_with_jsonschema(document: Any) -> None:
    assert _fast(document) == _valid(document)
