"""A fast yes/no check compiled from the config JSON Schema.

jsonschema is thorough but spends ~30 µs per node, which is seconds on a
config with 100,000 memberships. Almost every config is valid, so we first
ask this compiled predicate, built from the same schema file (no rule is
written twice), whether the document is valid at all; only when it says no
does jsonschema run to produce the detailed, located errors.

It supports exactly the keywords the schema uses; any other keyword raises
``Unsupported`` at compile time and the caller falls back to jsonschema.
A hypothesis test checks that it agrees with jsonschema.
"""

from __future__ import annotations

import re
from typing import Any, Callable

Check = Callable[[Any], bool]

# Keywords that only annotate (editor help, our own error wording).
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description",
                          "errorMessage", "default", "examples", "format"})


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not know."""


def _is_type(name: str) -> Check:
    if name == "string":
        return lambda v: isinstance(v, str)
    if name == "object":
        return lambda v: isinstance(v, dict)
    if name == "array":
        return lambda v: isinstance(v, list)
    if name == "null":
        return lambda v: v is None
    if name == "boolean":
        return lambda v: isinstance(v, bool)
    if name == "integer":
        return lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    if name == "number":
        return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    raise Unsupported(f"type {name}")


def _equal(a: Any, b: Any) -> bool:
    # JSON Schema equality: true is not 1, but 1 is 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, dict)):
        return False  # options are scalars (checked when compiling)
    return a == b


def compile_schema(root: dict[str, Any]) -> Check:
    """A predicate that is True exactly when jsonschema finds no error (for supported schemas)."""
    refs: dict[str, Check] = {}

    def ref(pointer: str) -> Check:
        if pointer not in refs:
            if not pointer.startswith("#/$defs/"):
                raise Unsupported(pointer)
            refs[pointer] = lambda v: refs[pointer](v)  # placeholder for recursion
            refs[pointer] = build(root["$defs"][pointer[len("#/$defs/"):]])
        return refs[pointer]

    def build(schema: Any) -> Check:
        if schema is True or schema == {}:
            return lambda v: True
        if schema is False:
            return lambda v: False
        checks: list[Check] = []
        unknown = set(schema) - _ANNOTATIONS - {
            "type", "enum", "const", "pattern", "minLength", "maxLength", "minimum",
            "properties", "additionalProperties", "required", "items", "propertyNames",
            "$ref", "anyOf", "if", "then", "else"}
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            tests = [_is_type(n) for n in names]
            checks.append(lambda v: any(t(v) for t in tests))
        for options in (schema.get("enum", ()), [schema.get("const")]):
            if any(isinstance(o, (list, dict)) for o in options):
                raise Unsupported("structured enum/const")
        if "enum" in schema:
            options = list(schema["enum"])
            checks.append(lambda v: any(_equal(v, o) for o in options))
        if "const" in schema:
            const = schema["const"]
            checks.append(lambda v: _equal(v, const))
        if "pattern" in schema:
            search = re.compile(schema["pattern"]).search
            checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
        if "minLength" in schema:
            low = schema["minLength"]
            checks.append(lambda v: not isinstance(v, str) or len(v) >= low)
        if "maxLength" in schema:
            high = schema["maxLength"]
            checks.append(lambda v: not isinstance(v, str) or len(v) <= high)
        if "minimum" in schema:
            minimum = schema["minimum"]
            checks.append(lambda v: isinstance(v, bool) or not isinstance(v, (int, float))
                          or v >= minimum)
        if "required" in schema:
            required = list(schema["required"])
            checks.append(lambda v: not isinstance(v, dict) or all(k in v for k in required))
        if "properties" in schema or "additionalProperties" in schema:
            props = {k: build(s) for k, s in schema.get("properties", {}).items()}
            extra_schema = schema.get("additionalProperties", True)
            extra = None if extra_schema is True else build(extra_schema)

            def mapping(v: Any) -> bool:
                if not isinstance(v, dict):
                    return True
                for key, value in v.items():
                    check = props.get(key)
                    if check is not None:
                        if not check(value):
                            return False
                    elif extra is not None and not extra(value):
                        return False
                return True

            checks.append(mapping)
        if "propertyNames" in schema:
            names = build(schema["propertyNames"])
            checks.append(lambda v: not isinstance(v, dict) or all(names(k) for k in v))
        if "items" in schema:
            item = build(schema["items"])
            checks.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
        if "$ref" in schema:
            target = ref(schema["$ref"])
            checks.append(lambda v: target(v))
        if "anyOf" in schema:
            branches = [build(s) for s in schema["anyOf"]]
            checks.append(lambda v: any(b(v) for b in branches))
        if "if" in schema:
            cond = build(schema["if"])
            then = build(schema.get("then", True))
            other = build(schema.get("else", True))
            checks.append(lambda v: then(v) if cond(v) else other(v))
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    return build(root)
