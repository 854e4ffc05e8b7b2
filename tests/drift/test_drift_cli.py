"""``provisioner drift`` end to end: the real CLI against a sandbox on loopback."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm

from tests.support import Api, Cli, org_config

BODY = """
environments:
  development: {members: ["@eng"]}
  production: {members: [alice@acme.com]}
users:
  - {email: admin@example.com, role: admin}
  - {email: alice@acme.com, role: admin}
  - {email: bob@acme.com, role: developer}
groups:
  eng: [alice@acme.com, bob@acme.com]
workspaces:
  - name: notetaker
    environments: [development, production]
"""
WITH_CAROL = BODY.replace(
    "  - {email: bob@acme.com, role: developer}\n",
    "  - {email: bob@acme.com, role: developer}\n  - {email: carol@acme.com, role: developer}\n",
).replace("eng: [alice@acme.com, bob@acme.com]", "eng: [alice@acme.com, bob@acme.com, carol@acme.com]")


def write(tmp_path: Path, sandbox, body: str, name: str = "org.yaml") -> str:  # noqa: ANN001
    path = tmp_path / name
    path.write_text(org_config(sandbox.base_url, body))
    return str(path)


def ok(result) -> None:  # noqa: ANN001
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_apply_logged_elsewhere_leaves_no_drift_once_plan_is_clean(
    sandbox, cli: Cli, tmp_path: Path
) -> None:  # noqa: ANN001
    """The reproduction: the last apply wrote its record to stdout, not to the log drift reads."""
    log = str(tmp_path / "audit.jsonl")
    ok(cli("apply", "-c", write(tmp_path, sandbox, BODY), "--auto-approve", "--audit-log", log))
    edited = write(tmp_path, sandbox, WITH_CAROL, "edited.yaml")
    applied = cli("apply", "-c", edited, "--auto-approve", "--audit-log", "-")
    ok(applied)
    assert '"organization"' in applied.stdout  # the record went to stdout, not to the log

    plan = cli("plan", "-c", edited, "--detailed-exitcode")
    assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout
    for fmt in ("text", "json", "markdown"):
        drift = cli("drift", "-c", edited, "--audit-log", log, "--format", fmt)
        assert drift.returncode == 0, (fmt, drift.stdout, drift.stderr)
        assert "carol@acme.com" not in drift.stdout, (fmt, drift.stdout)
    assert (
        json.loads(cli("drift", "-c", edited, "--audit-log", log, "--format", "json").stdout)["drifted"]
        is False
    )


def test_an_object_is_never_both_out_of_band_and_unapplied(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
    log = str(tmp_path / "audit.jsonl")
    ok(cli("apply", "-c", write(tmp_path, sandbox, BODY), "--auto-approve", "--audit-log", log))
    edited = write(tmp_path, sandbox, WITH_CAROL, "edited.yaml")
    ok(cli("apply", "-c", edited, "--auto-approve"))  # no audit record at all
    # Out of band, after that: bob is promoted.
    bob = api.users()["bob@acme.com"]
    status, body, _ = api.request("PATCH", f"/users/{bob['id']}/", {"role": "admin"})
    assert status == 200, body

    doc = json.loads(cli("drift", "-c", edited, "--audit-log", log, "--format", "json").stdout)
    keys = [i["key"] for i in doc["out_of_band"]] + [i["key"] for i in doc["unapplied"]]
    assert sorted(keys) == ["bob@acme.com"], doc
    assert doc["out_of_band"][0]["origin"] == "out-of-band"


def _drifted_org(sandbox, cli: Cli, api: Api, tmp_path: Path) -> tuple[str, str]:  # noqa: ANN001
    """An organization with two out-of-band changes and two config changes not applied yet."""
    log = str(tmp_path / "audit.jsonl")
    ok(cli("apply", "-c", write(tmp_path, sandbox, BODY), "--auto-approve", "--audit-log", log))
    # Out of band: mallory is invited as an admin and given production; alice loses development.
    status, mallory, _ = api.request("POST", "/users/", {"email": "mallory@evil.example", "role": "admin"})
    assert status == 201, mallory
    spaces = api.workspaces()
    status, body, _ = api.request(
        "POST",
        "/workspace_memberships/",
        {"workspace_id": spaces["notetaker-production"]["id"], "user_id": mallory["id"]},
    )
    assert status == 201, body
    status, body, _ = api.request(
        "POST",
        "/workspace_memberships/",
        {"workspace_id": spaces["notetaker-development"]["id"], "user_id": mallory["id"]},
    )
    assert status == 201, body
    alice_dev = [
        m
        for m in api.list("/workspace_memberships/")
        if m["workspace_id"] == spaces["notetaker-development"]["id"]
        and m["user_id"] == api.users()["alice@acme.com"]["id"]
    ]
    status, _, _ = api.request("DELETE", f"/workspace_memberships/{alice_dev[0]['id']}/")
    assert status == 204
    # Not applied yet: carol joins the config (a user and her development access).
    return write(tmp_path, sandbox, WITH_CAROL, "edited.yaml"), log


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []
        self.tags: list[str] = []
        self._in_li = False

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001
        self.tags.append(tag)
        if tag == "li":
            self._in_li = True
            self.items.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self._in_li = False

    def handle_data(self, data: str) -> None:
        if self._in_li:
            self.items[-1] += data


def test_text_json_and_markdown_carry_the_same_items_and_counts(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
    config, log = _drifted_org(sandbox, cli, api, tmp_path)
    runs = {
        fmt: cli("drift", "-c", config, "--audit-log", log, "--format", fmt)
        for fmt in ("text", "json", "markdown")
    }
    for fmt, run in runs.items():
        assert run.returncode == 2, (fmt, run.stdout, run.stderr)

    doc = json.loads(runs["json"].stdout)
    oob = [i["description"] for i in doc["out_of_band"]]
    unapplied = [i["description"] for i in doc["unapplied"]]
    assert doc["counts"] == {
        "out_of_band": len(oob),
        "unapplied": len(unapplied),
        "total": len(oob) + len(unapplied),
    }
    assert sorted(i["key"] for i in doc["out_of_band"]) == [
        "mallory@evil.example",
        "notetaker-development/alice@acme.com",
    ]
    assert sorted(i["key"] for i in doc["unapplied"]) == [
        "carol@acme.com",
        "notetaker-development/carol@acme.com",
    ]

    text = runs["text"].stdout
    assert f"Out-of-band changes since the last apply ({len(oob)}):" in text
    assert f"Config not applied yet ({len(unapplied)}):" in text
    text_items = [line[4:] for line in text.splitlines() if re.match(r"  [!+~-] ", line)]
    assert text_items == oob + unapplied

    html = cmarkgfm.github_flavored_markdown_to_html(runs["markdown"].stdout)
    parser = _Text()
    parser.feed(html)
    assert "pre" not in parser.tags, "markdown is real markdown, not text in a fence"
    assert [item[2:] for item in parser.items] == oob + unapplied
    assert f"Out-of-band changes since the last apply ({len(oob)})" in html
    assert f"Config not applied yet ({len(unapplied)})" in html


def test_an_out_of_band_user_shows_role_and_reach_with_production_marked(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
    config, log = _drifted_org(sandbox, cli, api, tmp_path)
    text = cli("drift", "-c", config, "--audit-log", log).stdout
    line = next(line for line in text.splitlines() if "mallory@evil.example" in line)
    assert line == (
        "  ! user mallory@evil.example was added on the server as admin (not in the config); "
        "reaches notetaker-production (production), notetaker-development"
    ), text
    doc = json.loads(cli("drift", "-c", config, "--audit-log", log, "--format", "json").stdout)
    mallory = next(i for i in doc["out_of_band"] if i["key"] == "mallory@evil.example")
    assert mallory["server_role"] == "admin"
    assert mallory["workspaces"] == [
        {"name": "notetaker-production", "production": True},
        {"name": "notetaker-development", "production": False},
    ]


def test_without_an_audit_log_every_difference_is_drift(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    config, _ = _drifted_org(sandbox, cli, api, tmp_path)
    doc = json.loads(cli("drift", "-c", config, "--format", "json").stdout)
    assert doc["unapplied"] is None and doc["audit_log"] is False
    assert {i["origin"] for i in doc["out_of_band"]} == {"unknown"}
    assert doc["counts"]["total"] == 4
    text = cli("drift", "-c", config).stdout
    assert "Differences (no audit log, so every difference counts as drift) (4):" in text


def test_a_log_without_a_record_of_the_organization_says_so(
    sandbox, cli: Cli, api: Api, tmp_path: Path
) -> None:  # noqa: ANN001
    config, _ = _drifted_org(sandbox, cli, api, tmp_path)
    empty = tmp_path / "other.jsonl"
    empty.write_text("")
    result = cli("drift", "-c", config, "--audit-log", str(empty), "--format", "json")
    assert result.returncode == 2
    assert f"{empty} records no apply of" in result.stderr
    assert json.loads(result.stdout)["audit_log"] is False


def test_several_organizations_give_one_json_array(sandbox, cli: Cli, api: Api, tmp_path: Path) -> None:  # noqa: ANN001
    config, log = _drifted_org(sandbox, cli, api, tmp_path)
    # The same organization twice, once with carol (4 items) and once without (2: mallory, alice).
    second = write(tmp_path, sandbox, BODY, "again.yaml")
    result = cli("drift", "-c", config, "-c", second, "--audit-log", log, "--format", "json")
    assert result.returncode == 2, result.stderr
    docs = json.loads(result.stdout)
    assert [d["counts"]["total"] for d in docs] == [4, 2]
