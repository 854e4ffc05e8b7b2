"""Saved plans: exact round trip, every refusal cause, the key never written, 0600, atomic."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from provisioner.errors import ProvisionerError, StalePlanError
from provisioner.model import INVITED, Membership, Policy, State, User, Workspace
from provisioner.plan.diff import diff
from provisioner.plan.model import Plan
from provisioner.plan.planfile import load_plan, save_plan

KEY = "sk_live_4f9c2b7e1d0a"
VERSION = "0.1.0"
SAVED = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def _plan() -> Plan:
    current = State.build(
        [User("alice@acme.com", "admin", id="u1", etag='"1"'), User("eve@acme.com", "developer", INVITED, id="u2")],
        [Workspace("s", id="w1")],
        [Membership("s", "eve@acme.com", id="m1")],
    )
    desired = State.build(
        [User("alice@acme.com", "admin"), User("bob@acme.com", "developer")],
        [Workspace("s"), Workspace("p", environment="production")],
        [Membership("p", "bob@acme.com", expires=datetime(2026, 6, 3, tzinfo=timezone.utc), reason="INC-4711")],
    )
    return diff(current, desired, Policy(), now=SAVED, organization="acme", config_digest="d" * 64)


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    save_plan(_plan(), path, signing_key=KEY, tool_version=VERSION, created_at=SAVED)
    return path


def _load(path: Path, *, key: str = KEY, version: str = VERSION, now: datetime = SAVED + HOUR / 2) -> Plan:
    return load_plan(path, signing_key=key, tool_version=version, now=now, max_age=HOUR)


def _refusal(path: Path, **kwargs: object) -> str:
    with pytest.raises(StalePlanError) as caught:
        _load(path, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def test_round_trip_is_exact(saved: Path) -> None:
    plan = _plan()
    assert plan.changes and plan.expiring_soon and plan.warnings
    assert _load(saved) == plan


def test_the_signing_key_is_never_written(saved: Path) -> None:
    data = saved.read_bytes()
    assert KEY.encode() not in data
    assert KEY[3:].encode() not in data
    assert set(json.loads(data)) >= {"hmac", "created_at", "changes", "state_fingerprint"}


def test_file_is_private_and_no_temp_file_is_left(saved: Path) -> None:
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert os.listdir(saved.parent) == ["plan.json"]


def test_modified_file_is_refused(saved: Path) -> None:
    document = json.loads(saved.read_text())
    document["changes"][0]["key"] = "mallory@acme.com"
    saved.write_text(json.dumps(document))
    message = _refusal(saved)
    assert "does not match its signature: it was modified after it was saved" in message
    assert f"run `provisioner plan --out {saved}` again" in message


def test_reformatting_does_not_break_the_signature(saved: Path) -> None:
    saved.write_text(json.dumps(json.loads(saved.read_text()), indent=7))
    assert _load(saved) == _plan()


def test_another_key_is_refused(saved: Path) -> None:
    assert "saved with a different API key (another organization)" in _refusal(saved, key="sk_other")


def test_another_tool_version_is_refused(saved: Path) -> None:
    message = _refusal(saved, version="0.2.0")
    assert "was made by provisioner 0.1.0, this is provisioner 0.2.0" in message
    assert "again with this version" in message


def test_an_old_plan_is_refused(saved: Path) -> None:
    assert _load(saved, now=SAVED + HOUR) == _plan()  # exactly max_age is still fine
    message = _refusal(saved, now=SAVED + HOUR + timedelta(minutes=5))
    assert "is 1h 5m old, older than the limit of 1h" in message


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xff\xfe not text", "cannot read plan file"),
        (b"{not json", "cannot read plan file"),
        (b"[1, 2]", "is not a saved provisioner plan"),
        (b'{"format_version": 1}', "is not a saved provisioner plan"),
    ],
)
def test_unreadable_or_foreign_files_are_refused(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    assert expected in _refusal(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "cannot read plan file" in _refusal(tmp_path / "nope.json")


def test_a_signed_but_invalid_document_is_refused(tmp_path: Path, saved: Path) -> None:
    # Someone holding the key could sign anything; the schema still guards the shape.
    from provisioner.plan.planfile import _signature

    document = json.loads(saved.read_text())
    document["changes"][0]["action"] = "explode"
    document["hmac"] = _signature(document, KEY)
    saved.write_text(json.dumps(document))
    assert "is not a valid plan file" in _refusal(saved)


def test_save_replaces_an_existing_file_atomically(saved: Path) -> None:
    empty = Plan("acme", ())
    save_plan(empty, saved, signing_key=KEY, tool_version=VERSION, created_at=SAVED)
    assert _load(saved) == empty
    assert os.listdir(saved.parent) == ["plan.json"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_an_unwritable_plan_path_is_a_clean_error(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "plan.json"
    with pytest.raises(ProvisionerError) as err:
        save_plan(Plan(organization="acme", changes=()), target, signing_key="k" * 16,
                  tool_version="0.1.0", created_at=datetime.now(timezone.utc))
    assert "cannot write the plan file" in str(err.value) and "folder" in str(err.value)
    assert not target.parent.exists()
