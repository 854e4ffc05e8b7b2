"""The sandbox's knobs: request counters, rate limiting and fault injection.

None of them changes what a successful request means; they only decide
whether a request is answered normally.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable

from provisioner.frozen import frozen

# The three ways an injected fault shows itself to a client.
FAULT_500 = "500"
FAULT_503 = "503"
FAULT_DROP = "drop"
FAULT_KINDS: tuple[str, ...] = (FAULT_500, FAULT_503, FAULT_DROP)


class Stats:
    """Requests served since start (or the last reset), by route template."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_route: Counter[str] = Counter()
        self._throttled = 0

    def count(self, route: str) -> None:
        with self._lock:
            self._by_route[route] += 1

    def count_throttled(self) -> None:
        """One of the counted requests was answered 429 by the rate limiter."""
        with self._lock:
            self._throttled += 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            by_route = dict(sorted(self._by_route.items()))
            throttled = self._throttled
        return {"total": sum(by_route.values()), "by_route": by_route, "throttled": throttled}

    def reset(self) -> None:
        with self._lock:
            self._by_route.clear()
            self._throttled = 0


@frozen
class RateDecision:
    """Whether a request may proceed, and the numbers for the rate headers."""

    allowed: bool
    limit: float
    remaining: int
    retry_after: int  # seconds; meaningful when not allowed


class RateLimiter:
    """A token bucket per API key: ``rate`` requests per second, bursts up to ``rate``.

    ``clock`` is injectable so the arithmetic can be tested without waiting.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be positive")
        self.rate = rate
        self.capacity = max(rate, 1.0)  # a bucket below 1 could never admit a request
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> RateDecision:
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                self._buckets[key] = (tokens, now)
                return RateDecision(True, self.rate, int(tokens), 0)
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
            return RateDecision(False, self.rate, 0, max(1, math.ceil(wait)))


@frozen
class Fault:
    """An injected failure: how it shows, and (for writes) whether the change is committed first."""

    kind: str  # one of FAULT_KINDS
    commit_first: bool


class FaultInjector:
    """Decides, deterministically given the seed and the order of requests, which fail.

    Every decision draws exactly three numbers whatever the outcome, so the
    sequence of faults depends only on the seed and the sequence of
    (read/write) requests. A twin injector with the same seed predicts the
    server's faults, which is how the tests force a particular kind.
    """

    def __init__(self, fail_rate: float, seed: int | None = None) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail rate must be between 0 and 1")
        self.fail_rate = fail_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def decide(self, is_write: bool) -> Fault | None:
        with self._lock:
            roll = self._random.random()
            kind = FAULT_KINDS[self._random.randrange(len(FAULT_KINDS))]
            commit_roll = self._random.random()
        if roll >= self.fail_rate:
            return None
        # Half of the failed writes are committed before failing, so the
        # client cannot tell from the failure whether the change happened.
        return Fault(kind=kind, commit_first=is_write and commit_roll < 0.5)
