"""``@frozen`` behaves as ``@dataclass(frozen=True)``: the same class body through both, compared.

``provisioner/frozen.py`` builds frozen dataclasses without compiling five of
their six methods (the fixed cost of issue 24). Each class body below is made
twice, by the standard library and by ``@frozen``, and everything a caller
can observe is compared: construction and its signature, defaults and
factories, equality, hash, repr, immutability, ``replace``, ``asdict``,
pattern matching, copy and pickle, inheritance and ``__post_init__``. Then
every ``@frozen`` class of the package is checked to have the standard
library's ``__init__`` signature.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import provisioner
from provisioner.frozen import frozen, is_frozen

VALUES = st.none() | st.integers(-5, 5) | st.text(max_size=4) | st.tuples(st.integers(0, 3))


def both(slots: bool) -> list[Callable[[type[Any]], type[Any]]]:
    """The standard library's frozen dataclass and ours, with or without slots."""
    return [dataclass(frozen=True, slots=slots), frozen(slots=slots)]


def make_pair(slots: bool) -> tuple[type[Any], type[Any]]:
    """One class body with every kind of field, built by both."""
    built = []
    for decorate in both(slots):

        class Sample:
            """A sample."""

            name: str
            count: int = 3
            tags: tuple[str, ...] = field(default_factory=tuple)
            note: str | None = field(default=None, compare=False)
            secret: str = field(default="", repr=False)
            derived: int = field(default=0, init=False)
            stamp: int = field(default=7, hash=False)

        built.append(decorate(Sample))
    return built[0], built[1]


PAIRS = {slots: make_pair(slots) for slots in (False, True)}


@pytest.mark.parametrize("slots", [False, True])
def test_the_signature_and_the_defaults_are_the_standard_librarys(slots: bool) -> None:
    theirs, ours = PAIRS[slots]
    mine, std = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
    assert list(mine) == list(std) == ["name", "count", "tags", "note", "secret", "stamp"]
    assert [mine[n].default for n in ("count", "note", "secret", "stamp")] == [3, None, "", 7]
    a, b = theirs("x"), ours("x")
    assert (
        dataclasses.asdict(a)
        == dataclasses.asdict(b)
        == {
            "name": "x",
            "count": 3,
            "tags": (),
            "note": None,
            "secret": "",
            "derived": 0,
            "stamp": 7,
        }
    )
    assert ours("x", tags=("t",)).tags == ("t",)
    with pytest.raises(TypeError):
        ours()  # name is required
    with pytest.raises(TypeError):
        ours("x", derived=1)  # not an init field


@pytest.mark.parametrize("slots", [False, True])
@given(
    name=st.text(max_size=3),
    count=st.integers(-3, 3),
    note=VALUES,
    secret=st.text(max_size=3),
    stamp=st.integers(0, 3),
    other=st.text(max_size=3),
)
def test_equality_hash_and_repr_are_the_standard_librarys(
    slots: bool, name: str, count: int, note: Any, secret: str, stamp: int, other: str
) -> None:
    theirs, ours = PAIRS[slots]
    for left, right in ((dict(name=name, count=count), dict(name=other, count=count)),):
        a, b = (
            theirs(**left, note=note, secret=secret, stamp=stamp),
            ours(**left, note=note, secret=secret, stamp=stamp),
        )
        c, d = theirs(**right, stamp=stamp + 1), ours(**right, stamp=stamp + 1)
        assert (a == c) == (b == d)
        assert (hash(a) == hash(c)) == (hash(b) == hash(d))
        # stamp is left out of the hash (hash=False), and only of the hash.
        a2 = theirs(**left, note=note, secret=secret, stamp=stamp + 5)
        b2 = ours(**left, note=note, secret=secret, stamp=stamp + 5)
        assert hash(a) == hash(a2) and hash(b) == hash(b2) and (a == a2) is (b == b2) is False
        assert repr(b) == repr(a)
        assert (b == ours(**left, note="other", secret=secret, stamp=stamp)) is True  # note: compare=False
        assert (b == theirs(**left)) is False  # another class: NotImplemented, then identity


@pytest.mark.parametrize("slots", [False, True])
def test_assignment_and_deletion_are_refused_and_replace_copy_pickle_work(slots: bool) -> None:
    theirs, ours = PAIRS[slots]
    obj = ours("x", 1, ("a",))
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
        obj.name = "y"
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'count'"):
        del obj.count
    with pytest.raises((FrozenInstanceError, AttributeError)):
        obj.unknown = 1
    assert dataclasses.replace(obj, count=2) == ours("x", 2, ("a",))
    assert copy.copy(obj) == obj and copy.deepcopy(obj) == obj
    assert ours.__match_args__ == theirs.__match_args__
    match obj:
        case ours(name, count):  # type: ignore[misc]
            assert (name, count) == ("x", 1)
    assert is_frozen(ours) and is_frozen(theirs)
    assert ("__slots__" in vars(ours)) is slots


# Module-level classes: pickle finds a class by its name.
@frozen(slots=True)
class PickledSlots:
    a: int
    b: tuple[int, ...] = ()


@frozen
class PickledDict:
    a: int


@frozen(slots=True)
class Base:
    a: int
    b: str = "b"


@frozen(slots=True)
class Derived(Base):
    c: int = 0

    def __post_init__(self) -> None:
        if self.c < 0:
            raise ValueError("c must not be negative")


def test_pickle_inheritance_and_post_init() -> None:
    for obj in (PickledSlots(1, (2,)), PickledDict(3)):
        assert pickle.loads(pickle.dumps(obj)) == obj
    d = Derived(1, "x", 2)
    assert repr(d) == "Derived(a=1, b='x', c=2)" and d != Base(1, "x")
    assert [f.name for f in dataclasses.fields(Derived)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="negative"):
        Derived(1, c=-1)
    with pytest.raises(FrozenInstanceError):
        d.a = 2


def test_initvar_and_keyword_only_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="InitVar or keyword-only"):

        @frozen
        class WithInitVar:
            a: dataclasses.InitVar[int]

    with pytest.raises(TypeError, match="InitVar or keyword-only"):

        @frozen
        class KeywordOnly:
            a: int = field(kw_only=True)


def _package_frozen_classes() -> list[type[Any]]:
    found = []
    for info in pkgutil.walk_packages(provisioner.__path__, "provisioner."):
        if info.name.endswith("_schema_compiled"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and "__provisioner_frozen__" in vars(value)
            ):
                found.append(value)
    return found


def test_every_frozen_class_of_the_package_takes_the_standard_librarys_parameters() -> None:
    classes = _package_frozen_classes()
    assert len(classes) > 80  # the model, the plan, the services, the sandbox
    for cls in classes:
        expected = [f.name for f in dataclasses.fields(cls) if f.init]
        params = list(inspect.signature(cls).parameters.values())
        assert [p.name for p in params] == expected, cls
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.init and f.default is not dataclasses.MISSING
        }
        assert {p.name: p.default for p in params if p.name in defaults} == defaults, cls


def test_methods_the_class_writes_itself_are_kept_as_dataclasses_keeps_them() -> None:
    @frozen(slots=True)
    class Own:
        a: int

        def __repr__(self) -> str:
            return "mine"

    @frozen
    class OwnEq:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

    assert repr(Own(1)) == "mine" and Own(1) == Own(1) and hash(Own(1)) == hash(Own(1))
    assert OwnEq(1) == OwnEq(2) and hash(OwnEq(1)) != hash(OwnEq(2))  # our hash, over a
    with pytest.raises(TypeError, match="cannot overwrite"):

        @frozen
        class OwnSetattr:
            a: int

            def __setattr__(self, name: str, value: object) -> None: ...


def test_a_field_may_have_any_name_the_generated_init_uses_itself() -> None:
    @frozen(slots=True)
    class Odd:
        _set: int
        _FACTORY: int = 2
        object: tuple[int, ...] = field(default_factory=tuple)

    odd = Odd(1)
    assert (odd._set, odd._FACTORY, odd.object) == (1, 2, ())
