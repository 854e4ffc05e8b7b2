"""The v1 contract (schemas/openapi.yaml) as a test oracle.

``load_contract()`` reads the document shipped as ``provisioner.schemas`` and
validates it as OpenAPI 3.1. ``ContractChecker`` checks one served response
(method, path, status, headers, body) against it: the path must match a
template, the status must be documented for the operation, required headers
must be present and well-formed, and a JSON body must match the schema. It is
a ``response_hook`` for the sandbox, so every response a test sees is checked.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlparse

import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_CONTRACT_URI = "urn:provisioner:contract"


V2_PREFIX = "/api/v2/"


@lru_cache(maxsize=2)
def load_contract(name: str = "openapi.yaml") -> dict[str, Any]:
    """An OpenAPI document of ``schemas/`` (the v1 contract by default), validated once per session."""
    text = files("provisioner.schemas").joinpath(name).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    validate_spec(document)
    return document


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Violation:
    """One way a response broke the contract."""

    method: str
    path: str
    status: int
    problem: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.problem}"


class ContractChecker:
    """Validates responses against the contract and keeps the violations (thread-safe)."""

    def __init__(self, document: Mapping[str, Any] | None = None) -> None:
        self.document = dict(document) if document is not None else load_contract()
        # Paths in the document are relative to the server URL's path (/api/v1).
        self.prefix = urlparse(self.document["servers"][0]["url"].replace("{region}", "x")).path.rstrip("/")
        self._registry = Registry().with_resource(
            _CONTRACT_URI, Resource.from_contents(self.document, default_specification=DRAFT202012)
        )
        # Templates without parameters first, so a literal path wins over a pattern.
        templates = sorted(self.document["paths"], key=lambda t: (t.count("{"), t))
        self._templates = [
            (template, re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"))
            for template in templates
        ]
        self._lock = threading.Lock()
        # The default (v1) checker also checks the v2 answers, against their own document.
        self._v2 = ContractChecker(load_contract("recall-v2.yaml")) if document is None else None
        self.violations: list[Violation] = []
        self.checked = 0

    def __call__(self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """The sandbox's ``response_hook``: check and record; never raises.

        The sandbox also serves Recall.ai's own API under ``/api/v2/``: those
        answers are checked against ``schemas/recall-v2.yaml`` and recorded here.
        """
        oracle = self._v2 if self._v2 is not None and path.startswith(V2_PREFIX) else self
        problems = oracle.check(method, path, status, headers, body)
        with self._lock:
            self.checked += 1
            self.violations.extend(Violation(method, path, status, p) for p in problems)

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"only local refs are supported: {ref}"
            target: Any = self.document
            for token in ref[2:].split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _validator(self, pointer: str) -> OAS31Validator:
        return OAS31Validator(
            {"$ref": f"{_CONTRACT_URI}#{pointer}"},
            registry=self._registry,
            format_checker=OAS31Validator.FORMAT_CHECKER,
        )

    def match(self, path: str) -> str | None:
        """The path template (as in the document) that ``path`` matches, or None."""
        if not path.startswith(self.prefix + "/"):
            return None
        relative = path[len(self.prefix) :]
        for template, pattern in self._templates:
            if pattern.match(relative):
                return template
        return None

    def check(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> list[str]:
        """The contract violations of one response (empty when it conforms)."""
        template = self.match(path)
        if template is None:
            return ["path matches no template in the contract"]
        item = self.document["paths"][template]
        operation = item.get(method.lower())
        if operation is None:
            return [f"{method} is not an operation of {template}"]
        responses = operation["responses"]
        key = str(status) if str(status) in responses else "default" if "default" in responses else None
        if key is None:
            return [f"status {status} is not documented for {method} {template}"]
        response = self._resolve(responses[key])
        lowered = {name.lower(): value for name, value in headers.items()}
        problems: list[str] = []
        for name, header in response.get("headers", {}).items():
            header = self._resolve(header)
            value = lowered.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"required header {name} is missing")
                continue
            schema = header.get("schema", {})
            if schema.get("type") == "integer":
                if not re.fullmatch(r"\d+", value) or int(value) < schema.get("minimum", 0):
                    problems.append(f"header {name}: {value!r} is not a valid integer")
        content = response.get("content")
        if not content:
            if body:
                problems.append(f"body must be empty, got {body[:80]!r}")
            return problems
        media = next(iter(content))
        content_type = lowered.get("content-type", "")
        if not content_type.startswith(media):
            problems.append(f"Content-Type {content_type!r} is not {media}")
        if "json" not in media:
            return problems  # the WAF's HTML page: its media type is all a schema says
        try:
            data = json.loads(body)
        except ValueError:
            return problems + [f"body is not JSON: {body[:80]!r}"]
        # A pointer to the schema inside the document, so its $refs resolve.
        if "$ref" in responses[key]:
            base = responses[key]["$ref"][1:]
        else:
            base = "/paths/" + _pointer_escape(template) + f"/{method.lower()}/responses/{key}"
        pointer = f"{base}/content/{_pointer_escape(media)}/schema"
        # The resourceVersion extension: a representation's etag equals its ETag header.
        if (
            isinstance(data, dict)
            and "etag" in data
            and "etag" in lowered
            and data["etag"] != lowered["etag"]
        ):
            problems.append(f"body etag {data['etag']!r} differs from ETag header {lowered['etag']!r}")
        for error in self._validator(pointer).iter_errors(data):
            where = "/".join(str(p) for p in error.absolute_path) or "<body>"
            problems.append(f"body at {where}: {error.message}")
        return problems
