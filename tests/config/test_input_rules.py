"""What a config string may hold, how identities compare, suggestions, and bounded errors.

Tables for ``provisioner.config.text`` and ``provisioner.config.suggest``, and
the loader-level rules they serve: identities keyed by NFC + casefold
everywhere, an invalid expiry granting nothing, error collection capped.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from provisioner.config import load_config
from provisioner.config.issues import Issues
from provisioner.config.suggest import closest
from provisioner.config.text import char_problem, email_problem, excerpt
from provisioner.errors import ConfigError
from provisioner.model import identity_key

# (value, words the problem must contain; None = accepted)
EMAILS: list[tuple[str, tuple[str, ...] | None]] = [
    ("alice@example.com", None),
    ("Alice.O'Neil+ops@Example.COM", None),
    ("иван@пример.рф", None),  # one script per part: a real internationalised address
    ("山田たろう@example.jp", None),  # Han + Hiragana: allowed by UTS #39
    ("josé@example.com", None),
    ("alice@example.com\u200b", ("U+200B ZERO WIDTH SPACE", "character 18")),
    ("ali\u00a0ce@example.com", ("U+00A0 NO-BREAK SPACE",)),
    ("alice@example.com\n", ("U+000A LINE FEED",)),
    ("\u202ealice@example.com", ("U+202E RIGHT-TO-LEFT OVERRIDE", "character 1")),
    ("alice\ufeff@example.com", ("U+FEFF ZERO WIDTH NO-BREAK SPACE",)),
    ("\u0430lice@example.com", ("mixes Cyrillic with Latin", "U+0430 CYRILLIC SMALL LETTER A")),
    ("alice@ex\u0430mple.com", ("U+0430", "`exаmple`")),
    ("p\u0430ypal@example.com", ("Cyrillic",)),
    ("\u03bfmega@example.com", ("mixes Greek with Latin", "U+03BF GREEK SMALL LETTER OMICRON")),
    ("stra\u00dfe@example.com", ("U+00DF LATIN SMALL LETTER SHARP S", "`ss`")),
]


@pytest.mark.parametrize("value,words", EMAILS, ids=[repr(e[0]) for e in EMAILS])
def test_email_rules(value: str, words: tuple[str, ...] | None) -> None:
    problem = email_problem(value)
    if words is None:
        assert problem is None
    else:
        assert problem is not None
        for word in words:
            assert word in problem, problem


def test_identity_key_is_nfc_and_casefolded() -> None:
    composed, decomposed = "ren\u00e9@example.com", "rene\u0301@example.com"
    assert composed != decomposed
    assert identity_key(composed) == identity_key(decomposed) == "ren\u00e9@example.com"
    assert identity_key("BOB@Example.COM") == "bob@example.com"


def test_free_text_allows_visible_text_and_spaces_only() -> None:
    assert char_problem("INC-4711: on call (Köln) — approved") is None
    assert "U+0009 CHARACTER TABULATION" in (char_problem("a\tb") or "")
    assert "U+E0041 TAG LATIN CAPITAL LETTER A" in (char_problem("ok\U000e0041") or "")
    assert "U+0020 SPACE" in (char_problem("a b@x.io", spaces=True) or "")


def test_excerpt_is_short_and_escaped() -> None:
    secret = "https://x-access-token:ghs_" + "A" * 36 + "@github.com"
    shown = excerpt(secret)
    assert shown.endswith("…") and len(shown) == 41
    assert "@github.com" not in shown
    assert excerpt("a\x1b[2Kb\n") == "a\\x1b[2Kb\\n"


# (given, options, expected suggestion or None)
SUGGESTIONS = [
    ("regoin", ["region", "api_url", "name", "token_env"], "region"),
    ("expiry", ["user", "expires", "reason"], "expires"),
    ("prod", ["production", "staging"], "production"),
    ("workspace", ["workspaces", "workspace_name_format", "users"], "workspaces"),
    ("us-east-2", ["us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1"], "us-east-1"),
    ("Admin", ["admin", "developer"], "admin"),
    ("bobb@acme.com", ["alice@acme.com", "bob@acme.com"], "bob@acme.com"),
    ("alice@acme.co", ["alice@acme.com"], "alice@acme.com"),
    # Merely similar is not a typo:
    ("eu-west-1", ["us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1"], None),
    ("zed@example.com", ["admin@example.com", "alice@example.com"], None),
    ("al@acme.com", ["bo@acme.com"], None),
    ("owner", ["admin", "developer"], None),
]


@pytest.mark.parametrize("given,options,expected", SUGGESTIONS, ids=[s[0] for s in SUGGESTIONS])
def test_suggestions_only_for_plausible_typos(given: str, options: list[str], expected: str | None) -> None:
    assert closest(given, options) == expected


def test_a_suggestion_among_many_options_is_fast() -> None:
    options = [f"user{i}@example.com" for i in range(20_000)]
    started = time.process_time()
    assert closest("usr12345@example.com", options) == "user12345@example.com"
    assert time.process_time() - started < 1.0


def test_issues_keep_the_first_200_and_count_the_rest(tmp_path: Path) -> None:
    issues = Issues(limit=3)
    from provisioner.errors import ConfigIssue, Location

    for i in range(5):
        issues.extend_located([ConfigIssue(Location("f", i + 1, 1), "", f"problem {i}")])
    issues.extend_located([ConfigIssue(Location("f", 1, 1), "", "problem 0")])  # a repeat
    resolved = issues.resolve()
    assert [i.message for i in resolved] == ["problem 0", "problem 1", "problem 2"]
    assert "and 2 more errors not shown" in (issues.omitted() or "")


def _load_error(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(i) for i in caught.value.issues]


def test_identities_are_keyed_by_nfc_casefold_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\norganization: {region: us-east-1}\nusers:\n"
        '  - {email: "Ren\\u00e9@Example.com", role: admin}\n'
        "groups:\n"
        '  ops: ["rene\\u0301@example.com"]\n'
        "workspaces:\n  - {name: w, members: ['@ops', \"RENE\\u0301@EXAMPLE.COM\"]}\n"
        "policy:\n"
        '  protected_users: ["REN\\u00c9@example.com"]\n'
        '  ignore: {users: ["*@CONTRACTOR.Example"]}\n',
        encoding="utf-8",
    )
    config = load_config(path)
    key = "ren\u00e9@example.com"
    assert list(config.desired.users) == [key]
    assert list(config.desired.memberships) == [("w", key)]
    assert config.policy.protected_users == frozenset({key})
    assert config.policy.ignore_users == ("*@contractor.example",)


def test_an_invalid_expiry_grants_nothing_and_the_user_is_still_checked(tmp_path: Path) -> None:
    errors = _load_error(
        tmp_path,
        "version: 1\norganization: {region: us-east-1}\nusers:\n"
        "  - {email: a@x.io, role: admin}\nworkspaces:\n  - name: w\n"
        "    members:\n      - {user: ghost@x.io, expires: nope}\n",
    )
    assert any("`ghost@x.io` is not a declared user" in e for e in errors), errors
    assert any("`nope` is not a valid date" in e for e in errors), errors


def test_members_of_an_undeclared_environment_are_checked(tmp_path: Path) -> None:
    errors = _load_error(
        tmp_path,
        "version: 1\norganization: {region: us-east-1}\nusers:\n"
        "  - {email: a@x.io, role: admin}\nenvironments: {production: {}}\n"
        "workspaces:\n  - name: w\n    environments: [development]\n"
        "    members:\n      development: [ghost@x.com, '@nogroup']\n",
    )
    assert len(errors) == 3, errors
    assert "unknown environment `development`" in errors[0]
    assert "`ghost@x.com` is not a declared user" in errors[1]
    assert "unknown group `@nogroup`" in errors[2]


def test_a_string_file_is_described_never_quoted(tmp_path: Path) -> None:
    errors = _load_error(tmp_path, "https://x-access-token:ghs_abcdefghijklmnop@github.com\n")
    assert not any("ghs_" in e or "x-access-token" in e for e in errors), errors
    assert any("got a string (not shown)" in e for e in errors), errors


def _webhooks_config(tmp_path: Path, count: int, bad_at: int) -> list[str]:
    """The errors of a production default of ``count`` webhooks, entry ``bad_at`` without its events."""
    lines = [
        "version: 1",
        "organization: {region: us-east-1}",
        "users:",
        "  - {email: a@example.com, role: admin}",
    ]
    lines += ["environments:", "  production:", "    webhooks:"]
    for i in range(count):
        events = "" if i == bad_at else ", events: [bot.done]"
        lines.append(f'      - {{url: "https://h{i}.example.invalid/x"{events}}}')
    lines += ["workspaces:", "  - {name: w, environments: [production]}"]
    return _load_error(tmp_path, "\n".join(lines) + "\n")


def test_a_list_over_its_cap_is_checked_entry_by_entry_only_up_to_the_cap(tmp_path: Path) -> None:
    # Entries past a list's maxItems are refused with the list, not checked one by one:
    # a pull request's 20,000 entries under a cap of 50 cost 51 checks.
    past_the_cap = _webhooks_config(tmp_path, 60, bad_at=59)
    assert any("at most 50 webhook endpoints" in issue for issue in past_the_cap), past_the_cap
    assert not any("events" in issue for issue in past_the_cap), past_the_cap
    within_the_cap = _webhooks_config(tmp_path, 60, bad_at=3)
    assert any("at most 50 webhook endpoints" in issue for issue in within_the_cap), within_the_cap
    assert any("events" in issue for issue in within_the_cap), within_the_cap
