"""The sandbox refuses what the contract refuses, with the documented 4xx (issue 11, item 8; issue 10, promise 2).

Each case is a reproduction from the issues, sent over real HTTP to a sandbox
on loopback; the ``sandbox``/``make_sandbox`` fixtures check every response
against schemas/openapi.yaml as well.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest

from provisioner.sandbox import RunningSandbox, create_token, seed
from provisioner.sandbox.app import MAX_BODY_BYTES
from tests.sandbox.conftest import Api


def users(api: Api) -> list[str]:
    return [user["email"] for user in api.walk("/users/")]


def cursor(raw: str) -> str:
    """A forged cursor in the server's encoding (base64url, no padding)."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def raw_exchange(sandbox: RunningSandbox, head: str) -> bytes:
    """Send ``head`` (request line and headers, no body) on a raw socket; everything read until close."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


# --- query parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        cursor("a:" + "9" * 40),  # OverflowError when bound as an SQLite integer
        cursor(f"a:{2**63}"),
        cursor("a:+5"),
        cursor("a:1_0"),
        cursor("a:\u0665"),  # ARABIC-INDIC DIGIT FIVE
        cursor("a:-1"),
        cursor("x:1"),
        "",
        "A" * 10_000,
    ],
    ids=["huge", "2**63", "plus", "underscore", "arabic-indic", "negative", "direction", "empty", "long"],
)
def test_a_forged_cursor_is_a_400_on_cursor(api: Api, forged: str) -> None:
    response = api.get("/users/", params={"cursor": forged})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["cursor"]


def test_a_cursor_from_a_next_link_still_works(api: Api) -> None:
    for n in range(3):
        assert api.post("/users/", {"email": f"u{n}@example.com", "role": "developer"}).status_code == 201
    first = api.get("/users/", params={"page_size": "2"}).json()
    second = api.get(first["next"])
    assert second.status_code == 200
    assert [u["email"] for u in second.json()["results"]] == ["u1@example.com", "u2@example.com"]


@pytest.mark.parametrize(
    "size", ["", "+5", "1_0", "\u0665", "\u0661\u0660", " 5", "5 ", "0x5", "5.0", "-1", "0", "101"]
)
def test_page_size_accepts_only_ascii_digits_in_range(api: Api, size: str) -> None:
    response = api.get("/users/", params={"page_size": size})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["page_size"]


def test_page_size_in_ascii_digits_is_accepted(api: Api) -> None:
    for size in ("1", "100", "050"):
        assert api.get("/users/", params={"page_size": size}).status_code == 200


# --- bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("idempotency_key", [None, "deep"])
def test_a_body_nested_100000_deep_is_a_parse_error(api: Api, idempotency_key: str | None) -> None:
    bodies = ("[" * 100_000 + "]" * 100_000, '{"email": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for n, body in enumerate(bodies):
        headers = {"Content-Type": "application/json"}
        if idempotency_key:  # the idempotency fingerprint parses the body too
            headers["Idempotency-Key"] = f"{idempotency_key}-{n}"
        response = api.post("/users/", data=body.encode(), headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    assert users(api) == ["admin@example.com"]


def test_a_body_over_1_mb_is_413_and_the_connection_stays_usable(api: Api) -> None:
    body = b'{"email": "a@example.com", "role": "developer", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = api.post("/users/", data=body, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    # The refused body was drained, so the kept-alive connection serves the next request.
    assert api.get("/me/").status_code == 200
    assert users(api) == ["admin@example.com"]


def test_a_body_of_exactly_1_mb_is_read(api: Api) -> None:
    prefix, suffix = b'{"email": "a@example.com", "role": "developer", "pad": "', b'"}'
    body = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == MAX_BODY_BYTES
    response = api.post("/users/", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


def test_a_chunked_body_over_1_mb_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:  # a generator: requests sends it chunked, with no length
        yield b'{"email": "a@example.com", "role": "developer", "pad": "'
        for _ in range(2 * MAX_BODY_BYTES // 65536):
            yield b"x" * 65536
        yield b'"}'

    response = api.post("/users/", data=chunks(), headers={"Content-Type": "application/json"})
    assert "Content-Length" not in response.request.headers
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert users(api) == ["admin@example.com"]


def test_a_small_chunked_body_is_read(api: Api) -> None:
    response = api.post(
        "/users/",
        data=iter([b'{"email": "a@example.com", ', b'"role": "developer"}']),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_a_huge_declared_body_is_refused_before_it_is_sent(sandbox: RunningSandbox) -> None:
    # 400 MB announced, none sent: the answer comes at once (nothing is read
    # or awaited), without authentication, and the connection is closed.
    received = raw_exchange(
        sandbox,
        "POST /api/v1/users/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 400000000\r\n\r\n",
    )
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert b'"payload_too_large"' in body


def test_an_oversized_body_is_not_invited_with_100_continue(sandbox: RunningSandbox) -> None:
    received = raw_exchange(
        sandbox,
        f"POST /api/v1/users/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {sandbox.token}\r\n"
        f"Content-Length: {2 * MAX_BODY_BYTES}\r\nExpect: 100-continue\r\n\r\n",
    )
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in received


# --- methods and headers -------------------------------------------------------------


def test_405_carries_allow(api: Api, contract_checker) -> None:  # noqa: ANN001
    # PUT and the like are no operation of the contract: checked here, not by the fixture.
    cases = {"/users/": "GET, HEAD, POST", "/me/": "GET, HEAD", "/users/some-id/": "DELETE, GET, HEAD, PATCH"}
    for path, allow in cases.items():
        response = api.request("PUT", path)
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
        assert response.headers["Allow"] == allow
    assert len(contract_checker.violations) == len(cases)
    contract_checker.violations.clear()


def test_deleting_a_workspace_is_405_with_allow_without_delete(api: Api) -> None:
    workspace = api.post("/workspaces/", {"name": "keep"}).json()
    response = api.delete(f"/workspaces/{workspace['id']}/")
    assert (response.status_code, response.json()["code"]) == (405, "not_supported")
    assert response.headers["Allow"] == "GET, HEAD, PATCH"


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256-characters"])
def test_an_idempotency_key_outside_1_to_255_characters_is_a_400(api: Api, key: str) -> None:
    response = api.post(
        "/users/", {"email": "a@example.com", "role": "developer"}, headers={"Idempotency-Key": key}
    )
    assert "Idempotency-Key" in response.request.headers  # sent, even when empty
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["Idempotency-Key"]
    assert users(api) == ["admin@example.com"]


def test_an_idempotency_key_of_255_characters_is_honoured(api: Api) -> None:
    headers = {"Idempotency-Key": "k" * 255}
    first = api.post("/users/", {"email": "a@example.com", "role": "developer"}, headers=headers)
    again = api.post("/users/", {"email": "a@example.com", "role": "developer"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("name", ["", " ", "\t\n", "x" * 101])
def test_a_blank_or_long_workspace_name_is_a_400_on_name(api: Api, name: str) -> None:
    # The contract's WorkspaceName: 1 to 100 characters, not all whitespace.
    response = api.post("/workspaces/", {"name": name})
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["name"]


# --- stats -----------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Token nope"])
def test_stats_need_a_key(sandbox: RunningSandbox, api: Api, authorization: str | None) -> None:
    api.get("/me/")
    anonymous = Api(sandbox.base_url, None)
    headers = {"Authorization": authorization} if authorization else {}
    assert anonymous.get("/_sandbox/stats", headers=headers).status_code == 401
    assert anonymous.post("/_sandbox/stats/reset", headers=headers).status_code == 401
    assert sandbox.stats()["total"] == 1  # the refused reset reset nothing


def test_stats_accept_a_developer_key(sandbox: RunningSandbox, api: Api) -> None:
    api.post("/users/", {"email": "dev@example.com", "role": "developer"})
    developer = Api(sandbox.base_url, create_token(sandbox.db_path, "dev@example.com"))
    assert developer.get("/_sandbox/stats").json()["total"] == 1


# --- the last admin ---------------------------------------------------------------------


def me_id(api: Api) -> str:
    return api.get("/me/").json()["id"]


def test_the_last_active_admin_cannot_be_demoted_or_removed(api: Api) -> None:
    admin = me_id(api)
    invited = api.post("/users/", {"email": "invited-admin@example.com", "role": "admin"}).json()
    demote = api.patch(f"/users/{admin}/", {"role": "developer"})
    assert (demote.status_code, demote.json()["code"]) == (409, "last_admin")
    remove = api.delete(f"/users/{admin}/")
    assert (remove.status_code, remove.json()["code"]) == (409, "last_admin")
    assert api.get(f"/users/{admin}/").json()["role"] == "admin"
    # Keeping the role is no demotion; an invited admin is not the last active one.
    assert api.patch(f"/users/{admin}/", {"role": "admin"}).status_code == 200
    assert api.patch(f"/users/{invited['id']}/", {"role": "developer"}).status_code == 200
    assert api.delete(f"/users/{invited['id']}/").status_code == 204


def test_an_admin_can_be_demoted_or_removed_while_another_is_active(make_sandbox, tmp_path) -> None:  # noqa: ANN001
    db = tmp_path / "two-admins.db"
    seed(db, users=[("second@example.com", "admin", "active")])
    sandbox = make_sandbox(db_path=db)
    api = Api(sandbox.base_url, sandbox.token)
    second = next(u for u in api.walk("/users/") if u["email"] == "second@example.com")
    assert api.patch(f"/users/{second['id']}/", {"role": "developer"}).status_code == 200
    # Now the key's own user is the last active admin again.
    assert api.delete(f"/users/{me_id(api)}/").json()["code"] == "last_admin"
    assert api.patch(f"/users/{second['id']}/", {"role": "admin"}).status_code == 200
    assert api.delete(f"/users/{second['id']}/").status_code == 204


# --- emails ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "named"),
    [
        ("alice@example.com\u200b", "U+200B ZERO WIDTH SPACE"),
        ("ali\u200dce@example.com", "U+200D ZERO WIDTH JOINER"),
        ("alice@example.com\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("alice@exam\u00adple.com", "U+00AD SOFT HYPHEN"),
        ("\u202ealice@example.com", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("alice@example.com\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("alice\u200f@example.com", "U+200F RIGHT-TO-LEFT MARK"),
        ("alice@example.com\n", "U+000A"),
        ("alice@example.com\r", "U+000D"),
        ("ali\x1bce@example.com", "U+001B"),
        ("ali\x00ce@example.com", "U+0000"),
        ("alice@example.com\x85", "U+0085"),
        ("al ice@example.com", "U+0020 SPACE"),
        ("alice@example.com\t", "U+0009"),
        ("alice\u00a0@example.com", "U+00A0 NO-BREAK SPACE"),
        ("alice@example.com\u2028", "U+2028 LINE SEPARATOR"),
        ("ali\u3164ce@example.com", "U+3164 HANGUL FILLER"),
        ("alice\ufe0f@example.com", "U+FE0F VARIATION SELECTOR-16"),
        ("alice\ue000@example.com", "U+E000"),
        ("\u0430lice@example.com", "U+0430 CYRILLIC SMALL LETTER A"),  # Cyrillic а + Latin
        ("alice@ex\u0430mple.com", "U+0430 CYRILLIC SMALL LETTER A"),
        ("\u03b1lice@example.com", "U+03B1 GREEK SMALL LETTER ALPHA"),
        ("jose\u0301@example.com", "NFC"),  # é as e + COMBINING ACUTE ACCENT
    ],
)
def test_a_spoofable_email_is_a_400_naming_the_code_point(api: Api, email: str, named: str) -> None:
    response = api.post("/users/", {"email": email, "role": "developer"})
    assert response.status_code == 400, response.text
    (message,) = response.json()["email"]
    assert named in message
    assert users(api) == ["admin@example.com"]


@pytest.mark.parametrize(
    "email",
    [
        "Bob@Example.com",
        "first.last+tag@sub.example.co.uk",
        "jos\u00e9@example.com",  # é precomposed: NFC, all Latin
        "\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",  # all Cyrillic
        "\u0438\u0432\u0430\u043d@example.com",  # Cyrillic local part, Latin domain: each one script
        "\u5c71\u7530\u305f\u308d\u3046@example.jp",  # Han and hiragana together
        "user2024@example.com",
    ],
)
def test_a_plain_email_in_one_script_is_accepted(api: Api, email: str) -> None:
    response = api.post("/users/", {"email": email, "role": "developer"})
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email.lower()


def test_an_email_with_a_non_string_or_bad_shape_is_still_refused(api: Api) -> None:
    for email in (7, None, "no-at-sign", "a@b", "a@@b.com", "a@b.com@c.com", "x" * 250 + "@b.com"):
        response = api.post("/users/", {"email": email, "role": "developer"})
        assert response.status_code == 400, (email, response.text)
        assert list(response.json()) == ["email"]


def test_the_contract_and_the_sandbox_agree_on_which_names_are_all_whitespace() -> None:
    """``\\s`` differs between Python and the ECMA dialect schemathesis uses; both now spell it out."""
    import re as regex
    from pathlib import Path

    import yaml as yaml_module

    from provisioner.sandbox.resource import is_visible_name

    contract = yaml_module.safe_load((Path(__file__).parents[2] / "schemas" / "openapi.yaml").read_text())
    for schema in ("WorkspaceName", "ApiKeyName"):
        pattern = regex.compile(
            contract["components"]["schemas"][schema]["pattern"].encode().decode("unicode_escape")
        )
        for name in ("a", " a ", "\x1c", "\x85", "\ufeff", " \u3000", "\u00a0x", "\t"):
            assert (pattern.search(name) is not None) == is_visible_name(name, 100), (schema, name)
