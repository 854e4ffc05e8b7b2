"""Expansion semantics: instances, unions, nested groups, expiry, longest grant, merging."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from provisioner.config import load_config
from provisioner.errors import ConfigError
from provisioner.model import Membership, RemovalLimit, User, Workspace

ORG = """\
version: 1
organization: {region: us-east-1}
users:
  - {email: Alice@Acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
  - {email: carol@acme.com, role: developer}
groups:
  eng: [bob@acme.com, "@sre"]
  sre: [ALICE@acme.com]
environments:
  dev: {members: ["@eng"]}
  prod: {members: ["@sre"]}
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def test_instances_and_union_of_environment_and_own_members(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        ORG
        + """\
workspace_name_format: "{environment}.{workspace}"
workspaces:
  - name: app
    environments: [dev, prod]
    members:
      prod: [carol@acme.com]
  - name: sandbox
    members: ["@eng"]
""",
    )
    state = config.desired
    assert list(state.workspaces.values()) == [
        Workspace(name="dev.app", environment="dev"),
        Workspace(name="prod.app", environment="prod"),
        Workspace(name="sandbox"),
    ]
    assert sorted(state.memberships) == [
        ("dev.app", "alice@acme.com"),  # eng includes sre (nested group)
        ("dev.app", "bob@acme.com"),
        ("prod.app", "alice@acme.com"),
        ("prod.app", "carol@acme.com"),
        ("sandbox", "alice@acme.com"),
        ("sandbox", "bob@acme.com"),
    ]
    assert state.users["alice@acme.com"] == User(email="alice@acme.com", role="admin")
    assert config.environments == ("dev", "prod")
    assert config.workspace_name_format == "{environment}.{workspace}"


@pytest.mark.parametrize(
    "written,expected",
    [
        ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC)),  # lasts through the day
        ('"2026-02-28"', datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-06-01T12:00:00+02:00", datetime(2026, 6, 1, 10, tzinfo=UTC)),
        ('"2026-06-01T12:00:00Z"', datetime(2026, 6, 1, 12, tzinfo=UTC)),
        ("2020-01-01", datetime(2020, 1, 2, tzinfo=UTC)),  # expired grants are kept
    ],
)
def test_expiry_parsing(tmp_path: Path, written: str, expected: datetime) -> None:
    config = load(
        tmp_path,
        ORG
        + f"""\
workspaces:
  - name: w
    members: [{{user: carol@acme.com, expires: {written}, reason: why}}]
""",
    )
    grant = config.desired.memberships[("w", "carol@acme.com")]
    assert grant == Membership(workspace="w", user="carol@acme.com", expires=expected, reason="why")
    assert grant.expires.tzinfo is UTC


def test_longest_grant_wins(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        ORG
        + """\
workspaces:
  - name: a
    members:
      - {user: carol@acme.com, expires: 2026-01-01, reason: short}
      - {user: carol@acme.com, expires: 2026-06-01, reason: long}
      - {user: carol@acme.com, expires: 2026-03-01, reason: middle}
  - name: b
    members:
      - {user: carol@acme.com, expires: 2026-01-01, reason: temporary}
      - carol@acme.com
  - name: c
    environments: [prod]
    members:
      prod: [{user: alice@acme.com, expires: 2026-01-01, reason: "env grant is forever"}]
""",
    )
    grants = config.desired.memberships
    assert grants[("a", "carol@acme.com")].reason == "long"
    assert grants[("a", "carol@acme.com")].expires == datetime(2026, 6, 2, tzinfo=UTC)
    assert grants[("b", "carol@acme.com")].expires is None
    assert grants[("b", "carol@acme.com")].reason is None
    assert grants[("c-prod", "alice@acme.com")].expires is None


def test_policy_and_organization(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        ORG.replace("{region: us-east-1}", "{region: eu-central-1, name: acme, token_env: RECALL_K}")
        + """\
policy:
  min_admins: 2
  max_removals: 7
  protected_users: [BOB@acme.com]
  ignore: {users: ["*@Contractor.example"], workspaces: ["legacy-*"]}
""",
    )
    assert config.policy.min_admins == 2
    assert config.policy.max_removals == RemovalLimit(count=7, percent=None)
    assert config.policy.protected_users == frozenset({"bob@acme.com"})
    assert config.policy.ignore_users == ("*@contractor.example",)
    assert config.policy.ignore_workspaces == ("legacy-*",)
    assert config.organization.base_url() == "https://eu-central-1.recall.ai/api/v1"
    assert (config.organization.name, config.organization.token_env) == ("acme", "RECALL_K")
    percent = load(tmp_path, ORG + 'policy: {max_removals: "12.5%"}\n')
    assert percent.policy.max_removals == RemovalLimit(count=None, percent=12.5)


def test_single_file_digest_and_sources(tmp_path: Path) -> None:
    config = load(tmp_path, ORG)
    raw = (tmp_path / "c.yaml").read_bytes()
    assert config.digest == hashlib.sha256(b"c.yaml\0" + raw).hexdigest()
    assert config.sources == (str(tmp_path / "c.yaml"),)


def test_directory_merges_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b-users.yaml").write_text(
        'version: 1\nusers:\n  - {email: bob@acme.com, role: developer}\npolicy: {ignore: {users: ["x*"]}}\n'
    )
    (tmp_path / "a-org.yaml").write_text(
        "version: 1\norganization: {region: us-east-1}\n"
        "users:\n  - {email: alice@acme.com, role: admin}\n"
        'policy: {min_admins: 1, ignore: {users: ["y*"]}}\n'
    )
    (tmp_path / "c-ws.yml").write_text("version: 1\nworkspaces:\n  - {name: w, members: [bob@acme.com]}\n")
    (tmp_path / "notes.txt").write_text("not a config")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "ignored.yaml").write_text("this: [is not read")
    config = load_config(tmp_path)
    assert list(config.desired.users) == ["alice@acme.com", "bob@acme.com"]
    assert list(config.desired.memberships) == [("w", "bob@acme.com")]
    assert config.policy.ignore_users == ("y*", "x*")
    assert [Path(s).name for s in config.sources] == ["a-org.yaml", "b-users.yaml", "c-ws.yml"]
    expected = hashlib.sha256()
    for name in ("a-org.yaml", "b-users.yaml", "c-ws.yml"):
        expected.update(name.encode() + b"\0" + (tmp_path / name).read_bytes())
    assert config.digest == expected.hexdigest()


def test_directory_duplicates_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(
        "version: 1\norganization: {region: us-east-1}\n"
        "users:\n  - {email: alice@acme.com, role: admin}\ngroups:\n  eng: [alice@acme.com]\n"
    )
    (tmp_path / "two.yaml").write_text(
        "version: 1\norganization:\n  region: us-west-2\n"
        "users:\n  - {email: ALICE@acme.com, role: admin}\ngroups:\n  eng: []\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    one, two = str(tmp_path / "one.yaml"), str(tmp_path / "two.yaml")
    issues = {(i.location.file, i.location.line, i.location.column): i.message for i in caught.value.issues}
    assert f"{one}:2:16" in issues[(two, 3, 3)]  # organization.region
    assert "user `alice@acme.com` is already defined at " + f"{one}:4:13" in issues[(two, 5, 13)]
    assert f"group `eng` is already defined at {one}:6:3" in issues[(two, 7, 3)]
    assert len(issues) == 3
