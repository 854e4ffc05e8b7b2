"""The audit trail a review stands on, end to end: settings, keys, roles, approvals, gaps.

An organization with webhooks, a credential and API keys is applied with
``--audit-log`` and an approval from CI (a pull request, approvers, a merge
actor), then a role is changed, then an apply with nothing to do runs. The
review's JSON must validate against ``schemas/review.schema.json`` (with
``jsonschema`` and with the ``check-jsonschema`` command an auditor would
use), and every format must name what each change was about.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # no stubs in the test extras
import pytest
import yaml

from provisioner.sandbox import RunningSandbox
from tests.review.test_review_browser import (
    PRINT_PAGES_LIMIT,
    axe_source,
    probe_answer,
    run_chromium,
    with_probe,
)
from tests.support import Cli, org_config

SCHEMA_PATH = Path(__file__).parents[2] / "schemas" / "review.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
PULL_REQUEST = "https://github.invalid/acme/access/pull/7"

BODY = """\
users:
  - {email: admin@example.com, role: admin}
  - {email: svc-ci@example.com, role: developer, service_account: true}
  - {email: bob@example.com, role: ROLE}
environments:
  staging: {members: [svc-ci@example.com, bob@example.com]}
  production: {members: [svc-ci@example.com]}
workspaces:
  - name: notetaker
    environments: [staging, production]
    webhooks:
      - url: "https://hooks.example.invalid/recall/{environment}"
        events: [bot.status_change]
    transcription:
      deepgram:
        api_key: {env: "DEEPGRAM_KEY_{ENVIRONMENT}"}
    api_keys:
      - name: ci-deploy
        owner: svc-ci@example.com
"""
SECRETS = {"DEEPGRAM_KEY_STAGING": "dg-staging-0123456789", "DEEPGRAM_KEY_PRODUCTION": "dg-prod-0123456789"}
APPROVAL = {"PROVISIONER_APPROVERS": "ana, ben", "PROVISIONER_MERGE_ACTOR": "ana"}


def write(cli: Cli, sandbox: RunningSandbox, role: str) -> None:
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, BODY.replace("ROLE", role)))


def apply(cli: Cli, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = cli(
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--secrets-dir",
        "sink",
        "--audit-log",
        "audit.jsonl",
        *extra,
        extra_env={**SECRETS, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def records(cli: Cli) -> list[dict]:
    return [json.loads(line) for line in (cli.cwd / "audit.jsonl").read_text().splitlines()]


def review(cli: Cli, fmt: str, *extra: str) -> str:
    result = cli("review", "-c", "org.yaml", "--audit-log", "audit.jsonl", "--format", fmt, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def trail(sandbox: RunningSandbox, cli: Cli) -> Cli:
    """Three applies: settings and keys (with an approval), a promotion, and one with nothing to do."""
    write(cli, sandbox, "developer")
    apply(cli, "--pull-request", PULL_REQUEST, env=APPROVAL)
    write(cli, sandbox, "admin")
    apply(cli, env={"PROVISIONER_PULL_REQUEST": PULL_REQUEST + "/../8", "PROVISIONER_APPROVERS": "ana"})
    apply(cli)
    return cli


def validate_with_check_jsonschema(document: Path) -> None:
    """The auditor's tool: the ``check-jsonschema`` command, from the test extras."""
    command = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert command is not None, "check-jsonschema is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [command, "--schemafile", str(SCHEMA_PATH), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_apply_appends_a_record_a_no_op_included(trail: Cli) -> None:
    found = records(trail)
    assert len(found) == 3
    assert found[-1]["applied"] == [] and found[-1]["result"] == "success"
    # The record keeps the approval CI gave, as options or from the environment.
    assert (found[0]["pull_request"], found[0]["approvers"], found[0]["merged_by"]) == (
        PULL_REQUEST,
        ["ana", "ben"],
        "ana",
    )
    assert found[1]["approvers"] == ["ana"] and found[1]["merged_by"] is None
    assert found[2]["pull_request"] is None and found[2]["approvers"] == []


def test_the_audit_record_keeps_a_role_s_before_and_after_and_a_key_s_prefix(trail: Cli) -> None:
    first, second, _ = records(trail)
    promotion = [c for c in second["applied"] if c["type"] == "user"]
    assert [c["subject"] for c in promotion] == [
        {"user": "bob@example.com", "role_before": "developer", "role_after": "admin"}
    ]
    keys = [c["subject"] for c in first["applied"] if c["type"] == "api_key"]
    assert {k["workspace"] for k in keys} == {"notetaker-staging", "notetaker-production"}
    assert all(k["user"] == "svc-ci@example.com" and k["target"] == "ci-deploy" for k in keys)
    assert all(k["prefix_after"] for k in keys) and len({k["prefix_after"] for k in keys}) == 2
    hooks = [c["subject"] for c in first["applied"] if c["type"] == "webhook"]
    assert {h["target"] for h in hooks} == {
        "https://hooks.example.invalid/recall/staging",
        "https://hooks.example.invalid/recall/production",
    }
    # Never a secret: the credential's key and the webhook signing secrets are not in the log.
    text = (trail.cwd / "audit.jsonl").read_text()
    assert not any(value in text for value in SECRETS.values())


def test_review_json_with_settings_keys_and_roles_validates_against_its_schema(trail: Cli) -> None:
    text = review(trail, "json")
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    document = trail.cwd / "review.json"
    document.write_text(text)
    validate_with_check_jsonschema(document)

    changes = doc["changes"]
    assert {c["type"] for c in changes} >= {"user", "membership", "webhook", "credential", "api_key"}
    for c in changes:
        if c["type"] in ("webhook", "credential", "api_key", "membership"):
            assert c["workspace"] in ("notetaker-staging", "notetaker-production"), c
        assert "_" not in c["label"] and c["label"] != f"{c['type']} {c['action']}", c
    keys = [c for c in changes if c["type"] == "api_key"]
    assert {c["user"] for c in keys} == {"svc-ci@example.com"}
    assert {c["target"] for c in keys} == {"ci-deploy"} and all(c["prefix_after"] for c in keys)
    assert {c["label"] for c in keys} == {"API key created"}
    credentials = [c for c in changes if c["type"] == "credential"]
    assert {c["target"] for c in credentials} == {"deepgram"}
    (promotion,) = [c for c in changes if c["type"] == "user" and c["action"] == "update"]
    assert (promotion["user"], promotion["role_before"], promotion["role_after"]) == (
        "bob@example.com",
        "developer",
        "admin",
    )
    assert promotion["run"]["approvers"] == ["ana"]
    first_run = keys[0]["run"]
    assert (first_run["pull_request"], first_run["approvers"], first_run["merged_by"]) == (
        PULL_REQUEST,
        ["ana", "ben"],
        "ana",
    )
    assert doc["summary"]["history"]["state"] == "recorded"
    assert doc["summary"]["history"]["covered_from"] == doc["summary"]["history"]["starts_at"]


def test_review_html_and_markdown_show_role_changes_keys_and_approvals(trail: Cli) -> None:
    page = review(trail, "html")
    assert "developer -&gt; admin" in page
    assert "API key created" in page and "api_key" not in page.split('id="changes"')[1]
    assert "approved by ana, ben; merged by ana" in page and PULL_REQUEST in page
    checklist = review(trail, "markdown")
    assert "role changed `bob@example.com` `developer -> admin`" in checklist
    assert "`approved by ana`" in checklist or "approved by ana" in checklist
    assert (
        "### Sign-off" in checklist and "| Production access | approved / changes needed | | |" in checklist
    )
    # Production grants name the pull request that granted them, in the checklist and the CSV.
    svc = next(line for line in checklist.splitlines() if line.startswith("- [ ] `svc-ci@example.com`"))
    assert f"`PR {PULL_REQUEST}; approved by ana, ben; merged by ana`" in svc
    rows = list(csv.DictReader(io.StringIO(review(trail, "csv"), newline="")))
    production = next(r for r in rows if r["workspace"] == "notetaker-production")
    assert (
        production["granted_pull_request"],
        production["granted_approvers"],
        production["granted_merged_by"],
    ) == (
        PULL_REQUEST,
        "ana, ben",
        "ana",
    )


def test_a_year_of_audit_history_validates_and_says_where_it_starts(trail: Cli) -> None:
    """A year of daily applies (the real records, spread back over 365 days): schema-valid, period stated."""
    real = records(trail)
    start = datetime.now(UTC) - timedelta(days=365)
    year = []
    for day in range(365):
        record = dict(real[day % len(real)])
        record["time"] = (start + timedelta(days=day)).isoformat()
        year.append(json.dumps(record))
    (trail.cwd / "audit.jsonl").write_text("\n".join(year) + "\n")
    since = (start - timedelta(days=30)).date().isoformat()
    text = review(trail, "json", "--since", since)
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    document = trail.cwd / "year.json"
    document.write_text(text)
    validate_with_check_jsonschema(document)
    applied = sum(len(real[day % len(real)]["applied"]) for day in range(365))
    assert len(doc["changes"]) == applied
    history = doc["summary"]["history"]
    assert history["starts_at"] == start.isoformat()
    assert history["covered_from"] == start.isoformat()  # the period starts earlier than the log
    assert "History starts at" in history["note"] and "after the period's start" in history["note"]


def test_a_missing_audit_log_is_a_warning_and_the_report_says_so(sandbox: RunningSandbox, cli: Cli) -> None:
    write(cli, sandbox, "developer")
    result = cli("review", "-c", "org.yaml", "--audit-log", "missing.jsonl", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Warning: the audit log missing.jsonl does not exist" in result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["summary"]["history"]["state"] == "missing"
    assert "does not exist" in doc["summary"]["history"]["note"]
    page = cli("review", "-c", "org.yaml", "--audit-log", "missing.jsonl").stdout
    assert "no history is known" in page
    checklist = cli("review", "-c", "org.yaml", "--audit-log", "missing.jsonl", "--format", "markdown").stdout
    assert "no history is known" in checklist


def test_an_empty_history_is_said_plainly(sandbox: RunningSandbox, cli: Cli) -> None:
    write(cli, sandbox, "developer")
    (cli.cwd / "audit.jsonl").write_text("")
    doc = json.loads(review(cli, "json"))
    assert doc["summary"]["history"]["state"] == "empty"
    assert "records no apply" in doc["summary"]["history"]["note"]


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--approved-by", "ana\u202eevil", "--approved-by needs 1 to 100 printable characters"),
        ("--merged-by", "x" * 101, "--merged-by needs 1 to 100 printable characters"),
        ("--pull-request", "https://github.invalid/" + "p" * 300, "--pull-request needs 1 to 300"),
    ],
)
def test_an_approval_out_of_bounds_is_refused_before_anything_changes(
    sandbox: RunningSandbox, cli: Cli, option: str, value: str, words: str
) -> None:
    write(cli, sandbox, "developer")
    result = cli("apply", "-c", "org.yaml", "--auto-approve", "--audit-log", "audit.jsonl", option, value)
    assert result.returncode == 1 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (cli.cwd / "audit.jsonl").exists()


def test_the_github_example_passes_the_pull_request_approvers_and_merge_actor_from_gh() -> None:
    workflow = yaml.safe_load(
        (Path(__file__).parents[2] / "examples" / "ci" / "github-actions.yml").read_text()
    )
    steps = {step.get("id") or step.get("name"): step for step in workflow["jobs"]["apply"]["steps"]}
    env = steps["apply"]["env"]
    assert env["PROVISIONER_PULL_REQUEST"] == "${{ steps.reviewed.outputs.pull_request }}"
    assert env["PROVISIONER_APPROVERS"] == "${{ steps.reviewed.outputs.approvers }}"
    assert env["PROVISIONER_MERGE_ACTOR"] == "${{ steps.reviewed.outputs.merged_by }}"
    found = steps["reviewed"]["run"]
    assert ".merged_by.login" in found and 'select(.state == "APPROVED")' in found and ".html_url" in found
    # What reaches $GITHUB_OUTPUT is cut to the characters a login or a URL holds: no newline injection.
    assert found.count("tr -cd") == 3


def test_the_real_page_passes_axe_core_and_prints_on_few_pages(trail: Cli, tmp_path: Path) -> None:
    """The HTML of this organization, read from the sandbox: axe-core finds nothing, and it prints small."""
    page = review(trail, "html")
    run_axe = (
        "axe.run(document,{resultTypes:['violations']}).then(function(r){answer(r.violations.map("
        "function(v){return {id:v.id,nodes:v.nodes.slice(0,3).map(function(n){return n.html;})};}));});"
    )
    probed = tmp_path / "axe.html"
    probed.write_text(with_probe(page, axe_source() + ";" + run_axe), encoding="utf-8")
    result, _ = run_chromium(
        tmp_path / "profile", "--virtual-time-budget=20000", "--dump-dom", probed.as_uri()
    )
    assert probe_answer(result.stdout) == []
    plain = tmp_path / "review.html"
    plain.write_text(page, encoding="utf-8")
    pdf = tmp_path / "review.pdf"
    run_chromium(tmp_path / "profile-pdf", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", plain.as_uri())
    pages = len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf.read_bytes()))
    assert 1 <= pages <= PRINT_PAGES_LIMIT, f"{pages} pages"
