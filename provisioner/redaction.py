"""Redaction: a secret, and every long run of its characters, out of text before it is shown.

Used wherever text that might echo a secret becomes a message: the HTTP client
(an error body that echoes the API key) and the secret sinks (a command whose
stderr echoes the secret it was given). Kept apart from ``provisioner.api.client``
so that using it imports no HTTP library.
"""

from __future__ import annotations

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
    if len(secret) <= FRAGMENT:
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


def excerpt(text: str, secret: str, size: int) -> str:
    """At most ``size`` characters of ``text``, redacted before it is cut.

    Only a window a little longer than ``size`` is redacted: long enough that
    no run of the key that starts inside the excerpt is cut before it is
    recognised, short enough that a megabyte of error body costs nothing.
    """
    window = text[: size + len(secret) + FRAGMENT]
    shown = redact(window, secret)
    return shown if len(shown) <= size and len(window) == len(text) else shown[:size] + "…"
