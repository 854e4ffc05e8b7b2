"""The API's URL: one parser decides both whether a URL is safe and where the key goes.

Every URL the key may travel to -- the config's ``api_url``, ``--api-url``,
each request URL and every pagination ``next`` link -- is read here, by
urllib3's ``parse_url``: the same parser that requests and urllib3 use to open
the connection. A check made with another parser (``urllib.parse.urlsplit``)
can be fooled by a URL the two read differently:
``http://evil.example:9999\\@127.0.0.1:8765/api/v1`` is loopback to
``urlsplit`` and ``evil.example`` to urllib3.

Decisions worth knowing:

* A backslash, user information (``user@``), whitespace, a control or
  invisible character, or any non-ASCII character anywhere in the URL is
  refused outright: no real API URL needs one, and each is a known way to make
  parsers disagree. Non-ASCII host names are written in their ``xn--`` form.
* As a second line, the URL is also read by ``urlsplit``; if the two parsers
  disagree on the host or the port, it is refused.
* Plain http is allowed only to a loopback host (a local sandbox).
* ``ApiUrl.base`` is the normalized form (lowercase scheme and host, no
  default port, no trailing slash); comparisons use it, never the raw text.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from provisioner.frozen import frozen
from provisioner.model import REGIONS, region_base_url

if TYPE_CHECKING:  # urllib3 is imported when a URL is parsed, not before
    from urllib3.util import Url

DEFAULT_PORTS = {"https": 443, "http": 80}


class UrlProblem(ValueError):
    """Why a URL is refused. The message never repeats the URL; callers show it escaped."""


@frozen(slots=True)
class ApiUrl:
    """A URL as urllib3 will connect to it."""

    scheme: str  # "http" or "https", lowercase
    host: str  # lowercase; IPv6 without brackets
    port: int  # explicit or the scheme's default
    path: str  # as written, "" when none
    query: str = ""

    @property
    def origin(self) -> tuple[str, str, int]:
        """Where a connection goes: (scheme, host, port)."""
        return (self.scheme, self.host, self.port)

    @property
    def base(self) -> str:
        """The normalized URL without query: lowercase, no default port, no trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path.rstrip('/')}"


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); brackets allowed."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_character_problem(text: str) -> str | None:
    """Why ``text`` holds a character no API URL needs (backslash, whitespace, control, non-ASCII)."""
    # Every request and every page's next link comes through here: the common
    # case (printable ASCII with no space or backslash) is decided by three C
    # calls instead of a Python loop over the characters.
    if text.isascii() and text.isprintable() and " " not in text and "\\" not in text:
        return None
    return _first_character_problem(text)


def _first_character_problem(text: str) -> str | None:
    """``url_character_problem``'s answer, character by character, naming the first one."""
    for position, char in enumerate(text, start=1):
        if char == "\\":
            return f"it contains a backslash (character {position})"
        if char.isspace():
            return f"it contains whitespace (character {position})"
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            return f"it contains a control or invisible character (character {position})"
        if ord(char) > 0x7E:
            return (
                f"it contains a non-ASCII character (character {position}); write host "
                "names in their xn-- form"
            )
    return None


def parse_api_url(text: str, *, base: bool = True) -> ApiUrl:
    """Read ``text`` as urllib3 will; raise ``UrlProblem`` if the key must not go there.

    ``base`` is for a base URL (config, ``--api-url``): no query or fragment.
    A request or ``next`` URL (``base=False``) may carry a query.
    The checks, in order: the characters, the parse, the scheme, no user
    information, a host, both parsers agreeing, no query on a base URL, and
    https off loopback hosts.
    """
    _check_characters(text)
    parsed, split, split_port = _parse(text)
    scheme = _scheme(parsed)
    if parsed.auth is not None or split.username is not None or "@" in (split.netloc or ""):
        raise UrlProblem("it contains user information (`user@`); remove it, the key is sent in a header")
    host = (parsed.host or "").lower().strip("[]")
    if not host:
        raise UrlProblem("it names no host")
    port = parsed.port or DEFAULT_PORTS[scheme]
    # Second line of defence: the standard library must read the same place.
    if (split.hostname or "").lower() != host or (split_port or DEFAULT_PORTS[scheme]) != port:
        raise UrlProblem("URL parsers disagree on its host or port; write a plain URL")
    if base and (parsed.query is not None or parsed.fragment is not None):
        raise UrlProblem("a base URL has no query (?...) or fragment (#...); remove it")
    _check_encrypted(scheme, host)
    return ApiUrl(scheme, host, port, parsed.path or "", parsed.query or "")


def _check_characters(text: str) -> None:
    if not isinstance(text, str) or not text:
        raise UrlProblem("it is empty")
    problem = url_character_problem(text)
    if problem:
        raise UrlProblem(problem)


def _parse(text: str) -> tuple[Url, SplitResult, int | None]:
    """``text`` read by urllib3 and by the standard library (and the latter's port)."""
    # Imported here: urllib3 costs tens of milliseconds to import, and the config
    # checks (which import this module) need it only for a config's api_url.
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        parsed = parse_url(text)
        split = urlsplit(text)
        return parsed, split, split.port
    except (LocationParseError, ValueError):
        raise UrlProblem("it is not a valid URL") from None


def _scheme(parsed: Url) -> str:
    scheme = (parsed.scheme or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlProblem("it must be an https URL such as https://us-east-1.recall.ai/api/v1")
    return scheme


def _check_encrypted(scheme: str, host: str) -> None:
    if scheme == "http" and not is_loopback_host(host):
        raise UrlProblem(
            "it uses plain http, so the API key would travel unencrypted; use https "
            "(http is allowed only on a loopback host such as http://127.0.0.1:8080)"
        )


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment, also when percent-encoded."""
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


REGIONAL_BASE_URLS: frozenset[str] = frozenset(region_base_url(r) for r in REGIONS)


def is_regional(url: ApiUrl) -> bool:
    """Whether ``url`` is one of the four regional API endpoints."""
    return url.base in REGIONAL_BASE_URLS


# How a plan names an embedded sandbox (``provisioner.endpoint.embedded_sandbox_label``):
# in-process and on loopback, so neither a region's endpoint nor a place the key could go.
EMBEDDED_SANDBOX = "embedded sandbox"


def endpoint_note(endpoint: str, region: str) -> str:
    """Why ``endpoint`` deserves a reviewer's attention, or ``""``.

    ``region`` is the organization's region (from the config, else as the API
    reports it). A plan shows this note next to its endpoint; an embedded
    sandbox needs none: its label says what it is.
    """
    if not endpoint or endpoint.startswith(f"{EMBEDDED_SANDBOX} ("):
        return ""
    if region in REGIONS:
        expected = region_base_url(region)
        return "" if endpoint == expected else f"not the region's endpoint {region}: {expected}"
    return "" if endpoint in REGIONAL_BASE_URLS else "not a regional endpoint"
