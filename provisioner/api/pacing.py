"""Client-side pacing to Recall.ai's published limits: a token bucket per (key, limit class).

The real v2 API limits each workspace to 60 list requests and 300 other
requests a minute, and answers 429 with ``Retry-After`` beyond them. A key
reaches exactly one workspace, so pacing per key is pacing per workspace.
Waiting before a request is cheaper than a 429: the bucket spends a token
per request and, when it is empty, the caller sleeps until one is back.

Decisions worth knowing:

* **A little under the limit.** The buckets hold ``BURST_SHARE`` of a minute's
  allowance and refill at ``RATE_SHARE`` of the published rate: the server's
  clock and ours never line up, and its bucket may be part-spent by another
  run (a person with ``curl``).
* **Retry-After wins.** A 429 that gets through anyway empties the bucket and
  holds it for the seconds the server asked, so the other threads of the run
  wait too instead of each earning its own 429.
* **One ``Pacing`` per run**, handed to every client of that run; nothing is
  global. Buckets are keyed by a digest of the key, never the key itself.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LIST = "list"
OTHER = "other"
# Requests a minute per workspace, as each v2 reference page states.
PUBLISHED_PER_MINUTE: dict[str, int] = {LIST: 60, OTHER: 300}
BURST_SHARE = 0.5
RATE_SHARE = 0.95
# A v2 collection: ``/api/v2/<family>/``; anything deeper names one object.
_COLLECTION = re.compile(r"^/api/v2/[a-z0-9-]+/?$")


def limit_class(method: str, path: str) -> str:
    """``LIST`` for a GET of a v2 collection (60/min), ``OTHER`` for the rest (300/min)."""
    return LIST if method.upper() == "GET" and _COLLECTION.match(path) else OTHER


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
