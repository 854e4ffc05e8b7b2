"""Issue 21, part 5: the rules a secret reference follows, and the run's redactor, as tables.

``env_ref_problem`` is an allow rule (a word says the variable holds a secret,
no foreign namespace, never provisioner's or Recall's own keys, plus the
operator's globs); ``file_ref_problem`` refuses dot-directories; a digest
below the iteration floor is never compared; ``Redactor`` redacts every
secret it learned, and every long run of one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.endpoint import OperatorAllowances
from provisioner.model import SecretDigest
from provisioner.redaction import FRAGMENT, Redactor, redact
from provisioner.secrets.refs import (
    ALLOWED_SECRET_ENVS_ENV,
    MIN_ITERATIONS,
    digest_problem,
    env_ref_problem,
    file_ref_problem,
)

TOKEN_ENV = "RECALL_API_KEY"

# Every variable the examples, the docs and the suite's configs read (templates filled).
ACCEPTED = [
    "DEEPGRAM_KEY_PRODUCTION",  # the quickstart's DEEPGRAM_KEY_{ENVIRONMENT}
    "DEEPGRAM_KEY_STAGING",
    "ZOOM_HOOK_PRODUCTION",  # the README's ZOOM_HOOK_{ENVIRONMENT}
    "DG_KEY_NOTE_TAKER_STAGING",
    "HOSTILE_SECRET",
    "BENCH_ZS_SECRET_APP_PRODUCTION",
    "SECRET_NOTETAKER_PRODUCTION_DEEPGRAM_API_KEY",  # what export generates
    "ASSEMBLYAI_APIKEY",
    "zoom_client_secret",  # words compare case-insensitively
]

REFUSED = [
    ("RECALL_API_KEY", "holds the API key provisioner connects with"),
    ("RECALL_ADMIN_KEY", "RECALL or PROVISIONER as a word"),
    ("RECALL_DEVELOPER_KEY", "RECALL or PROVISIONER as a word"),
    ("ACME_RECALL_API_KEY", "RECALL or PROVISIONER as a word"),
    ("RECALL_API_KEY_PRODUCTION", "RECALL or PROVISIONER as a word"),  # where a sink delivers keys
    ("PROVISIONER_TEST_KEY", "RECALL or PROVISIONER as a word"),
    ("recall_admin_key", "RECALL or PROVISIONER as a word"),
    ("CI_REGISTRY_PASSWORD", "namespace of a CI system"),
    ("CI_REPOSITORY_URL", "namespace of a CI system"),
    ("CI_JOB_TOKEN", "namespace of a CI system"),
    ("GITHUB_TOKEN", "namespace of a CI system"),
    ("GH_TOKEN", "namespace of a CI system"),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "namespace of a CI system"),
    ("AWS_SECRET_ACCESS_KEY", "namespace of a CI system"),
    ("SYSTEM_ACCESSTOKEN", "namespace of a CI system"),  # Azure Pipelines
    ("HOME", "does not name a secret"),
    ("DEEPGRAM_URL", "does not name a secret"),
    ("KEYCHAIN_PATH", "does not name a secret"),  # words, not substrings
    ("NOT A NAME", "is not an environment variable name"),
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_that_say_they_hold_a_secret_are_accepted(name: str) -> None:
    assert env_ref_problem(name, TOKEN_ENV) is None


@pytest.mark.parametrize(("name", "message"), REFUSED)
def test_other_names_are_refused_with_what_to_do(name: str, message: str) -> None:
    problem = env_ref_problem(name, TOKEN_ENV)
    assert problem is not None and message in problem


def test_the_operator_allows_more_by_glob_but_never_the_tools_own_keys() -> None:
    allowed = OperatorAllowances.from_environ({ALLOWED_SECRET_ENVS_ENV: " DG_* , CI_DEPLOY_PASSWORD,,"})
    assert allowed.secret_envs == ("DG_*", "CI_DEPLOY_PASSWORD")
    assert env_ref_problem("DG_PROD", TOKEN_ENV, allowed.secret_envs) is None
    assert env_ref_problem("CI_DEPLOY_PASSWORD", TOKEN_ENV, allowed.secret_envs) is None
    assert env_ref_problem("CI_REGISTRY_PASSWORD", TOKEN_ENV, allowed.secret_envs) is not None
    everything = ("*",)
    assert "RECALL or PROVISIONER" in str(env_ref_problem("RECALL_ADMIN_KEY", TOKEN_ENV, everything))
    assert "holds the API key" in str(env_ref_problem("MY_TOKEN", "MY_TOKEN", everything))
    refused = env_ref_problem("DG_PROD", TOKEN_ENV)
    assert refused is not None and f"{ALLOWED_SECRET_ENVS_ENV}=DG_PROD" in refused


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        (".git/config", ".git"),
        ("./.git/config", ".git"),
        (".git", ".git"),
        ("secrets/.aws/credentials", ".aws"),
        (".env", ".env"),
        ("secrets\\.ssh\\id_rsa", ".ssh"),
        ("secrets/.hidden", ".hidden"),
    ],
)
def test_a_file_in_or_of_a_dot_directory_is_refused(name: str, hidden: str) -> None:
    problem = file_ref_problem(name)
    assert problem is not None and f"(`{hidden}`)" in problem and "secrets/NAME" in problem


@pytest.mark.parametrize("name", ["secrets/zoom-production", "./secrets/zoom", "key.txt", "a.b/c"])
def test_ordinary_files_are_accepted(name: str) -> None:
    assert file_ref_problem(name) is None


def test_digests_below_the_floor_or_past_the_cap_or_of_another_algorithm_are_not_compared() -> None:
    def made_with(iterations: int, algorithm: str = "pbkdf2_sha256") -> SecretDigest:
        return SecretDigest(algorithm, iterations, "00" * 16, "00" * 32)

    assert MIN_ITERATIONS == 600_000
    assert "too weak to compare" in str(digest_problem(made_with(1000)))
    assert "too weak to compare" in str(digest_problem(made_with(MIN_ITERATIONS - 1)))
    assert digest_problem(made_with(MIN_ITERATIONS)) is None
    assert digest_problem(made_with(1_000_000)) is None
    assert "more than" in str(digest_problem(made_with(1_000_001)))
    assert "argon2" in str(digest_problem(made_with(MIN_ITERATIONS, "argon2")))


def test_the_redactor_redacts_what_it_learned_whole_and_in_runs() -> None:
    key = "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    redactor = Redactor([key])
    assert "9f8e" not in redactor(f"a {key} b")
    assert redactor(f"the middle {key[5:30]} only") == "the middle *** only"
    later = "whsec_a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    assert redactor(later) == later  # not learned yet
    redactor.learn(later, "", "short")  # empty and short secrets are ignored
    assert redactor(f"{later}; short") == "***; short"
    assert "not shown" in repr(redactor) and key not in repr(redactor)


@given(
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=13, max_size=60),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    data=st.data(),
)
def test_no_run_of_a_learned_secret_survives(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    # The fast pre-test must never skip a text that holds a run: same result as ``redact``.
    start = data.draw(st.integers(0, len(secret) - FRAGMENT))
    end = data.draw(st.integers(start + FRAGMENT, len(secret)))
    text = before + secret[start:end] + after
    shown = Redactor([secret])(text)
    assert shown == redact(text, secret)
    for i in range(len(secret) - FRAGMENT + 1):
        assert secret[i : i + FRAGMENT] not in shown


def test_the_quickstart_and_examples_read_only_accepted_variables() -> None:
    root = Path(__file__).resolve().parents[2]
    texts = [p.read_text("utf-8") for p in (root / "examples").rglob("*.yaml")]
    texts.append((root / "README.md").read_text("utf-8"))
    names = set()
    for text in texts:
        for raw in re.findall(r"\{env:\s*\"?([A-Za-z0-9_{}]+)\"?\s*\}", text):
            names.add(raw.replace("{ENVIRONMENT}", "PRODUCTION").replace("{WORKSPACE}", "NOTETAKER"))
    names.discard("NAME")  # the README's placeholder
    assert "DEEPGRAM_KEY_PRODUCTION" in names
    assert {n: env_ref_problem(n, TOKEN_ENV) for n in names} == dict.fromkeys(names)
