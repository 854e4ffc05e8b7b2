""" "Did you mean": offered only when the match is close enough to be a typo.

A suggestion that is merely similar is worse than none: ``admin@example.com``
for ``zed@example.com`` (they share a domain) or ``us-west-2`` for
``eu-west-1`` (they share ``-west-``) sends the reader the wrong way. So a
name is suggested only when one of these holds:

* it differs from the given text only in case;
* one is a prefix of the other and the shorter has at least 3 characters
  (``prod`` -> ``production``);
* they are at most ``min(2, max(1, len // 3))`` edits apart, counting a swap
  of two neighbours as one edit (``regoin`` -> ``region``, ``expiry`` ->
  ``expires``). For two emails with the same domain, only the local parts are
  compared, so the shared domain does not make strangers look alike.

With many options, difflib's quick ratios pick a few candidates first, so a
suggestion costs milliseconds even among tens of thousands of users.
"""

from __future__ import annotations

from collections.abc import Iterable

_PREFILTER_ABOVE = 200


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance, or ``limit + 1`` as soon as it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, previous2[j - 2] + 1)
            current[j] = best
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _allowed(text: str) -> int:
    return min(2, max(1, len(text) // 3))


def _close(name: str, option: str) -> int | None:
    """How close ``option`` is to ``name`` (lower is closer), or None if not a plausible typo."""
    if name.lower() == option.lower():
        return 0
    short, long_ = sorted((name, option), key=len)
    prefix = len(long_) - len(short) if len(short) >= 3 and long_.startswith(short) else None
    a, b = name, option
    if "@" in a and "@" in b:
        local_a, _, domain_a = a.rpartition("@")
        local_b, _, domain_b = b.rpartition("@")
        if domain_a == domain_b:
            a, b = local_a, local_b
    limit = _allowed(a)
    distance = _distance(a, b, limit)
    if distance <= limit:
        return distance if prefix is None else min(distance, prefix)
    return prefix


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option ``name`` was most likely meant to be, or None when nothing is close."""
    pool = [o for o in options if isinstance(o, str)]
    if len(pool) > _PREFILTER_ABOVE:
        # Two edits leave at least len - 2 characters matched: a ratio below this
        # cutoff cannot be a plausible typo, and difflib rejects most options by
        # its quick ratios without aligning them.
        size = max(len(name), 1)
        cutoff = max(0.5, 2 * (size - 2) / (2 * size + 2))
        prefixed = [o for o in pool if len(name) >= 3 and o.startswith(name)][:3]
        import difflib  # here: only a config with a typo needs it (~3 ms of every validate)

        pool = prefixed + difflib.get_close_matches(name, pool, n=10, cutoff=cutoff)
    best: tuple[int, str] | None = None
    for option in pool:
        score = _close(name, option)
        if score is not None and (best is None or score < best[0]):
            best = (score, option)
    return best[1] if best else None
