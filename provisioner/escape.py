"""Escaping untrusted text for where it is shown: one function per destination.

Every string that comes from a config file or from the API is untrusted: the
author of a pull request writes the config that CI plans, and anyone with
dashboard access names things on the server. Renderers pass each such string
through exactly one of the functions below, at the point where it joins output:

* ``terminal`` / ``terminal_lines`` -- text for a terminal or a log: no control
  character, escape sequence, bidi override or invisible character survives;
  each is shown visibly as ``\\x1b``, ``\\u202e``, ``\\n`` ...
* ``markdown_code`` -- one value inside GitHub-flavoured Markdown, as an inline
  code span: it cannot open or close a block, comment, fence, details, link or
  image, and cannot mention anyone (GitHub does not link mentions in code).
* ``markdown_fence`` -- a fence for a code block that no line inside can close.
* ``github_message`` / ``github_property`` -- the two parts of a GitHub Actions
  workflow command (``::error file=…::message``).
* ``neutralize_workflow_commands`` -- plain text bound for a CI log: no line of
  it can be read as a workflow command.
* ``log_text`` -- a message for stderr, which is a terminal or a CI log:
  ``terminal_lines`` and ``neutralize_workflow_commands`` together.
* ``spreadsheet_cell`` -- one CSV cell that a spreadsheet opens: it cannot
  start a formula.
* ``html`` -- one value in an HTML document, as element text or inside a quoted
  attribute value: it cannot open a tag, end an attribute or start a script.

Decisions worth knowing:

* The visible form of a character is Python's escape for it (``\\x1b``,
  ``\\u200b``), so a reviewer sees that something is there and what it is.
* Format characters (Unicode category Cf: zero-width, bidi, BOM) and
  line/paragraph separators are escaped along with the C0/C1 controls: they
  make two different strings look alike, or reorder what is shown.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL, C1 controls, and the format/separator characters that are
# invisible or reorder text. Built once; ``_visible`` decides per character.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _is_unsafe(char: str) -> bool:
    # Spaces other than U+0020 (no-break, thin, ideographic ...) look like a
    # plain space but make a different string: shown too.
    category = unicodedata.category(char)
    return category in _INVISIBLE_CATEGORIES or (category == "Zs" and char != " ")


def _visible(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


# Fast path: plain printable ASCII needs no per-character look-up.
_SAFE_ASCII = re.compile(r"[ -~]*\Z")


def terminal(text: str) -> str:
    """``text`` as one line for a terminal: every control or invisible character shown visibly.

    Newlines are escaped too: a value never spans lines, so it cannot push a
    plan line off screen or forge one.
    """
    if _SAFE_ASCII.match(text):
        return text
    return "".join(_visible(c) if _is_unsafe(c) else c for c in text)


def terminal_lines(text: str) -> str:
    """Multi-line ``text`` for a terminal: newlines kept, every other unsafe character shown."""
    return "\n".join(terminal(line) for line in text.split("\n"))


def markdown_code(text: str, *, table: bool = False) -> str:
    """``text`` as an inline code span that is safe anywhere in GFM.

    Inside a table cell pass ``table=True``: ``|`` is then escaped so that the
    cell cannot be split (GFM shows ``\\|`` in a cell as ``|``; elsewhere the
    backslash would show, so it is not added).

    Controls and newlines are shown visibly first (a raw newline would let
    block structure, such as ``<!--`` or a fence, start inside the span). The
    span's backtick fence is longer than any run of backticks inside it.
    """
    body = terminal(text)
    if table:
        body = body.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    # A space on each side when the body starts or ends with a backtick (or is
    # only spaces), as CommonMark strips one space from each side.
    if body.startswith("`") or body.endswith("`") or (body and not body.strip(" ")):
        body = f" {body} "
    if not body:
        return "` `"
    return f"{fence}{body}{fence}"


def markdown_fence(content: str, char: str = "`") -> str:
    """A code-block fence longer than any run of ``char`` in ``content`` (at least three)."""
    longest = max((len(run) for run in re.findall(re.escape(char) + "+", content)), default=0)
    return char * max(3, longest + 1)


def github_message(text: str) -> str:
    """The message part of a workflow command: ``%``, CR and LF percent-encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A property value of a workflow command (``file=…``): also ``:`` and ``,`` encoded."""
    return github_message(text).replace(":", "%3A").replace(",", "%2C")


_WORKFLOW_COMMAND = re.compile(r"^(\s*)(::|##\[)", re.MULTILINE)


def neutralize_workflow_commands(text: str) -> str:
    """``text`` with every line that a CI runner would read as a command defused.

    GitHub Actions runs any stdout/stderr line starting with ``::`` (and the
    older ``##[``) as a workflow command. Such a line is prefixed with a
    visible marker so that it prints but does nothing.
    """
    return _WORKFLOW_COMMAND.sub(lambda m: f"{m.group(1)}\u2192 {m.group(2)}", text)


def log_text(text: str) -> str:
    """A message (possibly of several lines) for stderr, a terminal or a CI log: both escapes."""
    return neutralize_workflow_commands(terminal_lines(text))


def html(text: str) -> str:
    """``text`` for HTML element content or a double- or single-quoted attribute value.

    ``& < > " '`` become character references, so the value cannot open a tag
    or comment, or end the attribute it sits in. Controls and invisible
    characters are shown visibly first (as ``terminal`` does): a page must not
    show two different names alike, or reorder them with a bidi override.
    Never use it for an unquoted attribute, a URL, or inside ``<script>``/``<style>``.
    """
    # Imported here: the html package (and its entity tables) is for the review's
    # page only, and every command imports this module.
    import html as _html

    return _html.escape(terminal(text), quote=True)


# A cell starting with one of these is a formula (or becomes one) in Excel,
# LibreOffice and Google Sheets; OWASP's "CSV injection" advice.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(text: str) -> str:
    """``text`` as one CSV cell for a spreadsheet: never read as a formula.

    A cell that starts with ``= + - @``, a tab or a carriage return is
    prefixed with ``'``, which spreadsheets show as text (OWASP's advice for
    CSV injection). Controls and invisible characters are shown visibly first,
    as ``terminal`` does. The CSV writer still quotes the cell.
    """
    if text.startswith(_FORMULA_START):
        return "'" + terminal(text)
    return terminal(text)
