"""``provisioner.collector.paused``: the collector off for a block, its objects then old, nothing kept."""

from __future__ import annotations

import gc
import weakref

from provisioner import collector


class Node:
    """A tracked object that can be in a cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_collector_is_restored_as_it_was() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()  # a caller that had turned it off keeps it off
    finally:
        gc.enable()


def test_what_the_block_built_is_old_and_not_left_for_the_young_generation_to_scan() -> None:
    with collector.paused():
        built = [Node() for _ in range(1000)]
    young = {id(o) for o in gc.get_objects(generation=0)}
    old = {id(o) for o in gc.get_objects(generation=2)}
    assert not any(id(node) in young for node in built)
    assert all(id(node) in old for node in built)
    assert gc.get_freeze_count() == 0  # moved to the oldest generation, not frozen for good


def test_a_cycle_made_in_the_block_is_still_collected() -> None:
    with collector.paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone keeps it
    gc.collect()
    assert gone() is None
