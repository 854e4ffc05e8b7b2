"""The sandbox's own email check: which addresses an invite may carry.

The sandbox refuses any address a person could misread, because the
reconciler identifies users by email and a reviewer reads emails in a plan.
It shares nothing with the reconciler's validator (``provisioner.config``):
both only follow the contract in ``schemas/openapi.yaml``.

Decisions worth knowing:

* The shape stays as permissive as before (one ``@``, no whitespace, a dot
  in the domain, at most 254 characters); what is new is which characters
  may appear.
* Refused characters: controls (Cc), format characters (Cf, which holds the
  zero-width and bidi controls), separators (Z*) and any other whitespace,
  surrogates, private-use and unassigned code points, and the remaining
  Unicode "default ignorable" code points that render as nothing although
  they are letters or marks (U+3164 HANGUL FILLER, variation selectors, ...).
* The address must already be in Unicode normalization form NFC: two
  spellings of one visible address must not become two users.
* Mixed scripts: the letters of the local part, and separately of the
  domain, must come from one script. The script is approximated by the
  first word of the character's Unicode name (``LATIN``, ``CYRILLIC``,
  ``GREEK``, ...); Han, kana, Hangul and Bopomofo count as one family, as
  Japanese and Korean writing mixes them. Digits and punctuation have no
  script.
* The first problem found is the one reported, and it names the code point
  (``U+200B ZERO WIDTH SPACE``) rather than echoing the address.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 254

# One "@", no whitespace on either side, a dot inside the domain. fullmatch:
# a "$" would also match before a trailing newline.
_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# Default-ignorable code points (Unicode's DerivedCoreProperties) that are not
# already refused by their general category: they display as nothing.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x115F, 0x1160),  # HANGUL CHOSEONG/JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ/AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTORS
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN/END formatting
    (0xE0100, 0xE01EF),  # VARIATION SELECTORS SUPPLEMENT
)
# General categories refused outright: controls, format (zero-width, bidi),
# separators, surrogates, private use, unassigned.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Zs": "a space",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
}
# Scripts that are written together: counted as one.
_SCRIPT_FAMILIES = {"CJK": "CJK", "HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "BOPOMOFO": "CJK"}

INVALID = "Enter a valid email address."


def describe(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: a code point named so that a person can see it."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def _refused_character(ch: str) -> str | None:
    """Why ``ch`` may not appear in an address, or None."""
    category = unicodedata.category(ch)
    if category in _REFUSED_CATEGORIES:
        return _REFUSED_CATEGORIES[category]
    if ch.isspace():
        return "whitespace"
    code = ord(ch)
    if any(low <= code <= high for low, high in _INVISIBLE_RANGES):
        return "an invisible character"
    return None


def _script(ch: str) -> str | None:
    """The script of a letter (approximated from its Unicode name), or None for a non-letter."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    word = unicodedata.name(ch, "UNKNOWN").split()[0]
    return _SCRIPT_FAMILIES.get(word, word)


def _mixed_scripts(part: str, where: str) -> str | None:
    first: tuple[str, str] | None = None  # (script, the letter that set it)
    for ch in part:
        script = _script(ch)
        if script is None:
            continue
        if first is None:
            first = (script, ch)
        elif script != first[0]:
            return (
                f"Enter a valid email address: its {where} mixes scripts "
                f"({describe(first[1])} and {describe(ch)})."
            )
    return None


def email_problem(email: object) -> str | None:
    """Why ``email`` is not an address the sandbox accepts, or None when it is."""
    if not isinstance(email, str) or len(email) > MAX_LENGTH:
        return INVALID
    for ch in email:
        reason = _refused_character(ch)
        if reason is not None:
            return f"Enter a valid email address: it contains {reason}, {describe(ch)}."
    if not _SHAPE.fullmatch(email):
        return INVALID
    if unicodedata.normalize("NFC", email) != email:
        return "Enter a valid email address: it is not in Unicode normalization form NFC."
    local, _, domain = email.rpartition("@")
    return _mixed_scripts(local, "local part") or _mixed_scripts(domain, "domain")
