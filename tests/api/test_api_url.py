"""Where the key may go: one URL parser (provisioner.apiurl), operator allowances, redaction.

Promise 3 (the key goes only where an operator sent it) and promise 6 (no
secret in any output), at the unit level; tests/data/hostile/transport-*.yaml
run the same attacks end to end.
"""

from __future__ import annotations

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from provisioner.api.client import ApiClient, excerpt, redact, token_problem
from provisioner.apiurl import (
    UrlProblem,
    _first_character_problem,
    endpoint_note,
    is_regional,
    parse_api_url,
    url_character_problem,
)
from provisioner.endpoint import EndpointError, OperatorAllowances
from provisioner.errors import ApiError, TransportError

BASE = "https://api.example.invalid/api/v1"
KEY = "RCL-live-7Q2wX9vB4nM8kL3pZ6tY1rE5uI0oA"


# --- the parser -------------------------------------------------------------------------

REFUSED = [
    ("http://evil.example:9999\\@127.0.0.1:8765/api/v1", "backslash"),
    ("https://evil\\@us-east-1.recall.ai/api/v1", "backslash"),
    ("https://user@us-east-1.recall.ai/api/v1", "user information"),
    ("https://user:pw@us-east-1.recall.ai/api/v1", "user information"),
    ("https://us-east-1.recall.ai /api/v1", "whitespace"),
    ("https://us-east-1.recall.ai/api/v1\n", "whitespace"),
    ("https://us-east-1.recall.ai\x00.evil/api/v1", "control"),
    ("https://us-east-1.recall.ai\u200b/api/v1", "control or invisible"),
    ("https://us-east-1.reсall.ai/api/v1", "non-ASCII"),  # Cyrillic с
    ("ftp://us-east-1.recall.ai/api/v1", "https URL"),
    ("us-east-1.recall.ai/api/v1", "https URL"),
    ("https:///api/v1", "no host"),
    ("https://us-east-1.recall.ai:99999/api/v1", "not a valid URL"),
    ("http://10.0.0.1:8080/api/v1", "plain http"),
    ("http://example.invalid/api/v1", "plain http"),
    ("https://us-east-1.recall.ai/api/v1?x=1", "no query"),
    ("https://us-east-1.recall.ai/api/v1#frag", "no query"),
    ("", "empty"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_urls_the_key_must_not_follow_are_refused(url: str, why: str) -> None:
    with pytest.raises(UrlProblem, match=why):
        parse_api_url(url)
    with pytest.raises(TransportError, match="refusing to send the API key"):
        ApiClient(url, KEY)


@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=40))
def test_the_fast_character_check_answers_as_the_character_by_character_one(text: str) -> None:
    # Every request and next link takes the fast path; it must never let through
    # what the full check names (control characters, whitespace, non-ASCII, backslash).
    assert url_character_problem(text) == _first_character_problem(text)


@pytest.mark.parametrize("char", ["\x1c", "\x1f", "\x7f", "\x00", "\t", "\x0b", " ", "\\", "\u00a0"])
def test_the_ascii_characters_a_printable_check_might_miss_are_still_named(char: str) -> None:
    assert url_character_problem(f"https://a.example/{char}x") is not None


@pytest.mark.parametrize(
    ("url", "origin", "base"),
    [
        (
            "https://us-east-1.recall.ai/api/v1",
            ("https", "us-east-1.recall.ai", 443),
            "https://us-east-1.recall.ai/api/v1",
        ),
        (
            "HTTPS://US-EAST-1.Recall.AI:443/api/v1/",
            ("https", "us-east-1.recall.ai", 443),
            "https://us-east-1.recall.ai/api/v1",
        ),
        ("http://127.0.0.1:8765/api/v1", ("http", "127.0.0.1", 8765), "http://127.0.0.1:8765/api/v1"),
        ("http://[::1]:9/api/v1", ("http", "::1", 9), "http://[::1]:9/api/v1"),
        ("http://localhost/", ("http", "localhost", 80), "http://localhost"),
    ],
)
def test_accepted_urls_are_read_as_urllib3_connects(url: str, origin: tuple, base: str) -> None:
    parsed = parse_api_url(url)
    assert (parsed.origin, parsed.base) == (origin, base)
    assert ApiClient(url, KEY).base_url == base


def test_the_four_regional_endpoints_and_nothing_else_are_regional() -> None:
    for region in ("us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1"):
        assert is_regional(parse_api_url(f"https://{region}.recall.ai/api/v1/"))
    for url in (
        "https://us-east-1.recall.ai/api/v2",
        "https://us-east-1.recall.ai:8443/api/v1",
        "https://us-east-1.recall.ai.evil.invalid/api/v1",
        "https://recall.ai/api/v1",
    ):
        assert not is_regional(parse_api_url(url)), url


def test_the_plan_note_flags_an_endpoint_that_is_not_the_regions() -> None:
    assert endpoint_note("https://us-east-1.recall.ai/api/v1", "us-east-1") == ""
    assert endpoint_note("https://eu-central-1.recall.ai/api/v1", "us-east-1") == (
        "not the region's endpoint us-east-1: https://us-east-1.recall.ai/api/v1"
    )
    assert endpoint_note("http://127.0.0.1:9/api/v1", "") == "not a regional endpoint"
    assert endpoint_note("http://127.0.0.1:9/api/v1", "evil\x1b[2K") == "not a regional endpoint"
    assert endpoint_note("", "us-east-1") == ""


# --- operator allowances ------------------------------------------------------------------


def test_a_config_api_url_needs_the_operators_allowance_unless_regional_or_loopback() -> None:
    none = OperatorAllowances.from_environ({})
    assert none.api_url_problem("https://us-west-2.recall.ai/api/v1") is None
    assert none.api_url_problem("http://127.0.0.1:8080/api/v1") is None
    assert none.api_url_problem("http://localhost:1/") is None
    problem = none.api_url_problem("https://collector.example/api/v1")
    assert problem and "--api-url" in problem and "PROVISIONER_ALLOWED_API_URLS" in problem
    assert "collector" not in problem  # the location points at it; the text is never echoed

    exact = OperatorAllowances.from_environ(
        {"PROVISIONER_ALLOWED_API_URLS": " https://staging.example.invalid/api/v1/ , "}
    )
    assert exact.api_url_problem("https://staging.example.invalid/api/v1") is None
    assert exact.api_url_problem("https://STAGING.example.invalid:443/api/v1/") is None
    assert exact.api_url_problem("https://staging.example.invalid/other") is not None
    assert exact.api_url_problem("https://staging.example.invalid:8443/api/v1") is not None

    origin = OperatorAllowances.from_environ(
        {"PROVISIONER_ALLOWED_API_URLS": "https://staging.example.invalid"}
    )
    assert origin.api_url_problem("https://staging.example.invalid/any/path") is None
    assert origin.api_url_problem("https://other.example.invalid/any/path") is not None

    cli = OperatorAllowances.from_environ({}, api_url="https://staging.example.invalid/api/v1")
    assert cli.api_url_problem("https://staging.example.invalid/api/v1") is None
    assert cli.api_url_problem("https://collector.example/api/v1") is not None
    # An allowance never makes an unsafe URL acceptable.
    assert "backslash" in (cli.api_url_problem("https://staging.example.invalid\\@x/api/v1") or "")


def test_a_bad_allowance_entry_is_an_error_naming_the_variable() -> None:
    with pytest.raises(
        EndpointError, match="entry 2 of the environment variable PROVISIONER_ALLOWED_API_URLS"
    ):
        OperatorAllowances.from_environ(
            {"PROVISIONER_ALLOWED_API_URLS": "https://a.invalid,http://b.invalid"}
        )


@pytest.mark.parametrize(
    "name", ["RECALL_API_KEY", "ACME_RECALL_API_KEY", "PROVISIONER_TEST_KEY", "RECALL", "EU_RECALL_KEY_2"]
)
def test_token_env_names_with_recall_or_provisioner_as_a_word_are_allowed(name: str) -> None:
    assert OperatorAllowances().token_env_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "NPM_TOKEN",
        "RECALLED_KEY",
        "recall_api_key",
        "MYRECALL_KEY",
        "K",
    ],
)
def test_other_token_env_names_need_the_operators_allowance(name: str) -> None:
    problem = OperatorAllowances().token_env_problem(name)
    assert problem and f"PROVISIONER_ALLOWED_TOKEN_ENVS={name}" in problem
    allowed = OperatorAllowances.from_environ({"PROVISIONER_ALLOWED_TOKEN_ENVS": f"OTHER, {name}"})
    assert allowed.token_env_problem(name) is None


# --- next links and request URLs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_url", "why"),
    [
        ("https://evil.invalid:9999\\@api.example.invalid/api/v1/users/?cursor=2", "backslash"),
        ("https://api.example.invalid@evil.invalid/api/v1/users/?cursor=2", "user information"),
        ("//evil.invalid/api/v1/users/?cursor=2", "another server"),
        ("/\t/evil.invalid/api/v1/users/?cursor=2", "whitespace"),
        ("https://api.example.invalid/api/v1/%2e%2e/admin/?cursor=2", "base path"),
        ("https://api.example.invalid/api/v1/users/?cursor=2\r\nX: y", "whitespace"),
    ],
)
def test_next_links_are_read_by_the_same_parser(next_url: str, why: str) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/users/", json={"next": next_url, "results": [{"id": "1"}]})
        with pytest.raises(ApiError) as err:
            ApiClient(BASE, KEY).list_all("/users/")
        assert len(rsps.calls) == 1
    assert "broken next link" in str(err.value) and why in str(err.value)


def test_a_relative_next_link_on_the_same_origin_is_followed() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(
            f"{BASE}/users/",
            match=[responses.matchers.query_param_matcher({"page_size": "100"})],
            json={"next": "/api/v1/users/?cursor=2", "results": [{"id": "1"}]},
        )
        rsps.get(
            f"{BASE}/users/",
            match=[responses.matchers.query_param_matcher({"cursor": "2"})],
            json={"next": None, "results": [{"id": "2"}]},
        )
        assert ApiClient(BASE, KEY).list_all("/users/") == [{"id": "1"}, {"id": "2"}]


def test_a_request_path_that_would_change_the_host_is_refused() -> None:
    client = ApiClient(BASE, KEY)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        with pytest.raises(TransportError, match="refusing to send the API key"):
            client.get("/users/\\@evil.invalid/")
        assert len(rsps.calls) == 0


# --- redaction and keys a header cannot carry ---------------------------------------------


def _fragments(key: str) -> list[str]:
    return [key[i : i + 12] for i in range(len(key) - 11)]


def test_redaction_catches_the_key_and_any_twelve_characters_of_it() -> None:
    text = f"a {KEY} b {KEY[:12]} c {KEY[5:30]} d {KEY[-12:]} e {KEY[:11]}"
    shown = redact(text, KEY)
    assert not any(f in shown for f in _fragments(KEY))
    assert shown.startswith("a *** b *** c *** d *** e ") and shown.endswith(KEY[:11])  # 11 chars: no match
    assert redact("short key abcdefg", "abcdefg") == "short key abcdefg"  # under 8 characters: left alone


def test_redaction_runs_before_the_excerpt_is_cut() -> None:
    body = "x" * 180 + f" Token {KEY} more"
    shown = excerpt(body, KEY, 200)
    assert len(shown) <= 201 and not any(f in shown for f in _fragments(KEY))
    assert excerpt("y" * 10_000_000 + KEY, KEY, 200) == "y" * 200 + "…"  # a huge body costs a window


@pytest.mark.parametrize(
    ("key", "what"),
    [
        (KEY[:20] + "\n" + KEY[20:], "control character"),
        (KEY[:20] + "€" + KEY[20:], "non-ASCII"),
        (KEY[:20] + " " + KEY[20:], "a space"),
        (KEY[:20] + "\x7f" + KEY[20:], "control character"),
        (KEY[:20] + "é" + KEY[20:], "non-ASCII"),
    ],
)
def test_a_key_a_header_cannot_carry_is_refused_without_being_shown(key: str, what: str) -> None:
    problem = token_problem(key)
    assert problem and what in problem and "position 21" in problem
    with pytest.raises(TransportError) as err:
        ApiClient(BASE, key)
    assert not any(f in str(err.value) for f in _fragments(key))
    assert token_problem(KEY) is None
