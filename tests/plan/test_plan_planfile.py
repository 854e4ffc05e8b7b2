"""Saved plans: exact round trip, the digest, every refusal cause, no key written, 0600, atomic.

Integrity no longer rests on a signature (see the planfile module docstring):
a file is checked for consistency here, and against a fresh plan at apply.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.model import INVITED, Membership, Policy, State, User, Workspace
from provisioner.plan.diff import diff
from provisioner.plan.digest import DigestError, PlanTarget, find_digest, markdown_line, plan_digest
from provisioner.plan.model import TEXT, Plan, PlanWarning
from provisioner.plan.planfile import SavedPlan, load_plan, read_expectation, save_plan

VERSION = "0.1.0"
SAVED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TARGET = PlanTarget("org-1", "acme", "us-east-1")
ENVIRONMENTS = {"p": "production", "s": None}


def _plan() -> Plan:
    current = State.build(
        [
            User("alice@acme.com", "admin", id="u1", etag='"1"'),
            User("eve@acme.com", "developer", INVITED, id="u2"),
        ],
        [Workspace("s", id="w1")],
        [Membership("s", "eve@acme.com", id="m1")],
    )
    desired = State.build(
        [User("alice@acme.com", "admin"), User("bob@acme.com", "developer")],
        [Workspace("s"), Workspace("p", environment="production")],
        [Membership("p", "bob@acme.com", expires=datetime(2026, 6, 3, tzinfo=UTC), reason="INC-4711")],
    )
    plan = diff(current, desired, Policy(), now=SAVED, organization="acme", config_digest="d" * 64)
    # As reconcile makes it: the region is the organization's (TARGET's).
    return replace(plan, endpoint="https://us-east-1.recall.ai/api/v1", region=TARGET.region)


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    save_plan(_plan(), path, target=TARGET, tool_version=VERSION, created_at=SAVED, environments=ENVIRONMENTS)
    return path


def _load(path: Path, *, version: str = VERSION, now: datetime = SAVED + HOUR / 2) -> SavedPlan:
    return load_plan(path, tool_version=version, now=now, max_age=HOUR)


def _refusal(path: Path, **kwargs: object) -> str:
    with pytest.raises(StalePlanError) as caught:
        _load(path, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def _edit(path: Path, change) -> None:  # noqa: ANN001
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_round_trip_is_exact(saved: Path) -> None:
    plan = _plan()
    assert plan.changes and plan.expiring_soon and plan.warnings
    loaded = _load(saved)
    assert loaded.plan == plan
    assert loaded.target == TARGET
    assert loaded.digest == plan_digest(plan, TARGET)
    assert loaded.environments == ENVIRONMENTS
    assert loaded.created_at == SAVED


def test_the_file_holds_the_digest_and_the_organization_and_no_signature(saved: Path) -> None:
    document = json.loads(saved.read_text())
    assert document["digest"] == plan_digest(_plan(), TARGET)
    assert (document["organization_id"], document["organization"], document["region"]) == (
        "org-1",
        "acme",
        "us-east-1",
    )
    assert "hmac" not in document


def test_file_is_private_and_no_temp_file_is_left(saved: Path) -> None:
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert os.listdir(saved.parent) == ["plan.json"]


def test_a_changed_change_is_refused_as_modified(saved: Path) -> None:
    _edit(saved, lambda d: d["changes"][0].update(key="mallory@acme.com"))
    message = _refusal(saved)
    assert "was modified after it was made" in message
    assert f"run `provisioner plan --out {saved}` again" in message


def test_re_digesting_an_edited_file_makes_it_consistent_but_a_different_plan(saved: Path) -> None:
    # Anyone can recompute the digest (there is no secret); what they get is
    # the digest of THEIR plan, which apply compares with a fresh plan's.
    original = _load(saved).digest

    def forge(document: dict) -> None:
        document["changes"][0]["after"]["role"] = "admin"

    _edit(saved, forge)
    document = json.loads(saved.read_text())
    forged = _load_unchecked_digest(document)
    document["digest"] = forged
    saved.write_text(json.dumps(document))
    assert _load(saved).digest == forged != original


def _load_unchecked_digest(document: dict) -> str:
    from provisioner.plan.serialize import plan_from_dict

    target = PlanTarget(document["organization_id"], document["organization"], document["region"])
    return plan_digest(plan_from_dict(document), target)


def test_another_organization_changes_the_digest() -> None:
    plan = _plan()
    assert plan_digest(plan, TARGET) != plan_digest(plan, PlanTarget("org-2", "acme", "us-east-1"))
    assert plan_digest(plan, TARGET) != plan_digest(plan, PlanTarget("org-1", "acme", "eu-central-1"))


def test_ids_etags_and_invitation_status_do_not_change_the_digest() -> None:
    from dataclasses import replace

    plan = _plan()

    def bookkeeping_of(resource):  # noqa: ANN001, ANN202
        if resource is None:
            return None
        if isinstance(resource, User):
            return replace(resource, id="other", etag='"9"', status="active")
        return replace(resource, id="other", etag='"9"')

    assert any(isinstance(c.before, User) and c.before.status == INVITED for c in plan.changes)
    bookkeeping = Plan(
        plan.organization,
        tuple(replace(c, before=bookkeeping_of(c.before)) for c in plan.changes),
        warnings=(PlanWarning(TEXT, None, params={"text": "another warning"}),),
        state_fingerprint="f" * 64,
        config_digest="e" * 64,
    )
    assert plan_digest(bookkeeping, TARGET) == plan_digest(plan, TARGET)


def test_a_reason_or_expiry_changes_the_digest() -> None:
    from dataclasses import replace

    plan = _plan()
    (grant,) = [c for c in plan.changes if isinstance(c.after, Membership)]
    for edited in (replace(grant.after, reason="INC-4712"), replace(grant.after, expires=None)):
        changes = tuple(replace(c, after=edited) if c is grant else c for c in plan.changes)
        assert plan_digest(replace(plan, changes=changes), TARGET) != plan_digest(plan, TARGET)


def test_reformatting_keeps_the_plan(saved: Path) -> None:
    saved.write_text(json.dumps(json.loads(saved.read_text()), indent=7))
    assert _load(saved).plan == _plan()


def test_another_tool_version_is_refused(saved: Path) -> None:
    message = _refusal(saved, version="0.2.0")
    assert "was made by provisioner 0.1.0, this is provisioner 0.2.0" in message
    assert "again with this version" in message


def test_an_old_plan_is_refused_and_show_reads_any_age(saved: Path) -> None:
    assert _load(saved, now=SAVED + HOUR).plan == _plan()  # exactly max_age is still fine
    message = _refusal(saved, now=SAVED + HOUR + timedelta(minutes=5))
    assert "is 1h 5m old, older than the limit of 1h" in message
    assert load_plan(saved, tool_version=VERSION, now=SAVED + 1000 * HOUR, max_age=None).plan == _plan()


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xff\xfe not text", "is not a plan file"),
        (b"{not json", "is not a plan file"),
        (b"[1, 2]", "is not a saved provisioner plan"),
        (b'{"format_version": 1}', "is not a saved provisioner plan"),
        (b'{"created_at": "2026-06-01T12:00:00+00:00", "tool_version": "0.1.0"}', "no digest"),
    ],
)
def test_unreadable_or_foreign_files_are_refused(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    assert expected in _refusal(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "cannot read plan file" in _refusal(tmp_path / "nope.json")


def test_an_invalid_document_is_refused(saved: Path) -> None:
    _edit(saved, lambda d: d["changes"][0].update(action="explode"))
    assert "is not a valid plan file" in _refusal(saved)


def test_save_replaces_an_existing_file_atomically(saved: Path) -> None:
    empty = Plan("acme", (), region=TARGET.region)
    save_plan(empty, saved, target=TARGET, tool_version=VERSION, created_at=SAVED)
    assert _load(saved).plan == empty
    assert os.listdir(saved.parent) == ["plan.json"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_an_unwritable_plan_path_is_a_clean_error(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "plan.json"
    with pytest.raises(ProvisionerError) as err:
        save_plan(
            Plan(organization="acme", changes=()),
            target,
            target=TARGET,
            tool_version="0.1.0",
            created_at=datetime.now(UTC),
        )
    assert "cannot write the plan file" in str(err.value) and "folder" in str(err.value)
    assert not target.parent.exists()


# --- reading an expectation (apply --expect-file) ----------------------------


def test_an_expectation_is_read_from_a_bare_digest_a_comment_or_a_plan(saved: Path, tmp_path: Path) -> None:
    digest = _load(saved).digest
    bare = tmp_path / "digest.txt"
    bare.write_text(digest.upper().replace("SHA256:", "sha256:") + "\n")
    assert read_expectation(bare).digest == digest and read_expectation(bare).reviewed is None

    comment = tmp_path / "comment.md"
    forged = markdown_line("sha256:" + "0" * 64)
    comment.write_text(f"{forged}\n\n### provisioner plan\n\n{markdown_line(digest)}\n")
    assert find_digest(comment.read_text()) == digest  # the last line counts, not a quoted one
    assert read_expectation(comment).digest == digest

    from_plan = read_expectation(saved)
    assert from_plan.digest == digest and from_plan.reviewed == _plan() and from_plan.target == TARGET


@pytest.mark.parametrize("content", ["", "sha256:1234", "no digest here\nat all\n", "[]", "{not json"])
def test_an_expectation_without_a_digest_is_a_clean_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "expect"
    path.write_text(content)
    with pytest.raises((DigestError, StalePlanError)):
        read_expectation(path)
