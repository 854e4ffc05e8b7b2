"""The diff of workspace settings: recorded sources instead of secrets, what is managed, warnings, rendering."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import replace
from datetime import UTC, datetime

from provisioner.model import (
    Credential,
    Policy,
    SecretDigest,
    SecretRef,
    State,
    User,
    Webhook,
    Workspace,
)
from provisioner.plan.diff import diff
from provisioner.plan.model import Action, ResourceType, describe_warning
from provisioner.plan.serialize import plan_from_dict, plan_to_dict, validate_plan_document
from provisioner.render.plan_markdown import render_markdown
from provisioner.render.plan_text import render_text
from provisioner.resources.credential import changed_values
from provisioner.secrets.refs import MIN_ITERATIONS, SecretValues, digest_problem

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = SecretRef("env", "DG_PROD")
USERS = [User("alice@acme.com", "admin", id="u1")]


@functools.cache  # 600,000 iterations cost a third of a second: each value once
def digest_of(value: str, salt: str = "00" * 16, iterations: int = MIN_ITERATIONS) -> SecretDigest:
    raw = hashlib.pbkdf2_hmac("sha256", value.encode(), bytes.fromhex(salt), iterations).hex()
    return SecretDigest("pbkdf2_sha256", iterations, salt, raw)


def states(
    server_digest: SecretDigest,
    *,
    manages: tuple[str, ...] = ("webhooks", "transcription"),
    source: str | None = KEY.label,
    ref: SecretRef = KEY,
) -> tuple[State, State]:
    current = State.build(
        USERS,
        [Workspace("app-production", id="w1"), Workspace("app-staging", id="w2")],
        (),
        [
            Webhook("app-production", "https://h.example/old", ("bot.done",), id="h1"),
            Webhook("app-production", "https://h.example/keep", ("bot.done",), id="h2"),
        ],
        [
            Credential(
                "app-production",
                "deepgram",
                digests=(("api_key", server_digest),),
                sources=(("api_key", source),),
                id="c1",
            ),
            Credential("app-production", "rev", digests=(("api_key", digest_of("x")),), id="c2"),
        ],
    )
    desired = State.build(
        [User("alice@acme.com", "admin")],
        [
            Workspace("app-production", environment="production", manages=manages),
            Workspace("app-staging", environment="staging", manages=manages),
        ],
        (),
        [
            Webhook("app-production", "https://h.example/keep", ("bot.done", "transcript.done")),
            Webhook("app-staging", "https://h.example/new", ("bot.done",)),
        ],
        [Credential("app-production", "deepgram", secrets=(("api_key", ref),), write=("api_key",))],
    )
    return current, desired


def plan_for(server_digest: SecretDigest, value: str = "", **kw: object):  # noqa: ANN201
    # ``value`` is what the variable holds: a plan never reads it, so it cannot matter.
    current, desired = states(server_digest, **kw)  # type: ignore[arg-type]
    return diff(current, desired, Policy(), now=NOW)


def lines(plan) -> list[str]:  # noqa: ANN001
    return [line.strip() for line in render_text(plan).splitlines() if line.startswith("  ")]


def credential_updates(plan):  # noqa: ANN001, ANN201
    return [c for c in plan.changes if c.type is ResourceType.CREDENTIAL and c.action is Action.UPDATE]


def test_a_recorded_source_is_no_change_whatever_the_value_and_a_new_version_or_reference_writes_again() -> (
    None
):
    assert credential_updates(plan_for(digest_of("dg-prod-1"))) == []
    # The value behind the reference is not the plan's business: same plan, same changes.
    assert plan_for(digest_of("dg-prod-1")).changes == plan_for(digest_of("something else")).changes
    bumped = plan_for(digest_of("v"), ref=SecretRef("env", "DG_PROD", 2))
    assert [c.after.write for c in credential_updates(bumped)] == [("api_key",)]  # type: ignore[union-attr]
    assert (
        "~ credential deepgram (app-production): api_key written again from env DG_PROD (version 2) "
        "(version 1 -> 2)" in lines(bumped)
    )
    moved = plan_for(digest_of("v"), ref=SecretRef("env", "DG_PRODUCTION"))
    assert (
        "~ credential deepgram (app-production): api_key written again from env DG_PRODUCTION "
        "(was env DG_PROD v1)" in lines(moved)
    )
    by_hand = plan_for(digest_of("v"), source=None)
    assert (
        "~ credential deepgram (app-production): api_key written again from env DG_PROD "
        "(its current value was written outside provisioner)" in lines(by_hand)
    )
    assert "dg-prod" not in json.dumps(plan_to_dict(bumped, tool_version="t"))


def test_a_changed_value_is_found_only_with_the_value_and_an_unknown_digest_costs_no_work() -> None:
    current, desired = states(digest_of("dg-prod-1"))
    before, after = (
        current.credentials[("app-production", "deepgram")],
        desired.credentials[("app-production", "deepgram")],
    )
    assert changed_values(before, after, SecretValues({KEY: "dg-prod-1"})) == ()
    assert changed_values(before, after, SecretValues({KEY: "dg-prod-2"})) == ("api_key",)
    assert changed_values(before, after, SecretValues()) == ()  # no value held: not judged
    started = time.perf_counter()
    for digest in (
        SecretDigest("argon9", MIN_ITERATIONS, "00" * 16, digest_of("v").digest),
        SecretDigest("pbkdf2_sha256", 10**9, "00" * 16, "00"),
        SecretDigest("pbkdf2_sha256", 1000, "00" * 16, "00"),
    ):
        odd = replace(before, digests=(("api_key", digest),))
        # An unknown or guess-friendly digest is not compared at all: it proves nothing either way.
        assert changed_values(odd, after, SecretValues({KEY: "v"})) == ()
        assert digest_problem(digest) is not None
    not_hex = replace(
        before, digests=(("api_key", SecretDigest("pbkdf2_sha256", MIN_ITERATIONS, "zz", "00")),)
    )
    assert changed_values(not_hex, after, SecretValues({KEY: "v"})) == ("api_key",)
    assert time.perf_counter() - started < 5  # 10**9 iterations would take many minutes


def test_a_digest_made_with_fewer_iterations_than_the_floor_is_never_trusted() -> None:
    # Issue 21: the server chooses the iteration count; one that makes guessing cheap is never
    # trusted as "unchanged", and a plan never uses digests at all.
    weak = digest_of("dg-prod-1", iterations=1000)
    assert not SecretValues({KEY: "dg-prod-1"}).matches(KEY, weak)
    problem = digest_problem(weak)
    assert problem is not None and "1,000 iterations, fewer than the 600,000" in problem
    assert SecretValues({KEY: "dg-prod-1"}).matches(KEY, digest_of("dg-prod-1", iterations=MIN_ITERATIONS))
    assert plan_for(weak).changes == plan_for(digest_of("dg-prod-1")).changes
    assert MIN_ITERATIONS >= 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256


def test_managed_sections_remove_what_is_not_listed_and_unmanaged_ones_are_left_alone() -> None:
    managed = lines(plan_for(digest_of("v"), "v"))
    assert "- webhook https://h.example/old (app-production)" in managed
    assert "- credential rev (app-production)" in managed
    assert "+ webhook https://h.example/new (app-staging): bot.done" in managed
    assert "~ webhook https://h.example/keep (app-production): events +transcript.done" in managed
    alone = lines(plan_for(digest_of("v"), "v", manages=()))
    assert not any(line.startswith("- ") for line in alone)


def test_ignore_globs_leave_settings_alone() -> None:
    current, desired = states(digest_of("v"))
    policy = Policy(ignore_webhooks=("https://h.example/o*",), ignore_credentials=("r*",))
    plan = diff(current, desired, policy, now=NOW)
    assert not any(c.action is Action.DELETE for c in plan.changes)


def test_markdown_groups_settings_by_instance_production_first_and_the_document_round_trips() -> None:
    plan = plan_for(digest_of("v"), ref=SecretRef("env", "DG_PROD", 2))
    environments = {"app-production": "production", "app-staging": "staging"}
    text = render_markdown(plan, environments=environments)
    section = text.split("#### Settings by workspace instance", 1)[1]
    assert section.index("`app-production` (production)") < section.index("`app-staging`")
    assert "**Production settings changes**" in text
    assert "`credential deepgram (app-production): api_key written again from env DG_PROD (version 2)" in text
    document = plan_to_dict(plan, tool_version="t")
    validate_plan_document(document)
    assert plan_from_dict(document) == plan


def test_a_production_reference_reused_by_a_plain_workspace_is_warned() -> None:
    # Issue 21: a plain workspace reusing production's key is the same leak as another environment.
    current = State.build(USERS, [Workspace("app-production", id="w1"), Workspace("sandbox", id="w3")])
    desired = State.build(
        [User("alice@acme.com", "admin")],
        [
            Workspace("app-production", environment="production", manages=("transcription",)),
            Workspace("sandbox", manages=("transcription",)),
        ],
        (),
        (),
        [
            Credential("app-production", "deepgram", secrets=(("api_key", KEY),), write=("api_key",)),
            Credential("sandbox", "deepgram", secrets=(("api_key", SecretRef("env", "DG_PROD", 2)),)),
        ],
    )
    plan = diff(current, desired, Policy(), now=NOW)
    (warning,) = [w for w in plan.warnings if w.code == "secret-shared-across-environments"]
    assert "plain workspace sandbox" in describe_warning(warning) and "production" in describe_warning(
        warning
    )
