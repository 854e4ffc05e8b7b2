"""The HTTP client for the regional API: the ONLY module that knows HTTP.

Everything above this module sees dicts and domain exceptions
(``provisioner.errors``); no status code leaves this file. Status codes are
mapped to exceptions in one place, ``ApiClient._raise_for_status``.

Decisions worth knowing:

* Retries are urllib3's ``Retry`` (mounted on the session's adapter), never a
  loop of our own. ``_Retry`` only adds two things to it: a Retry-After above
  ``max_retry_after`` aborts instead of waiting (urllib3 would silently clamp
  it), and no wait may run past the request's overall ``deadline``.
* POST, PATCH and DELETE are retried too. That is safe because every POST
  carries an ``Idempotency-Key`` and every PATCH/DELETE may carry ``If-Match``.
* The key only ever goes to ``base_url``'s origin, as urllib3 reads it: the
  base URL, every request URL and every pagination ``next`` link are read by
  ``provisioner.apiurl.parse_api_url`` (urllib3's own parser, so the check and
  the connection cannot disagree). Plain http is refused unless the host is
  loopback, redirects are never followed, ``next`` links must stay on the same
  scheme, host, port and base path, and ``trust_env`` is off so that
  ``.netrc`` cannot replace the Authorization header and no proxy from the
  environment sees the traffic. Proxies are not supported at all (the
  simplest way to never leak the key to one); TLS verification is always on.
* A key that an HTTP header cannot carry (control characters, spaces,
  non-ASCII) is refused in the constructor, before requests could quote it in
  an error of its own.
* Every message and log line goes through ``redact``, which replaces the key
  and every run of ``FRAGMENT`` or more of its characters with ``***``. It runs
  before any text is cut short, so a cut cannot leave most of a key behind.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode, urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from provisioner import __version__
from provisioner.api.pacing import Pacing
from provisioner.apiurl import UrlProblem, has_dot_segment, parse_api_url, url_character_problem
from provisioner.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    TransportError,
)
from provisioner.escape import terminal

# Re-exported: callers (and tests) have always found them here.
from provisioner.redaction import FRAGMENT as FRAGMENT
from provisioner.redaction import MIN_REDACTED_TOKEN as MIN_REDACTED_TOKEN
from provisioner.redaction import excerpt as excerpt
from provisioner.redaction import excerpt_all, redact_all
from provisioner.redaction import redact as redact

log = logging.getLogger("provisioner.api")

RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
RETRY_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PATCH", "DELETE", "PUT"})
PAGE_SIZE = 100
# Pace at a little under the advertised limit: the server's window and our
# clock never line up exactly, and a 429 costs far more than a few ms.
PACING_MARGIN = 0.9

# Recall.ai's WAF answers 403 with an HTML page (reference/errors): a payload it flags,
# such as one naming localhost, or a body on a GET.
WAF_TODO = (
    "check the request's values (a URL naming localhost is refused by Recall.ai); it is not a key problem"
)

# Status -> (exception class, what the user should do next).
_STATUS_ERRORS: dict[int, tuple[type[ApiError], str]] = {
    401: (AuthenticationError, "check that the API key is set and belongs to this region"),
    403: (PermissionDeniedError, "use the API key of an admin of the organization"),
    404: (NotFoundError, "it may have been removed meanwhile; run plan again"),
    409: (ConflictError, "it already exists; run plan again"),
    412: (PreconditionFailedError, "it changed on the server since it was read; run plan again"),
    429: (RateLimitedError, "the API is rate limiting this key; try later or lower --parallelism"),
}


# --- internal signals raised from inside urllib3's retry machinery ---------
# They never leave this module: ``ApiClient._send`` turns them into ApiErrors
# that carry the method and URL, which the Retry object does not know.


# How much of an error body a message quotes.
BODY_EXCERPT = 200
DETAIL_EXCERPT = 500


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot travel in an HTTP header, or None. Never quotes the token."""
    for position, char in enumerate(token, start=1):
        if char in " \t":
            what = "a space"
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            what = "a control character (such as a line break)"
        elif ord(char) > 0x7E:
            what = "a non-ASCII character"
        else:
            continue
        return f"it contains {what} at position {position}, which an HTTP header cannot carry"
    return None


class _RetryAfterTooLong(Exception):
    def __init__(self, seconds: float, cap: float):
        super().__init__(seconds, cap)
        self.seconds = seconds
        self.cap = cap


class _DeadlineExceeded(Exception):
    pass


@dataclass
class _Attempt:
    """Per-request bookkeeping, kept thread-local because urllib3 runs a
    request's retries in the calling thread while one ``Retry`` is shared."""

    deadline_at: float
    retries: int = 0
    # Told every Retry-After the server sends, so the run's pacing holds back too.
    on_retry_after: Callable[[float], None] | None = None


class _Retry(Retry):
    """urllib3's Retry, with a cap on Retry-After and an overall deadline.

    Only ``sleep`` is overridden: it is where urllib3 waits between attempts,
    so it is where a too-long wait can be refused.
    """

    def __init__(
        self,
        *args: Any,
        max_retry_after: float = 60,
        attempt_state: threading.local | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after
        self.attempt_state = attempt_state if attempt_state is not None else threading.local()

    def new(self, **kw: Any) -> Self:
        # urllib3 re-creates the Retry on every increment; carry our fields.
        kw.setdefault("max_retry_after", self.max_retry_after)
        kw.setdefault("attempt_state", self.attempt_state)
        return super().new(**kw)

    def sleep(self, response: Any = None) -> None:
        wait: float | None = None
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after is not None and retry_after > self.max_retry_after:
                raise _RetryAfterTooLong(retry_after, self.max_retry_after)
            wait = retry_after or None
        attempt: _Attempt | None = getattr(self.attempt_state, "current", None)
        if wait is not None and attempt is not None and attempt.on_retry_after is not None:
            attempt.on_retry_after(wait)
        if wait is None:
            wait = self.get_backoff_time()
        if attempt is not None:
            attempt.retries += 1
            if time.monotonic() + wait > attempt.deadline_at:
                raise _DeadlineExceeded()
        if wait > 0:
            log.debug("waiting %.2f s before retrying", wait)
            time.sleep(wait)


class _Pacer:
    """A small thread-safe pacer: spaces requests at ``rate`` per second.

    The rate is learned from ``X-RateLimit-Limit``; until a response carries it,
    requests are not paced. Reservations are handed out under a lock and the
    wait happens outside it, so concurrent callers queue up fairly.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interval: float | None = None
        self._next = 0.0

    def observe(self, limit_header: str | None) -> None:
        if not limit_header:
            return
        try:
            limit = float(limit_header)
        except ValueError:
            return
        if limit <= 0:
            return
        with self._lock:
            self._interval = 1.0 / (limit * PACING_MARGIN)

    def wait(self) -> None:
        with self._lock:
            if self._interval is None:
                return
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
            delay = slot - now
        if delay > 0:
            time.sleep(delay)


def _unreachable(error: BaseException) -> str | None:
    """ "connection refused" or "host not found" when that is why a request failed; else None.

    urllib3 wraps the cause (``NewConnectionError``, ``NameResolutionError``)
    in ``MaxRetryError``, and requests wraps that again: walk the chain.
    """
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NameResolutionError):
            return "host not found"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, NewConnectionError) and "refused" in str(current).lower():
            return "connection refused"
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += list(current.args)
    return None


class ApiClient:
    """A thin, thread-safe client for the regional API (``/api/v1``).

    ``base_url`` is e.g. ``https://us-east-1.recall.ai/api/v1``; paths passed
    to the methods are relative to it (``"/users/"``). Every failure raises a
    ``provisioner.errors.ApiError`` subclass whose message never contains the
    token.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        deadline: float = 120,
        max_retries: int = 5,
        max_retry_after: float = 60,
        backoff_factor: float = 0.5,
        backoff_max: float = 10,
        user_agent: str = f"provisioner/{__version__}",
        pool_size: int = 16,
        pacing: Pacing | None = None,
        page_size: int | None = PAGE_SIZE,
    ):
        self._token = token
        # The key, and every secret value a request body may carry (redact_also).
        self._secrets: tuple[str, ...] = (token,)
        problem = token_problem(token)
        if problem:
            raise TransportError(f"the API key cannot be sent: {problem}; check the key")
        try:
            parsed = parse_api_url(base_url.rstrip("/"))
        except UrlProblem as problem:
            shown = terminal(excerpt(base_url, token, 200))
            raise TransportError(f"refusing to send the API key to {shown}: {problem}") from None
        self.base_url = parsed.base
        self._origin = parsed.origin
        self._base_path = parsed.path.rstrip("/") + "/"
        self.timeout = (connect_timeout, read_timeout)
        self.deadline = deadline
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after

        self._attempt_state = threading.local()
        self.retry = _Retry(
            total=max_retries,
            # A refused connection or an unknown host is not fixed by waiting:
            # one quick retry, then a clear "cannot connect" (not 19 s of backoff).
            connect=min(max_retries, 1),
            read=max_retries,
            status=max_retries,
            other=0,  # TLS and protocol errors are not fixed by trying again
            redirect=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=RETRY_METHODS,
            respect_retry_after_header=True,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            # Return the last response when status retries run out, so the
            # one mapping below names its status and the server's detail.
            raise_on_status=False,
            raise_on_redirect=False,
            max_retry_after=max_retry_after,
            attempt_state=self._attempt_state,
        )
        session = requests.Session()
        session.trust_env = False  # no .netrc, no proxies from the environment
        session.verify = True
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=self.retry)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update(
            {
                "Authorization": f"Token {token}",
                "User-Agent": user_agent,
                "Accept": "application/json",
            }
        )
        self.session = session
        self._pacer = _Pacer()
        # Recall.ai's published per-workspace limits (api/pacing.py), when the run paces this API;
        # the rate a server advertises in X-RateLimit-Limit is kept to as well (``_pacer``).
        # Recall.ai's v2 cursor pages take no page_size.
        self._pacing = pacing
        self.page_size = page_size

    # --- public API -----------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
        """GET one resource. Returns its JSON body and its ETag (or ``None``)."""
        response = self._send("GET", self._url(path, params))
        body = self._json(response)
        return body, self._etag(response, body)

    def iter_pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Yield the ``results`` of each page of a listing, following ``next``.

        Any failure raises: a partial listing must never look like deletions.
        """
        query = dict(params or {})
        if self.page_size is not None:
            query.setdefault("page_size", self.page_size)
        url: str | None = self._url(path, query)
        seen: set[str] = set()
        while url is not None:
            seen.add(url)
            response = self._send("GET", url)
            page = self._json(response)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise ApiError(
                    f"the listing {self._short(url)} did not return a page of results; "
                    "check that the API URL points at /api/v1",
                    status=response.status_code,
                    method="GET",
                    url=self._redact(url),
                )
            yield results
            url = self._check_next(page.get("next"), url, seen)

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a listing, all pages concatenated."""
        items: list[dict[str, Any]] = []
        for page in self.iter_pages(path, params):
            items.extend(page)
        return items

    def post(
        self, path: str, body: dict[str, Any], *, idempotency_key: str, if_match: str | None = None
    ) -> dict[str, Any]:
        """POST a create or an action. ``idempotency_key`` makes a retried POST safe; with
        ``if_match`` the server refuses (412) an action on an object that changed."""
        headers = {"Idempotency-Key": idempotency_key}
        if if_match:
            headers["If-Match"] = if_match
        response = self._send("POST", self._url(path), json_body=body, headers=headers)
        return self._json(response)

    def patch(
        self, path: str, body: dict[str, Any], *, if_match: str | None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """PATCH a resource; with ``if_match`` the server refuses (412) if it changed.

        ``idempotency_key`` is for the v2 API, which honours it on PATCH and PUT too.
        """
        headers = {"If-Match": if_match} if if_match else {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = self._send("PATCH", self._url(path), json_body=body, headers=headers)
        return self._json(response)

    def put(self, path: str, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """PUT (the v2 API's full update), made safe to retry by ``idempotency_key``."""
        response = self._send(
            "PUT", self._url(path), json_body=body, headers={"Idempotency-Key": idempotency_key}
        )
        return self._json(response)

    def delete(self, path: str, *, if_match: str | None) -> None:
        """DELETE a resource; with ``if_match`` the server refuses (412) if it changed."""
        headers = {"If-Match": if_match} if if_match else {}
        self._send("DELETE", self._url(path), headers=headers)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """The base URL for plans and messages: normalized, and never holding the key."""
        return self._redact(self.base_url)

    def __repr__(self) -> str:
        return f"ApiClient({self.endpoint!r})"

    def authenticates_with(self, prefix: str) -> bool:
        """Whether this client's key starts with ``prefix`` (an API key's non-secret prefix)."""
        return bool(prefix) and self._token.startswith(prefix)

    def redact_also(self, values: Iterable[str]) -> None:
        """Redact these values too, from every message from now on (the config's secret values)."""
        self._secrets = tuple(dict.fromkeys((*self._secrets, *values)))

    # --- internals ------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return redact_all(text, self._secrets)

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = self.base_url + "/" + path.lstrip("/")
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        return url

    def _below_base(self, url: str) -> str:
        """The path of ``url`` below the base URL (``/users/``): what the limit classes are named by."""
        path = parse_url(url).path or "/"
        return path[len(self._base_path) - 1 :] if path.startswith(self._base_path) else path

    def _short(self, url: str) -> str:
        """The URL without the origin, for messages and logs."""
        try:
            parts = parse_url(url)
        except LocationParseError:
            return "(an unreadable URL)"
        return excerpt_all(
            (parts.path or "") + (f"?{parts.query}" if parts.query else ""), self._secrets, 300
        )

    def _check_next(self, next_url: Any, current: str, seen: set[str]) -> str | None:
        if next_url is None:
            return None
        problem = None
        if not isinstance(next_url, str) or not next_url:
            problem = "it is not a URL"
        else:
            try:
                # Refuse what parsers disagree on before urljoin (a urlsplit
                # reader, which drops tabs and newlines) can rewrite it.
                bad = url_character_problem(next_url)
                if bad:
                    raise UrlProblem(bad)
                next_url = urljoin(current, next_url)
                parts = parse_api_url(next_url, base=False)
            except UrlProblem as why:
                problem = f"{why}"
            else:
                if parts.origin != self._origin:
                    problem = "it points at another server"
                elif not (parts.path + "/").startswith(self._base_path) or has_dot_segment(parts.path):
                    problem = "it leaves the API's base path"
                elif next_url in seen:
                    problem = "it loops back to a page already read"
        if problem:
            raise ApiError(
                f"broken next link while listing {self._short(current)}: {problem}; "
                "refusing to continue (a partial listing could look like deletions)",
                method="GET",
                url=self._redact(current),
            )
        return str(next_url)  # a str by now (urljoin's result); str() tells the type checker

    def _note_server_clock(self, date: str | None) -> None:
        """Remember the server's clock (its ``Date``) against ours, for ``server_now``."""
        if not date:
            return
        try:
            moment = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if moment.tzinfo is None:
            return
        self._server_clock = (moment, time.monotonic())

    def server_now(self) -> datetime | None:
        """The server's time now, from the ``Date`` of its latest answer (None before any).

        API key ages are measured on the server's clock, the one that stamped
        the keys: a CI runner whose clock is off never rotates early or late.
        """
        clock: tuple[datetime, float] | None = getattr(self, "_server_clock", None)
        if clock is None:
            return None
        moment, seen = clock
        server = moment + timedelta(seconds=time.monotonic() - seen)
        local = datetime.now(server.tzinfo)
        # ``Date`` is whole seconds: within that, this machine's finer clock is the better reading.
        return local if abs(server - local) < timedelta(seconds=2) else server

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one request (urllib3 does the retries) and map its outcome."""
        self._check_origin(method, url)
        attempt = _Attempt(deadline_at=time.monotonic() + self.deadline)
        if self._pacing is not None:
            pacing, path = self._pacing, self._below_base(url)
            pacing.wait(self._token, method, path)
            attempt.on_retry_after = lambda seconds: pacing.retry_after(self._token, method, path, seconds)
        self._pacer.wait()
        self._attempt_state.current = attempt
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                json=json_body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except _RetryAfterTooLong as e:
            raise RateLimitedError(
                f"{method} {self._short(url)}: the API asked to wait {e.seconds:g} s, more than the "
                f"{e.cap:g} s cap; try later",
                status=429,
                method=method,
                url=self._redact(url),
            ) from None
        except _DeadlineExceeded:
            raise TransportError(
                f"{method} {self._short(url)} did not succeed within the {self.deadline:g} s deadline "
                f"({attempt.retries} attempts); the API is slow or unreachable, try later",
                method=method,
                url=self._redact(url),
            ) from None
        except requests.ConnectionError as e:
            unreachable = _unreachable(e)
            if unreachable is None or isinstance(e, requests.Timeout):
                raise self._transport_failure(method, url, e, attempt) from None
            where = parse_url(url)
            port = where.port or (443 if where.scheme == "https" else 80)
            raise TransportError(
                f"cannot connect to {where.host}:{port} ({unreachable}); check the API URL "
                "or region, and that the server is up",
                method=method,
                url=self._redact(url),
            ) from None
        except requests.RequestException as e:
            raise self._transport_failure(method, url, e, attempt) from None
        finally:
            self._attempt_state.current = None
        self._note_server_clock(response.headers.get("Date"))
        if log.isEnabledFor(logging.INFO):  # the short URL is redacted: worth building only to log it
            short = self._short(url)
            elapsed_ms = (time.monotonic() - started) * 1000
            log.info("%s %s %s %.0f ms", method, short, response.status_code, elapsed_ms)
            log.debug(
                "%s %s: %d retries, %d bytes", method, short, attempt.retries, len(response.content or b"")
            )
        self._pacer.observe(response.headers.get("X-RateLimit-Limit"))
        self._raise_for_status(method, url, response, attempt.retries + 1)
        return response

    def _transport_failure(
        self, method: str, url: str, e: requests.RequestException, attempt: _Attempt
    ) -> TransportError:
        """A failed request as a ``TransportError`` that names the attempts, never the key."""
        short = self._short(url)
        attempts = attempt.retries + 1
        what = "timed out" if isinstance(e, requests.Timeout) else "failed"
        return TransportError(
            f"{method} {short} {what} after {attempts} attempt{'s' if attempts != 1 else ''}: "
            f"{self._redact(str(e))}; check the network and the API URL, then try again",
            method=method,
            url=self._redact(url),
        )

    def _check_origin(self, method: str, url: str) -> None:
        """Refuse a request URL that urllib3 would send anywhere but the base URL's origin."""
        try:
            parts = parse_api_url(url, base=False)
            problem = None if parts.origin == self._origin else "it points at another server"
        except UrlProblem as why:
            problem = str(why)
        if problem:
            raise TransportError(
                f"{method} {self._short(url)}: refusing to send the API key: {problem}",
                method=method,
                url=self._redact(url),
            )

    def _raise_for_status(self, method: str, url: str, response: requests.Response, attempts: int) -> None:
        """The one place where a status code becomes a domain exception."""
        status = response.status_code
        if status < 300:
            return  # the common case: nothing to say, so no message is built
        short = self._short(url)
        if 300 <= status < 400:
            try:
                target = parse_url(response.headers.get("Location", "")).host or "another URL"
            except LocationParseError:
                target = "another URL"
            raise TransportError(
                f"{method} {short}: the API redirected to {self._redact(target)}; refusing to "
                "follow (the API key goes only to the configured URL); check the API URL",
                status=status,
                method=method,
                url=self._redact(url),
            )
        if status < 400:
            return
        detail, code = self._error_details(response)
        cls, todo = _STATUS_ERRORS.get(status, (ApiError, ""))
        if status == 403 and response.headers.get("Content-Type", "").startswith("text/html"):
            # Recall.ai's firewall, not a permission: its page says nothing worth quoting.
            detail, todo = "blocked by the API's firewall (WAF)", WAF_TODO
        if not todo:
            if status == 422:
                todo = (
                    "the request conflicts with an earlier one with the same idempotency key; run plan again"
                )
            elif status >= 500:
                todo = "the API is having trouble; try again later"
            else:
                todo = "the API refused the request; fix the config or run plan again"
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        message = f"{method} {short} failed with {status}{f' {code}' if code else ''}{tried}"
        if detail:
            message += f": {detail}"
        message += f"; {todo}"
        raise cls(self._redact(message), status=status, code=code, method=method, url=self._redact(url))

    def _error_details(self, response: requests.Response) -> tuple[str | None, str | None]:
        try:
            body = response.json()
        except ValueError:
            text = (response.text or "").strip()
            return (excerpt_all(text, self._secrets, BODY_EXCERPT) or None), None
        if not isinstance(body, dict):
            return None, None
        code = excerpt_all(body["code"], self._secrets, 100) if isinstance(body.get("code"), str) else None
        detail = body.get("detail")
        if detail is None:
            # Field errors: {"email": ["Enter a valid email address."]}
            fields = [
                f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in body.items()
                if k != "code"
            ]
            detail = "; ".join(fields) or None
        return (excerpt_all(str(detail), self._secrets, DETAIL_EXCERPT) if detail is not None else None), code

    def _json(self, response: requests.Response) -> dict[str, Any]:
        content = response.content
        if response.status_code == 204 or not content:
            return {}
        try:
            # The bytes straight to json (which detects UTF-8/16/32 itself), not
            # response.json(): that guesses an encoding and decodes to str first.
            body = json.loads(content)
        except ValueError:
            raise ApiError(
                f"{response.request.method} {self._short(response.url)} answered {response.status_code} "
                "with a body that is not JSON; check that the API URL points at /api/v1",
                status=response.status_code,
                method=response.request.method,
                url=self._redact(response.url),
            ) from None
        if not isinstance(body, dict):
            raise ApiError(
                f"{response.request.method} {self._short(response.url)} answered with JSON that "
                "is not an object; check that the API URL points at /api/v1",
                status=response.status_code,
                method=response.request.method,
                url=self._redact(response.url),
            )
        return body

    @staticmethod
    def _etag(response: requests.Response, body: dict[str, Any]) -> str | None:
        """The ETag header, else the body's ``etag`` field (``body`` is the parsed response)."""
        etag = response.headers.get("ETag")
        if etag:
            return etag
        value = body.get("etag")
        return value if isinstance(value, str) else None
