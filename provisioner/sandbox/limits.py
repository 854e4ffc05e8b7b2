"""Recall.ai's published rate limits, as the sandbox enforces them (``--recall-limits``).

Recall.ai publishes per-workspace limits: 60 requests a minute for list
endpoints and 300 for the rest (create, retrieve, update, delete). The
sandbox enforces the same numbers on both of its APIs when started with
``recall_limits`` (``provisioner sandbox serve --recall-limits``), and answers
a request beyond them with 429 and ``Retry-After``.

Decisions worth knowing:

* **One module owns the published limits.** The v2 endpoints
  (``sandbox/v2.py``) and the management contract (``sandbox/app.py``) both
  take from one ``PublishedLimits``; there is no second bucket.
* **Whose budget.** On the v2 API a bucket belongs to the workspace the key
  reaches. On the management contract it belongs to the authenticating key:
  in Recall.ai's model a key reaches one workspace, so a budget per key is
  the budget per workspace, and a second key of the same user has its own
  (as a second workspace's key would). Bucket ids carry their kind
  (``workspace:``, ``key:``) so the two never share a bucket by accident.
* **Which class.** ``LIST`` is a GET of a collection: every route whose
  endpoint name ends in ``.list`` (``/users/``, ``/workspaces/``,
  ``/workspace_memberships/``, ``/api_keys/``, ``/webhook_endpoints/``,
  ``/credentials/``, ``/changes/`` and the v2 collections). ``/me/`` and
  ``/revision/`` retrieve one object, so they are ``OTHER`` like every
  write, retrieve and unrouted request. ``/_sandbox/*`` is never limited
  nor counted (the contract says so; ``app.py`` answers it before this).
* **Token buckets, a minute's allowance each**, refilled continuously: no
  minute-long window sees more than the limit plus one burst, and a client
  that paces at the published rate never meets a 429.
* **No ``X-RateLimit-*`` headers** for these limits: they are published, not
  advertised per answer (the ``--rate-limit`` knob's per-second headers are
  another thing, and a client that learned a rate from them would pace every
  class at one rate).
* **The numbers can be scaled** (``--recall-limits 600/3000``), so that a
  test sees pacing in seconds instead of minutes; the shape stays the same.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

LIST = "list"
OTHER = "other"
# Requests a minute per workspace, as Recall.ai publishes them.
LIST_PER_MINUTE = 60
OTHER_PER_MINUTE = 300
PUBLISHED = (LIST_PER_MINUTE, OTHER_PER_MINUTE)


def limit_class(method: str, endpoint: str) -> str:
    """``LIST`` for a GET of a collection (its endpoint name ends in ``.list``), else ``OTHER``."""
    return LIST if method == "GET" and endpoint.endswith(".list") else OTHER


def workspace_bucket(workspace_id: str) -> str:
    """The bucket id of a workspace (the v2 API)."""
    return f"workspace:{workspace_id}"


def key_bucket(key_digest: str) -> str:
    """The bucket id of an authenticating key, by its digest (the management contract)."""
    return f"key:{key_digest}"


def throttled_text(seconds: int) -> str:
    """The 429's detail, as Django REST framework words it (the v2 API and the contract alike)."""
    return f"Request was throttled. Expected available in {seconds} seconds."


class PublishedLimits:
    """The published limits as one token bucket per (bucket id, class), refilled continuously.

    A bucket holds at most a minute's allowance and refills at that rate, so
    no minute-long window ever sees more than the limit plus one burst.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, per_minute: tuple[int, int] | None = None
    ) -> None:
        self._clock = clock
        # (list, other) requests a minute; tests scale them to stay fast.
        self.per_minute = per_minute or PUBLISHED
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, bucket: str, kind: str) -> int:
        """0 when the request may go on, else the seconds to wait (``Retry-After``, at least 1)."""
        per_minute = self.per_minute[0] if kind == LIST else self.per_minute[1]
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get((bucket, kind), (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[(bucket, kind)] = (tokens - 1.0, now)
                return 0
            self._buckets[(bucket, kind)] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
