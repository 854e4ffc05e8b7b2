"""Frozen dataclasses at a third of the import cost: ``@frozen`` for ``@dataclass(frozen=True)``.

Python 3.11's ``dataclasses`` compiles six methods for every frozen class
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``), one ``exec`` each: ~1.2 ms a class on an idle machine. The
package has ~100 of them and a plan imports ~80: ~0.1 s of every run, the
largest part of the fixed cost after the interpreter and requests, and a third
of a ``validate`` in-process (issue 24; docs/performance.md).

``@frozen`` lets ``dataclasses`` do everything but those methods (fields,
defaults, ``field()``, ``__slots__``, ``__match_args__``, ``fields()``,
``replace()``, ``asdict()``), compiles only ``__init__`` (its signature is
each class's own, so ``inspect.signature`` and hypothesis see the real one),
and gives every class the other five as closures over its field names,
written once here. The objects behave as ``@dataclass(frozen=True)``'s do:
equality and hash over the compared fields, the same ``repr``, assignment and
deletion refused with ``FrozenInstanceError``, ``copy`` and ``pickle`` of
slotted classes through ``__getstate__``/``__setstate__``. ``tests/test_frozen.py``
compares each behaviour with the standard library's own on every ``@frozen``
class of the package. Python 3.13 compiles a dataclass with one ``exec``,
which would make this module unnecessary.

Type checkers see a dataclass: ``frozen`` is a ``dataclass_transform`` with
``frozen_default=True``. Not supported (refused at decoration, none is used):
``InitVar`` fields and keyword-only fields.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from dataclasses import MISSING, Field, FrozenInstanceError
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["frozen", "is_frozen"]

_T = TypeVar("_T")
_FROZEN = "__provisioner_frozen__"  # the class attribute that marks a class made here


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...


@overload
def frozen(*, slots: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, Field))
def frozen(cls: type[Any] | None = None, /, *, slots: bool = False) -> Any:
    """``@dataclass(frozen=True)`` (``slots=True`` as there), built without compiling five methods."""

    def wrap(target: type[Any]) -> type[Any]:
        return _build(target, slots)

    return wrap if cls is None else wrap(cls)


def is_frozen(cls: type[Any]) -> bool:
    """Whether instances of ``cls`` refuse assignment: ``@frozen``, or ``@dataclass(frozen=True)``."""
    params = getattr(cls, "__dataclass_params__", None)
    return bool(vars(cls).get(_FROZEN)) or (params is not None and params.frozen)


def _build(cls: type[Any], slots: bool) -> type[Any]:
    own = _written_in_the_body(cls)
    # Frozen=False here: the standard library would compile __setattr__ and __delattr__.
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots)
    fields = dataclasses.fields(cls)
    _refuse_what_is_not_supported(cls, fields)
    names = frozenset(f.name for f in fields)
    compared = _getter(tuple(f.name for f in fields if f.compare))
    hashed = _getter(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))
    shown = tuple(f.name for f in fields if f.repr)
    methods: dict[str, Callable[..., Any]] = {
        "__init__": _init(cls, fields),
        "__repr__": _repr(shown),
        "__eq__": _eq(compared),
        "__hash__": _hash(hashed),
        "__setattr__": _setattr(cls, names),
        "__delattr__": _delattr(cls, names),
    }
    if slots:  # what dataclasses adds to a frozen slotted class, for copy and pickle
        methods["__getstate__"] = _getstate
        methods["__setstate__"] = _setstate
    for name, method in methods.items():
        if name in own:  # as dataclasses does: a method the class writes itself is kept
            continue
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
    setattr(cls, _FROZEN, True)
    return cls


def _written_in_the_body(cls: type[Any]) -> frozenset[str]:
    """The generated methods ``cls`` defines itself (kept, as dataclasses keeps them)."""
    body = vars(cls)
    if "__setattr__" in body or "__delattr__" in body:
        raise TypeError(f"cannot overwrite __setattr__ or __delattr__ of frozen class {cls.__name__}")
    own = {name for name in ("__init__", "__repr__", "__eq__") if name in body}
    # Python sets __hash__ = None in a body that defines __eq__ alone: not an explicit hash.
    if "__hash__" in body and not (body["__hash__"] is None and "__eq__" in body):
        own.add("__hash__")
    return frozenset(own)


def _refuse_what_is_not_supported(cls: type[Any], fields: tuple[Field[Any], ...]) -> None:
    # InitVars are in __dataclass_fields__ but not in fields(); __init__ would not take them.
    declared = getattr(cls, "__dataclass_fields__", {})
    initvars = [name for name, f in declared.items() if "InitVar" in str(f.type)]
    if initvars or any(f.kw_only is True for f in fields):
        raise TypeError(f"@frozen takes no InitVar or keyword-only field ({cls.__name__}): use @dataclass")


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of those attributes of an object (always a tuple, as dataclasses compares)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        (name,) = names
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


def _init(cls: type[Any], fields: tuple[Field[Any], ...]) -> Callable[..., None]:
    """``__init__`` as dataclasses writes it: one parameter per init field, defaults and factories."""
    # Names no field can have (as dataclasses uses __dataclass_builtins_object__ and the like).
    scope: dict[str, Any] = {"__frozen_set__": object.__setattr__, "__frozen_factory__": _HasFactory}
    params: list[str] = []
    body: list[str] = []
    for f in fields:
        default = f"__frozen_default_{f.name}__"
        if f.default is not MISSING:
            scope[default] = f.default
        elif f.default_factory is not MISSING:
            scope[default] = f.default_factory
        if f.init:
            if f.default is not MISSING:
                params.append(f"{f.name}={default}")
            elif f.default_factory is not MISSING:
                params.append(f"{f.name}=__frozen_factory__")
                body.append(f"    {f.name} = {default}() if {f.name} is __frozen_factory__ else {f.name}")
            else:
                params.append(f.name)
            body.append(f"    __frozen_set__(self, {f.name!r}, {f.name})")
        elif f.default is not MISSING:
            body.append(f"    __frozen_set__(self, {f.name!r}, {default})")
        elif f.default_factory is not MISSING:
            body.append(f"    __frozen_set__(self, {f.name!r}, {default}())")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, scope)  # noqa: S102  (names are the class's own identifiers; values pass by scope)
    init: Callable[..., None] = scope["__init__"]
    return init


class _HasFactory:
    """The default of a parameter whose field has a ``default_factory`` (as in dataclasses)."""


def _repr(shown: tuple[str, ...]) -> Callable[[Any], str]:
    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _eq(compared: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    return __eq__


def _hash(hashed: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    return __hash__


def _setattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _delattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state, strict=True):
        object.__setattr__(self, f.name, value)
