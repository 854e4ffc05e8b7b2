"""Redaction: a secret, and every long run of its characters, out of text before it is shown.

Used wherever text that might echo a secret becomes a message: the HTTP client
(an error body that echoes the API key) and the secret sinks (a command whose
stderr echoes the secret it was given). Kept apart from ``provisioner.api.client``
so that using it imports no HTTP library.

``Redactor`` is the last line: the secrets one run knows (the API key, the
values of the config's secret references, each secret the server made and the
run delivered), applied where output leaves the program, once per destination
(``cli.output`` for the terminal and the log handler, ``audit`` for the
record), never at each place a message is built. A message built from a
command's stderr, a server's answer or an exception passes through it whatever
it quotes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

# Shorter keys are not redacted from messages (see ``redact``).
MIN_REDACTED_TOKEN = 8
# Any run of this many characters of the key is redacted too: a server that
# echoes the key, or a message cut short, must not print most of it.
FRAGMENT = 12


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret``, and every run of ``FRAGMENT`` of its characters, as ``***``.

    Keys shorter than ``MIN_REDACTED_TOKEN`` are left alone: a real key is long
    and random, and a key of a few characters (a typo, a placeholder) would
    turn every "x" or "e" of a message into ***, hiding the message while
    protecting nothing.
    """
    if len(secret) < MIN_REDACTED_TOKEN or not text:
        return text
    text = text.replace(secret, "***")
    if len(secret) <= FRAGMENT or not _may_hold_a_fragment(text, secret):
        return text
    grams = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    spans: list[list[int]] = []
    for i in range(len(text) - FRAGMENT + 1):
        if text[i : i + FRAGMENT] in grams:
            if spans and spans[-1][1] >= i:
                spans[-1][1] = i + FRAGMENT
            else:
                spans.append([i, i + FRAGMENT])
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start] + "***")
        last = end
    out.append(text[last:])
    return "".join(out)


def _may_hold_a_fragment(text: str, secret: str) -> bool:
    """False only if no ``FRAGMENT``-long run of ``secret`` can be in ``text`` (a fast, C-speed test).

    Any run of ``FRAGMENT`` characters of the secret wholly contains one of its
    pieces of ``FRAGMENT // 2`` characters that start at a multiple of that
    length: if none of those pieces is in the text, no run is either, and the
    character-by-character scan (slow on a long plan) is skipped.
    """
    step = FRAGMENT // 2
    return any(secret[i : i + step] in text for i in range(0, len(secret) - step + 1, step))


def excerpt(text: str, secret: str, size: int) -> str:
    """At most ``size`` characters of ``text``, redacted before it is cut.

    Only a window a little longer than ``size`` is redacted: long enough that
    no run of the key that starts inside the excerpt is cut before it is
    recognised, short enough that a megabyte of error body costs nothing.
    """
    window = text[: size + len(secret) + FRAGMENT]
    shown = redact(window, secret)
    return shown if len(shown) <= size and len(window) == len(text) else shown[:size] + "…"


def redact_all(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each of ``secrets`` redacted (see ``redact``)."""
    for secret in secrets:
        text = redact(text, secret)
    return text


def excerpt_all(text: str, secrets: tuple[str, ...], size: int) -> str:
    """At most ``size`` characters of ``text``, every one of ``secrets`` redacted before it is cut."""
    longest = max((len(s) for s in secrets), default=0)
    window = text[: size + longest + FRAGMENT]
    shown = redact_all(window, secrets)
    return shown if len(shown) <= size and len(window) == len(text) else shown[:size] + "…"


class Redactor:
    """The secrets one run knows, growing as the run learns them; calling it redacts them all.

    Thread-safe: the apply's workers report results while a delivery teaches
    it a new secret. Secrets shorter than ``MIN_REDACTED_TOKEN`` are not
    learned, as ``redact`` leaves them alone: a real secret is long, and
    redacting a short one would hide every message that happens to contain it.
    """

    __slots__ = ("_lock", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.learn(*secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets, not shown)"

    def learn(self, *secrets: str) -> None:
        """Redact ``secrets`` too from now on (empty and short ones are ignored)."""
        new = [s for s in secrets if len(s) >= MIN_REDACTED_TOKEN]
        if not new:
            return
        with self._lock:
            known = dict.fromkeys(self._secrets)
            known.update(dict.fromkeys(new))
            # Longest first: a secret that contains another is redacted whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` with every known secret, and every long run of one, as ``***``."""
        return redact_all(text, self._secrets) if self._secrets and text else text
