"""Pausing Python's cyclic garbage collector while a run builds large acyclic data.

A plan from a snapshot turns ~30 MB of JSON into dicts, then into frozen
model objects, and decodes its cached config the same way: millions of
objects, none in a reference cycle. The collector still scans each of them
at least once as it is allocated (its young generation is triggered by
allocations, however high the thresholds), which at 10,000 users cost about
0.25 s of a 3 s plan, for nothing to collect.

Decisions worth knowing:

* **Paused around pure data work only**: decoding a cached config, loading a
  snapshot, parsing the held objects through the types, saving the snapshot,
  the diff. Not around network reads (the change feed included): the HTTP
  stack does make reference cycles, and a full read of 1,100 pages with the
  collector off grew the peak RSS.
* **What was built is then moved to the oldest generation unscanned**
  (``gc.freeze()`` then ``gc.unfreeze()``, which the ``gc`` documentation
  defines as moving every tracked object to the permanent generation and back
  into the oldest one). Pausing alone only defers the work: the objects made
  while the collector was off are still young, and its first run afterwards
  scans them all (0.1 s at 10,000 users). In the oldest generation they are
  looked at only by a full collection, which a command rarely reaches; a
  cycle among them is still collected then, so nothing is kept for good.
* The collector's state is restored afterwards: a caller that had disabled it
  keeps it disabled.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with the cyclic collector off, then move what exists to the oldest
    generation (unscanned) and restore the collector as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()
