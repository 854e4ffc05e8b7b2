"""Client-side pacing to Recall.ai's published limits: a token bucket per (key, limit class).

Recall.ai limits each workspace to 60 list requests and 300 other requests a
minute, and answers 429 with ``Retry-After`` beyond them. A key reaches
exactly one workspace, so pacing per key is pacing per workspace. Waiting
before a request is cheaper than a 429: the bucket spends a token per request
and, when it is empty, the caller sleeps until one is back.

Decisions worth knowing:

* **One classifier for both APIs.** ``limit_class`` takes the path below the
  API's base (``/users/``, ``/zoom-oauth-apps/``): a GET of a top-level
  collection is ``LIST``, and so is the change feed (``/changes/``); the two
  top-level retrieves of the management contract, ``/me/`` and
  ``/revision/``, and everything else are ``OTHER``. A collection the
  contract adds later is paced as a list, the slower class: a mistake there
  costs time, never a 429.
* **A whole minute's burst, then a little under the rate.** A bucket starts
  with the minute's allowance, as the server's does, and refills at
  ``RATE_SHARE`` of the published rate (the server's clock and ours never
  line up). Half a burst would cost every plan half a minute; a run that
  starts while another run of the same key has spent the server's bucket gets
  a 429, whose ``Retry-After`` then paces it (next point).
* **Retry-After wins.** A 429 that gets through anyway empties the bucket and
  holds it for the seconds the server asked, so the other threads of the run
  wait too instead of each earning its own 429.
* **When pacing applies** is ``Pace`` (``--pace``, ``PROVISIONER_PACE``):
  ``auto`` paces Recall.ai's v2 API always and the management contract only
  on a region's endpoint (``https://{region}.recall.ai``), where the limits
  are real; a sandbox or another ``--api-url`` is not paced unless asked
  (``published``, or scaled numbers such as ``600/3000`` for a sandbox
  started with the same ``--recall-limits``); ``off`` paces nothing (a 429
  is still retried after its ``Retry-After``).
* **One ``Pacing`` per connection**, handed to the management client and
  every workspace client of that run; nothing is global. Buckets are keyed by
  a digest of the key, never the key itself.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from provisioner.frozen import frozen

LIST = "list"
OTHER = "other"
# Requests a minute per workspace, as Recall.ai publishes them.
PUBLISHED_PER_MINUTE: dict[str, int] = {LIST: 60, OTHER: 300}
BURST_SHARE = 1.0
RATE_SHARE = 0.95
# A top-level path below the API's base: a collection (``/users/``), or one of the retrieves below.
_TOP_LEVEL = re.compile(r"^/([a-z0-9_-]+)/?$")
# The management contract's top-level retrieves: one object each, not a list.
SINGLE_OBJECTS = frozenset({"me", "revision"})


def limit_class(method: str, path: str) -> str:
    """``LIST`` for a GET of a collection (60/min), ``OTHER`` for the rest (300/min).

    ``path`` is below the API's base: ``/users/``, ``/changes/``,
    ``/zoom-oauth-apps/`` are lists; ``/me/``, ``/revision/``,
    ``/users/{id}/`` and every write are not.
    """
    top = _TOP_LEVEL.match(path)
    return LIST if method.upper() == "GET" and top and top.group(1) not in SINGLE_OBJECTS else OTHER


# What ``--pace`` accepts besides LIST/OTHER numbers, and the modes a ``Pace`` is in.
PACE_AUTO = "auto"
PACE_PUBLISHED = "published"
PACE_OFF = "off"
PACE_ON = "on"  # a mode only: ``published`` and LIST/OTHER numbers both mean it
_PER_MINUTE = re.compile(r"^([0-9]{1,7})/([0-9]{1,7})$", re.ASCII)


def per_minute_pair(text: str) -> tuple[int, int] | None:
    """``(list, other)`` requests a minute from ``LIST/OTHER`` (``600/3000``), or None if malformed."""
    numbers = _PER_MINUTE.match(text.strip())
    if numbers is None or int(numbers.group(1)) < 1 or int(numbers.group(2)) < 1:
        return None
    return int(numbers.group(1)), int(numbers.group(2))


@frozen
class Pace:
    """When a run paces itself, and to which limits a minute (``--pace``, ``PROVISIONER_PACE``).

    ``mode`` is ``auto`` (v2 always, the management contract on a region's
    endpoint), ``on`` (both APIs, wherever) or ``off`` (neither).
    """

    mode: str = PACE_AUTO
    list_per_minute: int = PUBLISHED_PER_MINUTE[LIST]
    other_per_minute: int = PUBLISHED_PER_MINUTE[OTHER]

    @classmethod
    def parse(cls, text: str) -> Pace:
        """``auto``, ``published``, ``off`` or ``LIST/OTHER`` requests a minute (``600/3000``).

        Raises ``ValueError`` with what to write instead.
        """
        word = text.strip().lower()
        if word in (PACE_AUTO, PACE_OFF):
            return cls(word)
        if word == PACE_PUBLISHED:
            return cls(PACE_ON)
        numbers = per_minute_pair(word)
        if numbers is not None:
            return cls(PACE_ON, *numbers)
        raise ValueError(
            "write auto, published, off, or the list and other requests a minute as LIST/OTHER "
            "(whole numbers from 1, e.g. 600/3000)"
        )

    def pacing(self) -> Pacing | None:
        """The buckets of one connection, or None when nothing is paced."""
        if self.mode == PACE_OFF:
            return None
        return Pacing(per_minute={LIST: self.list_per_minute, OTHER: self.other_per_minute})

    def paces_management(self, regional: bool) -> bool:
        """Whether the management contract is paced at an endpoint that is (or is not) a region's."""
        return self.mode == PACE_ON or (self.mode == PACE_AUTO and regional)


# The default: Recall.ai's v2 API always, the management contract on a region's endpoint.
AUTO_PACE = Pace()


class TokenBucket:
    """Tokens refilled continuously at ``rate`` a second, at most ``capacity``; thread-safe.

    ``reserve`` hands out the moment a caller may go and books the token then,
    under the lock; the caller sleeps outside it, so waiting callers queue in
    order and never oversubscribe the bucket.
    """

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = capacity
        self._at = clock()

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it (0 when one is there)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def hold(self, seconds: float) -> None:
        """The server said 429, retry after ``seconds``: nothing more goes before then."""
        with self._lock:
            now = self._clock()
            # Tokens at -rate*seconds: the next reserve waits at least ``seconds``.
            self._tokens = min(self._tokens, -seconds * self.rate)
            self._at = now


@dataclass
class Pacing:
    """The buckets of one run, one per (key digest, limit class), made on first use."""

    per_minute: dict[str, int] | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.waited = 0.0  # seconds spent waiting, for benchmarks

    def bucket(self, key: str, kind: str) -> TokenBucket:
        """The bucket of ``key``'s workspace for ``kind`` requests."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        limits = self.per_minute or PUBLISHED_PER_MINUTE
        with self._lock:
            found = self._buckets.get((digest, kind))
            if found is None:
                per_minute = limits[kind]
                found = TokenBucket(
                    max(1.0, per_minute * BURST_SHARE), per_minute * RATE_SHARE / 60.0, self.clock
                )
                self._buckets[(digest, kind)] = found
            return found

    def wait(self, key: str, method: str, path: str) -> None:
        """Sleep until a request of this kind may go to the key's workspace."""
        delay = self.bucket(key, limit_class(method, path)).reserve()
        if delay > 0:
            with self._lock:
                self.waited += delay
            self.sleep(delay)

    def retry_after(self, key: str, method: str, path: str, seconds: float) -> None:
        """A 429 asked to wait ``seconds``: hold that bucket for everyone."""
        self.bucket(key, limit_class(method, path)).hold(seconds)
