"""Table of configs -> expected issues (line, column, key words), with one runner.

Complements the file corpus in tests/data/bad: here several errors in one
document must all be reported, each at its exact position.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.config import load_config, load_configs
from provisioner.errors import ConfigError

BASE = """\
version: 1
organization: {region: us-east-1}
users:
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
"""

# (id, yaml text, [(line, column, words...)]) - every expected issue, in order.
CASES: list[tuple[str, str, list[tuple]]] = [
    (
        "many errors in one file",
        """\
version: 1
organization:
  regoin: us-east-1
users:
  - {email: alice@acme.com, role: Admin}
  - {email: bob@acme.com, role: yes}
workspaces:
  - name: no
    members: [carol@acme.com]
""",
        [
            (2, 1, "needs a region"),  # organization without region/api_url
            (3, 3, "unknown key `regoin`", "did you mean `region`"),
            (5, 35, "`Admin`", "did you mean `admin`"),
            (6, 33, "`yes` is read by YAML as the boolean true", 'role: "yes"'),
            (8, 11, "`no` is read by YAML as the boolean false", 'name: "no"'),
            (9, 15, "`carol@acme.com` is not a declared user"),
        ],
    ),
    (
        "duplicate keys name both lines",
        BASE + "policy:\n  min_admins: 1\n  min_admins: 2\n",
        [(8, 3, "`min_admins` appears twice", "first at line 7")],
    ),
    (
        "group cycle is named",
        BASE + 'groups:\n  a: ["@b"]\n  b: ["@a"]\n',
        [(8, 7, "@a -> @b -> @a")],
    ),
    (
        "api_url http on a loopback host is fine, elsewhere not",
        'version: 1\norganization: {api_url: "http://10.0.0.1:8080"}\n',
        [(2, 25, "plain http")],
    ),
    (
        "member grant errors",
        BASE
        + "workspaces:\n  - name: w\n    members:\n"
        + "      - {user: bob@acme.com, expires: 2026-13-01}\n"
        + "      - {user: bob@acme.com, expires: 2026-01-01T10:00:00}\n"
        + '      - {user: "@ghosts"}\n',
        [
            (9, 39, "not a valid date"),
            (10, 39, "no time zone"),
            (11, 16, "unknown group `@ghosts`"),
        ],
    ),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_errors(tmp_path: Path, text: str, expected: list[tuple]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    issues = caught.value.issues
    got = [(i.location.line, i.location.column) for i in issues]
    assert got == [e[:2] for e in expected], [str(i) for i in issues]
    for issue, (_, _, *words) in zip(issues, expected):
        for word in words:
            assert word in issue.message, str(issue)
        assert issue.location.file == str(path)


def test_loopback_http_is_accepted(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8080/api/v1", "http://localhost:1/", "http://[::1]:5/"):
        path = tmp_path / "c.yaml"
        path.write_text(f'version: 1\norganization: {{api_url: "{url}"}}\n')
        assert load_config(path).organization.api_url == url


def test_issues_of_several_organizations_are_collected(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("version: 2\norganization: {region: us-east-1}\n")
    two.write_text("version: 1\norganization: {region: mars-1}\n")
    with pytest.raises(ConfigError) as caught:
        load_configs([one, two])
    files = [i.location.file for i in caught.value.issues]
    assert files == [str(one), str(two)]
