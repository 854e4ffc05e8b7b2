"""The diff of workspace settings: digests instead of secrets, what is managed, warnings, rendering."""

from __future__ import annotations

import functools
import hashlib
import json
import time
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
from provisioner.plan.model import Action, ResourceType
from provisioner.plan.serialize import plan_from_dict, plan_to_dict, validate_plan_document
from provisioner.render.plan_markdown import render_markdown
from provisioner.render.plan_text import render_text
from provisioner.secrets.refs import MIN_ITERATIONS, SecretValues

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = SecretRef("env", "DG_PROD")
USERS = [User("alice@acme.com", "admin", id="u1")]


@functools.cache  # 600,000 iterations cost a third of a second: each value once
def digest_of(value: str, salt: str = "00" * 16, iterations: int = MIN_ITERATIONS) -> SecretDigest:
    raw = hashlib.pbkdf2_hmac("sha256", value.encode(), bytes.fromhex(salt), iterations).hex()
    return SecretDigest("pbkdf2_sha256", iterations, salt, raw)


def states(
    server_digest: SecretDigest, *, manages: tuple[str, ...] = ("webhooks", "transcription")
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
            Credential("app-production", "deepgram", digests=(("api_key", server_digest),), id="c1"),
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
        [Credential("app-production", "deepgram", secrets=(("api_key", KEY),), write=("api_key",))],
    )
    return current, desired


def plan_for(server_digest: SecretDigest, value: str, **kw: object):  # noqa: ANN201
    current, desired = states(server_digest, **kw)  # type: ignore[arg-type]
    return diff(current, desired, Policy(), now=NOW, secrets=SecretValues({KEY: value}))


def lines(plan) -> list[str]:  # noqa: ANN001
    return [line.strip() for line in render_text(plan).splitlines() if line.startswith("  ")]


def test_a_matching_digest_is_no_change_and_a_different_value_is_api_key_changed() -> None:
    same = plan_for(digest_of("dg-prod-1"), "dg-prod-1")
    assert [c for c in same.changes if c.type is ResourceType.CREDENTIAL and c.action is Action.UPDATE] == []
    changed = plan_for(digest_of("dg-prod-1"), "dg-prod-2")
    updates = [c for c in changed.changes if c.type is ResourceType.CREDENTIAL and c.action is Action.UPDATE]
    assert len(updates) == 1 and updates[0].after.write == ("api_key",)  # type: ignore[union-attr]
    assert "~ credential deepgram (app-production): api_key changed" in lines(changed)
    assert "dg-prod-2" not in json.dumps(plan_to_dict(changed, tool_version="t"))


def test_an_unknown_algorithm_or_a_huge_iteration_count_is_a_change_and_costs_no_work() -> None:
    unknown = SecretDigest("argon9", 1000, "00" * 16, digest_of("v").digest)
    assert "~ credential deepgram (app-production): api_key changed" in lines(plan_for(unknown, "v"))
    started = time.perf_counter()
    huge = SecretDigest("pbkdf2_sha256", 10**9, "00" * 16, "00")
    assert "~ credential deepgram (app-production): api_key changed" in lines(plan_for(huge, "v"))
    assert time.perf_counter() - started < 5  # 10**9 iterations would take many minutes
    not_hex = SecretDigest("pbkdf2_sha256", MIN_ITERATIONS, "zz", "00")
    assert "~ credential deepgram (app-production): api_key changed" in lines(plan_for(not_hex, "v"))


def test_a_digest_made_with_fewer_iterations_than_the_floor_is_never_trusted_as_unchanged() -> None:
    # Issue 21: the server chooses the iteration count; one that makes guessing cheap for whoever
    # reads digests is not trusted: the value is written again.
    weak = digest_of("dg-prod-1", iterations=1000)
    plan = plan_for(weak, "dg-prod-1")
    assert "~ credential deepgram (app-production): api_key changed" in lines(plan)
    (warning,) = [w for w in plan.warnings if w.code == "secret-digest-too-weak"]
    assert warning.key == "app-production deepgram" and warning.params["secret"] == "api_key"
    assert (
        "1,000 iterations, fewer than the 600,000" in warning.text and "too weak to compare" in warning.text
    )
    assert "apply writes the secret again" in render_text(plan)
    floor = digest_of("dg-prod-1", iterations=MIN_ITERATIONS)
    assert "~ credential deepgram (app-production): api_key changed" not in lines(
        plan_for(floor, "dg-prod-1")
    )
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
    plan = diff(current, desired, policy, now=NOW, secrets=SecretValues({KEY: "v"}))
    assert not any(c.action is Action.DELETE for c in plan.changes)


def test_markdown_groups_settings_by_instance_production_first_and_the_document_round_trips() -> None:
    plan = plan_for(digest_of("v"), "changed")
    environments = {"app-production": "production", "app-staging": "staging"}
    text = render_markdown(plan, environments=environments)
    section = text.split("#### Settings by workspace instance", 1)[1]
    assert section.index("`app-production` (production)") < section.index("`app-staging`")
    assert "**Production settings changes**" in text
    assert "`credential deepgram (app-production): api_key changed`" in text
    document = plan_to_dict(plan, tool_version="t")
    validate_plan_document(document)
    assert plan_from_dict(document) == plan
