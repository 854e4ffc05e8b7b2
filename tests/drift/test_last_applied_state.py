"""Reading the audit log back for drift: the latest record wins, and a bad one is an error with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.audit import AuditLogError, last_applied_state


def _record(org: str, users: object) -> str:
    return json.dumps(
        {"organization": org, "left_behind": {"users": users, "workspaces": [], "memberships": {}}}
    )


def test_the_latest_record_of_the_organization_wins(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text(
        "\n".join(
            [
                _record("acme", {"a@x.com": "admin"}),
                _record("globex", {"g@x.com": "admin"}),
                _record("acme", {"b@x.com": "developer"}),
                "",
            ]
        )
    )
    state = last_applied_state(log, "acme")
    assert state is not None and set(state.users) == {"b@x.com"}
    assert last_applied_state(log, "initech") is None
    assert last_applied_state(tmp_path / "missing.jsonl", "acme") is None


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("[1, 2]", "not a JSON audit record"),
        ("{not json", "not a JSON audit record"),
        (_record("acme", {"a@x.com": 1}), "left_behind is not a state"),
        (_record("acme", ["a@x.com"]), "left_behind is not a state"),
        (json.dumps({"organization": "acme", "left_behind": "x"}), "left_behind is not a state"),
    ],
)
def test_a_bad_line_is_an_error_naming_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text(_record("acme", {"a@x.com": "admin"}) + "\n" + line + "\n")
    with pytest.raises(AuditLogError) as caught:
        last_applied_state(log, "acme")
    assert f"{log}:2: " in str(caught.value) and words in str(caught.value)
