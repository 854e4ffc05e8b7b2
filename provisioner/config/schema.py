"""The JSON Schema: loading it once and turning its errors into friendly, located issues.

``schemas/config.schema.json`` is the single source of structural rules
(types, required keys, enums, unknown keys). Each file is validated once, as
a whole: first by the yes/no check generated ahead of time from the schema
(``provisioner.fastcheck``), and only on a "no" by jsonschema, which is imported
then and not before (it costs tens of milliseconds to import, and a valid
config never needs it). Errors are translated here: an unknown key
gets a "did you mean", a YAML 1.1 coercion (``role: yes``) is explained, an
enum gets a suggestion, and ``errorMessage`` in the schema (also shown by
editors through yaml-language-server) supplies the wording for patterns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from provisioner import fastcheck
from provisioner.config.issues import Issues
from provisioner.config.suggest import closest
from provisioner.config.text import char_problem, excerpt
from provisioner.config.yamlsource import Document, NodeInfo, Path
from provisioner.frozen import frozen

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

_TYPE_NAMES = {
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


@lru_cache(maxsize=1)
def config_schema() -> dict[str, Any]:
    """The config JSON Schema, read from the installed package."""
    import json  # here: only a config with errors needs the schema parsed

    schema: dict[str, Any] = json.loads(fastcheck.CONFIG.schema_bytes())
    return schema


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    """jsonschema's validator for the config schema, with lists checked only up to their cap.

    A list longer than its ``maxItems`` is reported as too long, and only its
    first ``maxItems + 1`` entries are checked one by one: a pull request's
    20,000 webhook entries under a cap of 50 cost 51 checks, not 20,000
    (the entries past the cap would be refused with the list anyway).
    """
    # Imported here, not at the top: only a config with errors needs jsonschema.
    from jsonschema import Draft202012Validator, validators

    check_items = Draft202012Validator.VALIDATORS["items"]

    def items_up_to_the_cap(validator: Any, items: Any, instance: Any, schema: dict[str, Any]) -> Any:
        cap = schema.get("maxItems")
        if isinstance(cap, int) and isinstance(instance, list) and len(instance) > cap:
            instance = instance[: cap + 1]
        return check_items(validator, items, instance, schema)

    capped = validators.extend(Draft202012Validator, {"items": items_up_to_the_cap})  # type: ignore[no-untyped-call]
    validator: Draft202012Validator = capped(config_schema())
    return validator


@lru_cache(maxsize=1)
def _fast_check() -> Callable[[Any], bool] | None:
    """A yes/no check of the same schema, generated ahead of time (see ``provisioner.fastcheck``).

    jsonschema spends ~30 µs a node: seconds on a config with 100,000
    memberships. Almost every config is valid, so the compiled check answers
    first; jsonschema runs only on a "no", to produce the located errors.
    None when the schema cannot be compiled: then jsonschema alone decides.
    """
    return fastcheck.CONFIG.load_check()


# Once ``issues`` is full, jsonschema errors are only counted, and only this many:
# each costs tens of microseconds, and a hostile file can hold a million.
_COUNT_BEYOND_LIMIT = 1000


def validate_document(doc: Document, issues: Issues) -> None:
    """Check one file's data against the schema; record every error in ``issues``."""
    fast = _fast_check()
    if fast is not None and fast(doc.data):
        return  # valid: skip jsonschema, which is far slower on large configs
    counted = 0
    for error in _validator().iter_errors(doc.data):
        if issues.full:
            counted += 1
            issues.more += 1
            if counted >= _COUNT_BEYOND_LIMIT:
                issues.stopped = True
                return
            continue
        for path, message, at_key in _translate(error):
            issues.add(doc, path, message, at_key=at_key)


def describe(value: Any) -> str:
    """How YAML read a value, in words: 'the boolean false', 'the number 493'...

    A string is shown as a short escaped excerpt only: it may be anything,
    e.g. the content of a file a symlink pointed at.
    """
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"the string `{excerpt(value)}`"


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _field(path: Path) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return excerpt(part)
    return "value"


def _wanted(schema: dict[str, Any]) -> str:
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    names = [_TYPE_NAMES.get(t, t) for t in types or ()]
    return " or ".join(names) or "something else"


def _type_message(error: ValidationError, path: Path) -> Any:
    """A type error; for a scalar YAML coerced, explain the coercion and how to quote."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom: str | None = schema.get("errorMessage")
    wanted = _wanted(schema)
    instance: Any = error.instance  # any JSON value (jsonschema types it loosely)
    wants_string = "string" in (schema.get("type") or ())
    key = _field(path)

    def message(info: NodeInfo) -> str:
        if wants_string and info.plain and info.raw is not None and instance is not None:
            raw = excerpt(info.raw)
            return f'`{raw}` is read by YAML as {describe(instance)}; quote it: {key}: "{raw}"'
        if instance is None:
            return f"`{key}` has no value; give {wanted}"
        if custom:
            return custom
        if not path and isinstance(instance, str):
            # A whole file that is one string may be anything (a symlinked token
            # file, say): say what it is, never what it holds.
            return f"expected {wanted}, got a string (not shown); a config file is a mapping"
        return f"expected {wanted}, got {describe(instance)}"

    return message


_Found = Iterator[tuple[Path, Any, bool]]


@frozen
class _Error:
    """One jsonschema error, with the parts every translation step reads."""

    error: ValidationError
    path: Path
    keyword: str
    schema: dict[str, Any]
    instance: Any  # any JSON value (jsonschema types it loosely)
    custom: str | None  # the schema's ``errorMessage`` here

    @classmethod
    def of(cls, error: ValidationError) -> _Error:
        schema = error.schema if isinstance(error.schema, dict) else {}
        return cls(
            error,
            tuple(error.absolute_path),
            str(error.validator),
            schema,
            error.instance,
            schema.get("errorMessage"),
        )


def _translate(error: ValidationError) -> _Found:
    """(path, message, point-at-key) for one jsonschema error.

    The steps in order: a bad mapping key (``propertyNames``), a hidden
    character that breaks a pattern, then the keyword's own step; the
    schema's ``errorMessage``, or a word on the broken rule, for the rest.
    """
    e = _Error.of(error)
    if "propertyNames" in error.relative_schema_path or "propertyNames" in error.schema_path:
        yield _bad_name(e)
        return
    hidden = _hidden_character(e)
    if hidden is not None:
        yield e.path, hidden, False
        return
    step = _BY_KEYWORD.get(e.keyword)
    if step is not None:
        yield from step(e)
    else:
        yield e.path, e.custom or _rule_message(e), False


def _bad_name(e: _Error) -> tuple[Path, Any, bool]:
    """jsonschema reports the key itself as the instance, at the mapping's path."""
    name = e.instance
    problem = char_problem(name, spaces=True) if isinstance(name, str) else None
    return e.path + (name,), (problem or e.custom or f"`{excerpt(name)}` is not a valid name"), True


def _hidden_character(e: _Error) -> str | None:
    """For a broken ``pattern``/``not``: the hidden character to blame, if there is one.

    Names the character rather than only saying the form is wrong. An
    identity (it holds "@") may not hold spaces either. build.py words the
    same problem the same way, so the two reports merge into one.
    """
    if e.keyword not in ("pattern", "not") or not isinstance(e.instance, str):
        return None
    no_spaces = "@" in e.instance or (
        e.keyword == "not" and "\\s" in str(_dict(e.schema.get("not")).get("pattern", ""))
    )
    return char_problem(e.instance, spaces=no_spaces)


def _wrong_type(e: _Error) -> _Found:
    yield e.path, _type_message(e.error, e.path), False


def _unknown_keys(e: _Error) -> _Found:
    known = sorted(e.schema.get("properties", {}))
    where = f" in {_field(e.path)}" if e.path else ""
    for key in e.instance:
        if key in known:
            continue
        close = closest(str(key), known)
        hint = f"did you mean `{close}`?" if close else f"allowed keys: {', '.join(known)}"
        yield e.path + (key,), f"unknown key `{excerpt(key)}`{where}; {hint}", True


def _missing_keys(e: _Error) -> _Found:
    missing: Any = e.error.validator_value
    for key in missing:
        if key not in e.instance:
            what = "version: 1" if key == "version" else f"{key}: ..."
            yield e.path, f"missing required key `{key}`; add {what}", False


def _not_in_enum(e: _Error) -> _Found:
    if not isinstance(e.instance, str) and "string" in (e.schema.get("type") or ()):
        return  # the type error at the same place already explains it
    yield e.path, _enum_message(e.error, e.path), False


def _one_of_alternatives(e: _Error) -> _Found:
    yield from _alternatives(e.error, e.path)


_BY_KEYWORD: dict[str, Callable[[_Error], _Found]] = {
    "type": _wrong_type,
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "enum": _not_in_enum,
    "anyOf": _one_of_alternatives,
    "oneOf": _one_of_alternatives,
}


def _rule_message(e: _Error) -> str:
    """A rule without an ``errorMessage``: the limit it sets, or its name.

    jsonschema's own message repeats the whole value; this names the rule instead.
    """
    field, limit = _field(e.path), e.error.validator_value
    if e.keyword == "minimum":
        return f"`{field}` must be at least {limit}"
    if e.keyword == "minLength":
        return f"`{field}` must not be empty"
    if e.keyword == "maxLength":
        return f"`{field}` is longer than {limit} characters"
    return f"`{field}` breaks the schema's `{e.keyword}` rule"


def _enum_message(error: ValidationError, path: Path) -> Any:
    values: Any = error.validator_value
    options = [str(o) for o in values]
    key = _field(path)
    instance: Any = error.instance  # any JSON value (jsonschema types it loosely)
    text = str(instance)
    close = closest(text, options)
    hint = f"; did you mean `{close}`?" if close else ""
    return f"`{excerpt(text)}` is not a valid {key}; use one of: {', '.join(options)}{hint}"


def _alternatives(error: ValidationError, path: Path) -> Iterator[tuple[Path, Any, bool]]:
    """anyOf/oneOf: report the errors of the alternative whose type fits the value."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom: str | None = schema.get("errorMessage")
    by_branch: dict[str | int, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [
        errs
        for errs in by_branch.values()
        if not any(e.validator == "type" and not e.relative_path for e in errs)
    ]
    if len(fitting) == 1 and not custom:
        for sub in fitting[0]:
            yield from _translate(sub)
        return
    if custom:
        yield path, custom, False
        return
    instance: Any = error.instance  # any JSON value (jsonschema types it loosely)
    key = _field(path)

    def message(info: NodeInfo) -> str:
        if info.plain and info.raw is not None and instance is not None:
            if not isinstance(instance, (dict, list, str)):
                raw = excerpt(info.raw)
                return f'`{raw}` is read by YAML as {describe(instance)}; quote it: "{raw}"'
        return f"`{key}` has the wrong form: got {describe(instance)}"

    yield path, message, False
