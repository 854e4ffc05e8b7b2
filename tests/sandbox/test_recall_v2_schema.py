"""``schemas/recall-v2.yaml``: a valid OpenAPI 3.1 document that cites its sources and its omissions."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "recall-v2.yaml"
METHODS = ("get", "put", "post", "patch", "delete")


def _document() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def test_recall_v2_is_valid_openapi_3_1() -> None:
    document = _document()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_cites_its_reference_page() -> None:
    operations = [
        (path, method, op)
        for path, item in _document()["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    assert len(operations) == 17  # Zoom apps have no PUT (5); groups and logins have both (6 each)
    for path, method, op in operations:
        page = op["externalDocs"]["url"]
        assert page == f"https://docs.recall.ai/reference/{op['operationId']}", (path, method)
        limit = "60 requests/min" if op["operationId"].endswith("_list") else "300 requests/min"
        assert limit in op["summary"], (path, method)


def test_only_v2_paths_and_a_section_naming_what_is_left_out() -> None:
    document = _document()
    assert all(path.startswith("/api/v2/") for path in document["paths"])
    assert "**Left out**" in document["info"]["description"]
    writes = [
        op
        for item in document["paths"].values()
        for method, op in item.items()
        if method in ("post", "put", "patch")
    ]
    for op in writes:
        refs = [p.get("$ref") for p in op.get("parameters", [])]
        assert "#/components/parameters/IdempotencyKey" in refs, op["operationId"]
