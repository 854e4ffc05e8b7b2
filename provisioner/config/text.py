"""What a config string may contain, and how a message quotes one.

Every string in a config was written by whoever wrote the pull request, so
two rules hold for all of them:

* A message never repeats a whole value. ``excerpt`` shows at most
  ``EXCERPT_CHARS`` characters of it, escaped for a terminal, with "…" when
  cut: a file that turns out to be a credentials file (through a symlink, say)
  is not echoed into a CI log or a pull-request comment.
* Characters a reviewer cannot see are refused, with the code point named:
  control characters, format characters (zero-width, bidi controls, BOM,
  tags), line and paragraph separators, surrogates, private-use and
  unassigned code points. For identities (emails, globs over them) spaces
  of every kind are refused too.

Identities are compared in one form, ``provisioner.model.identity_key``: NFC, then casefolded.
An email whose lowercase and casefolded forms differ (``ß``, ``ﬁ``, final
sigma) is refused rather than silently rewritten: the address sent to the
API must be the one the reviewer read. Letters from several scripts in one
local part or one domain label (Latin ``a`` next to Cyrillic ``а``) are
refused as look-alikes, except the combinations Unicode's "highly
restrictive" profile (UTS #39) allows for Chinese, Japanese and Korean.

Decisions worth knowing:

* Hand-written rather than ``email-validator``: that library refuses control
  and format characters too, but does not detect mixed scripts, refuses
  special-use domains by default, would add ``dnspython`` and ``idna`` to the
  dependencies, and costs tens of microseconds an address where this check
  returns at once for plain ASCII (configs hold tens of thousands of them).
* Python's ``unicodedata`` has no script property; the script of a letter is
  the first word of its Unicode name (``CYRILLIC SMALL LETTER A``), which is
  exact for the look-alike scripts that matter (Latin, Cyrillic, Greek,
  Armenian, Cherokee) and conservative elsewhere.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from provisioner.escape import terminal

EXCERPT_CHARS = 40
REASON_MAX = 200
NAME_MAX = 100

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_SPACE_CATEGORIES = frozenset({"Zs"})
_ASCII_PRINTABLE = re.compile(r"[ -~]*\Z")
_ASCII_NO_SPACE = re.compile(r"[!-~]*\Z")

# UTS #39 "highly restrictive": one script, or one of these sets.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN"}


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of ``value``, escaped for a terminal, "…" when cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return terminal(text)
    return terminal(text[:limit]) + "…"


# Unicode gives control characters no name; these are their usual aliases.
_CONTROL_NAMES = {
    0x00: "NULL",
    0x07: "BELL",
    0x08: "BACKSPACE",
    0x09: "CHARACTER TABULATION",
    0x0A: "LINE FEED",
    0x0B: "LINE TABULATION",
    0x0C: "FORM FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
    0x85: "NEXT LINE",
    0x9B: "CONTROL SEQUENCE INTRODUCER",
}


def code_point(char: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: how a message names a character."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(ord(char), "")
    if not name:
        category = unicodedata.category(char)
        name = {
            "Cc": "(a control character)",
            "Cs": "(a surrogate)",
            "Co": "(a private-use character)",
            "Cn": "(an unassigned code point)",
        }.get(category, f"(category {category})")
    return f"U+{ord(char):04X} {name}"


def _first_unsafe(value: str, spaces: bool) -> int | None:
    if (_ASCII_NO_SPACE if spaces else _ASCII_PRINTABLE).match(value):
        return None
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        if category in _UNSAFE_CATEGORIES or (spaces and (category in _SPACE_CATEGORIES or char.isspace())):
            return i
    return None


def char_problem(value: str, *, spaces: bool = False) -> str | None:
    """Why ``value`` holds a character a reviewer cannot see (or a space, if ``spaces``)."""
    i = _first_unsafe(value, spaces)
    if i is None:
        return None
    char = value[i]
    hidden = unicodedata.category(char) != "Zs" or char != " "
    advice = "; remove it (it may be invisible: retype the value)" if hidden else "; remove it"
    return f"`{excerpt(value)}` contains {code_point(char)} at character {i + 1}" + advice


def free_text_problem(value: str, limit: int) -> str | None:
    """Why a free-text value (a reason, a name) is refused: length or hidden characters."""
    problem = char_problem(value)
    if problem:
        return problem
    if len(value) > limit:
        return f"`{excerpt(value)}` is {len(value)} characters long; the limit is {limit}"
    return None


def _script(char: str) -> str | None:
    if not unicodedata.category(char).startswith("L"):
        return None  # digits, punctuation, marks: shared by every script
    name = unicodedata.name(char, "")
    word = name.split(" ", 1)[0] if name else "UNKNOWN"
    return _SCRIPT_ALIASES.get(word, word)


def _mixed(part: str) -> str | None:
    """The first letter of ``part`` in another script than the others, if the mix is unsafe."""
    scripts: dict[str, str] = {}
    for char in part:
        script = _script(char)
        if script and script not in scripts:
            scripts[script] = char
    if len(scripts) <= 1 or any(scripts.keys() <= allowed for allowed in _ALLOWED_MIXES):
        return None
    # Name the letter of the rarer script: for `аlice` that is the Cyrillic `а`.
    counts = {s: sum(1 for c in part if _script(c) == s) for s in scripts}
    rare = min(scripts, key=lambda s: (counts[s], list(scripts).index(s)))
    return scripts[rare]


def email_problem(value: str) -> str | None:
    """Why an email (already matching the schema's pattern) is refused, or None."""
    problem = char_problem(value, spaces=True)
    if problem or value.isascii():
        return problem
    nfc = unicodedata.normalize("NFC", value)
    for char in nfc:
        if char.lower() != char.casefold():
            return (
                f"`{excerpt(value)}` contains {code_point(char)}, which compares equal to "
                f"`{excerpt(char.casefold())}`; write the address as the mail server knows it, "
                "without this character"
            )
    local, _, domain = nfc.rpartition("@")
    for part in [local, *domain.split(".")]:
        odd = _mixed(part)
        if odd:
            odd_script = (_script(odd) or "").title()
            others = sorted({s.title() for c in part if (s := _script(c))} - {odd_script})
            return (
                f"`{excerpt(value)}` mixes {odd_script} with {', '.join(others)} "
                f"letters in `{excerpt(part)}` ({code_point(odd)} looks like another "
                "letter); write each part in one script"
            )
    return None
