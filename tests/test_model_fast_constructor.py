"""The model's fast constructor builds the very objects ``__init__`` builds; ``all_lowercase`` is the per-text check.

Both exist for speed where 100,000 memberships are built or checked at once
(the reader, the config cache, the diff's key check); neither may change an answer.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.model import Membership, User, fast_constructor
from provisioner.resources.base import all_lowercase
from provisioner.resources.registry import REGISTRY

TEXT = st.text(max_size=8)
MAYBE_TEXT = st.none() | TEXT
WHEN = st.none() | st.datetimes(timezones=st.just(UTC))


@given(TEXT, TEXT, MAYBE_TEXT, WHEN, MAYBE_TEXT, MAYBE_TEXT)
def test_a_membership_is_the_one_init_builds(
    workspace: str, user: str, id_: str | None, expires: datetime | None, reason: str | None, etag: str | None
) -> None:
    values = (workspace, user, id_, expires, reason, etag)
    fast, slow = fast_constructor(Membership)(*values), Membership(*values)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert dataclasses.astuple(fast) == values


def test_the_object_stays_frozen_and_every_field_is_needed() -> None:
    build = fast_constructor(User)
    names = [f.name for f in dataclasses.fields(User)]
    user = build(*(f"v{i}" for i in range(len(names))))
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.email = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        build("only-one")


def test_only_frozen_slotted_dataclasses_without_post_init_are_taken() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checks:
        a: int

        def __post_init__(self) -> None:
            raise ValueError("checked")

    for cls in (NoSlots, NotFrozen, Checks, dict):
        with pytest.raises(TypeError):
            fast_constructor(cls)


def test_every_type_a_state_holds_has_one() -> None:
    # The config cache builds a state's runs with them; a type that could not have one
    # would be built by its own __init__ (cache._constructor): same objects, slower.
    for kind in REGISTRY:
        assert callable(fast_constructor(kind.model)), kind.model


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=6), max_size=6))
def test_all_lowercase_is_the_check_of_each_text(texts: list[str]) -> None:
    assert all_lowercase(texts) == all(t == t.lower() for t in texts)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        ([], True),
        (["a@b.c", "ς"], True),
        (["ΟΔΟΣ"], False),
        (["a", "Σ"], False),
        (["İ"], False),
        (["a\nB"], False),
    ],
)
def test_all_lowercase_on_the_hard_cases(texts: list[str], expected: bool) -> None:
    assert all_lowercase(texts) is expected
