"""The GitHub Actions example's own shell steps, run against the sandbox server (issue 21).

The pull-request plan runs with a developer's key and no secret value, held to
the base branch's config; its comment goes out through a stub ``gh`` that
records what it is given; the merge job reads that comment back and applies
exactly the reviewed plan with the admin key, the secrets and a sink (``gh
secret set``, recorded by the stub); a scheduled rotation then rotates the
due keys. The steps are taken from ``examples/ci/*.yml`` as written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.support import Api

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400

BASE = """\
users:
  - {email: admin@example.com, role: admin}
  - {email: svc-ci@example.com, role: developer, service_account: true}
  - {email: dev@example.com, role: developer}
environments:
  staging: {members: [svc-ci@example.com, dev@example.com]}
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
      - {name: ci-deploy, owner: svc-ci@example.com, rotate_every: 90d, sink: "CI_DEPLOY_KEY_{ENVIRONMENT}"}
"""
# The pull request: another event, and a second key.
CHANGED = BASE.replace("events: [bot.status_change]", "events: [bot.status_change, bot.done]") + (
    '      - {name: bot-runner, owner: svc-ci@example.com, rotate_every: 90d, sink: "BOT_RUNNER_KEY_{ENVIRONMENT}"}\n'
)
SECRETS = {
    "DEEPGRAM_KEY_STAGING": "dg-staging-0123456789",
    "DEEPGRAM_KEY_PRODUCTION": "dg-production-0123456",
}

# A stand-in for the GitHub CLI: records every call, answers the few the steps make.
GH_STUB = r"""
import json, os, sys
log = os.environ.get("GH_LOG") or LOG  # a sink command gets a minimal environment
args = sys.argv[1:]
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
def file_arg(value):
    return open(value[len("body=@"):]).read() if value.startswith("body=@") else value
record = {"args": args, "stdin": stdin}
if "-F" in args:
    record["body"] = file_arg(args[args.index("-F") + 1])
with open(os.path.join(log, "calls.jsonl"), "a") as f:
    f.write(json.dumps(record) + "\n")
joined = " ".join(args)
comment = os.path.join(log, "comment.md")
if args[:2] == ["secret", "set"]:
    with open(os.path.join(log, "secret-" + args[2]), "w") as f:
        f.write(stdin)
elif "/commits/" in joined and joined.endswith(".[0].number // empty"):
    print("7")
elif "/pulls/7 " in joined + " " and ".html_url" in joined:
    print("https://github.invalid/acme/access/pull/7")
elif ".merged_by.login" in joined:
    print("merger")
elif "/reviews" in joined:
    print("approver")
elif "--method" in args and "POST" in args and "/comments" in joined:
    open(comment, "w").write(record["body"])
elif "/issues/7/comments" in joined and ".body" in joined:
    if os.path.exists(comment):
        print(open(comment).read())
"""


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ci" / name).read_text())
    return loaded


def step(flow: dict[str, Any], job: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in flow["jobs"][job]["steps"] if s.get("name") == name)
    return found


class Runner:
    """Runs a step's ``run`` script as GitHub does (bash -e -o pipefail), with its env files."""

    def __init__(self, repo: Path, bin_dir: Path, gh_log: Path) -> None:
        self.repo = repo
        self.env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith(("PROVISIONER_", "RECALL_", "DEEPGRAM_"))
        }
        self.env.update(
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            GH_LOG=str(gh_log),
            GITHUB_REPOSITORY="acme/access",
            PROVISIONER_CONFIG="access.yaml",
            PROVISIONER_NO_CACHE="1",
            NO_COLOR="1",
        )

    def run(self, script: str, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        files = {
            n: self.repo.parent / f"{n.lower()}.txt"
            for n in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
        }
        for path in files.values():
            path.write_text("")
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.repo,
            env={**self.env, **{k: str(v) for k, v in files.items()}, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        for line in files["GITHUB_ENV"].read_text().splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value
        outputs = dict(line.partition("=")[::2] for line in files["GITHUB_OUTPUT"].read_text().splitlines())
        return result, outputs


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def config(url: str, body: str) -> str:
    return f"version: 1\norganization:\n  api_url: {url}\n" + body


def test_the_example_pipeline_plans_without_secrets_applies_the_reviewed_plan_and_rotates(
    sandbox,
    api: Api,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    bin_dir, gh_log, repo = tmp_path / "bin", tmp_path / "gh", tmp_path / "repo"
    for d in (bin_dir, gh_log, repo):
        d.mkdir()
    (bin_dir / "provisioner").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m provisioner "$@"\n')
    (bin_dir / "gh").write_text(f"#!{sys.executable}\nLOG = {str(gh_log)!r}\n{GH_STUB}")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    runner = Runner(repo, bin_dir, gh_log)
    flow = workflow("github-actions.yml")

    # main: the base config, applied ten days ago.
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", str(repo))
    (repo / "access.yaml").write_text(config(sandbox.base_url, BASE))
    git(repo, "add", "access.yaml")
    git(repo, "commit", "-qm", "base")
    api.request("POST", "/_sandbox/clock", {"offset_seconds": -10 * DAY})
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioner",
            "apply",
            "-c",
            "access.yaml",
            "--auto-approve",
            "--secrets-command",
            "gh secret set {name}",
        ],
        cwd=repo,
        env={**runner.env, "RECALL_API_KEY": sandbox.token, **SECRETS},
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    api.request("POST", "/_sandbox/clock", {"offset_seconds": 0})
    users = {u["email"]: u["id"] for u in api.list("/users/")}
    workspace = api.list("/workspaces/")[0]["id"]
    _, made, _ = api.request(
        "POST",
        "/api_keys/",
        {"name": "laptop", "workspace_id": workspace, "user_id": users["dev@example.com"]},
    )
    developer_key = made["key"]

    # The pull request.
    git(repo, "checkout", "-qb", "pr")
    (repo / "access.yaml").write_text(config(sandbox.base_url, CHANGED))
    git(repo, "commit", "-qam", "another key")
    base, _ = runner.run(step(flow, "plan", "Read the base config")["run"], BASE_REF="main")
    assert base.returncode == 0, base.stderr
    plan, outputs = runner.run(step(flow, "plan", "Plan")["run"], RECALL_API_KEY=developer_key)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert outputs["exitcode"] == "2"
    posted, _ = runner.run(
        step(flow, "plan", "Post or update the plan comment")["run"],
        PLAN_EXITCODE="2",
        PR="7",
        HEAD_SHA=git(repo, "rev-parse", "HEAD").strip(),
        GH_TOKEN="x",
    )
    assert posted.returncode == 0, posted.stderr
    comment = (gh_log / "comment.md").read_text()
    assert comment.startswith("<!-- provisioner-plan -->") and "Plan digest: `sha256:" in comment
    assert "Secrets this apply writes" in comment and "`BOT_RUNNER_KEY_PRODUCTION`" in comment
    for value in SECRETS.values():
        assert value not in comment

    # The merge, and the protected apply of exactly what was reviewed.
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "pr", "-m", "merge")
    runner.env.pop("PROVISIONER_BASE", None)
    merged_base, _ = runner.run(step(flow, "apply", "Read the base config")["run"])
    assert merged_base.returncode == 0, merged_base.stderr
    reviewed, found = runner.run(
        step(flow, "apply", "Find the reviewed plan")["run"], GH_TOKEN="x", GITHUB_SHA="HEAD"
    )
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    assert found["approvers"] == "approver" and found["merged_by"] == "merger"
    apply_step = step(flow, "apply", "Apply")
    applied, _ = runner.run(
        apply_step["run"],
        RECALL_API_KEY=sandbox.token,
        EXPECT="",
        OVERRIDE_REASON="",
        GH_TOKEN="x",
        PROVISIONER_PULL_REQUEST=found["pull_request"],
        PROVISIONER_APPROVERS=found["approvers"],
        PROVISIONER_MERGE_ACTOR=found["merged_by"],
        **SECRETS,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (gh_log / "secret-BOT_RUNNER_KEY_PRODUCTION").read_text().startswith("ak_")
    record = json.loads((repo / "audit.jsonl").read_text().splitlines()[-1])
    assert "merger" in json.dumps(record)
    hooks = api.list("/webhook_endpoints/")
    assert all(h["events"] == ["bot.done", "bot.status_change"] for h in hooks)

    # The scheduled rotation, once the base's ci-deploy keys have grown old (100 days).
    with sqlite3.connect(sandbox.db_path) as db:
        long_ago = (datetime.now(UTC) - timedelta(days=100)).isoformat(timespec="milliseconds")
        db.execute(
            "UPDATE api_keys SET created_at = ? WHERE name = 'ci-deploy'", (long_ago.replace("+00:00", "Z"),)
        )
    before = (gh_log / "secret-CI_DEPLOY_KEY_PRODUCTION").read_text()
    rotation = workflow("rotate-api-keys.yml")
    rotated, _ = runner.run(
        step(rotation, "rotate", "Rotate the keys that are due")["run"],
        RECALL_API_KEY=sandbox.token,
        GH_TOKEN="x",
        KEY_REPOSITORY="acme/notetaker",
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    after = (gh_log / "secret-CI_DEPLOY_KEY_PRODUCTION").read_text()
    assert after.startswith("ak_") and after != before
    calls = [json.loads(line) for line in (gh_log / "calls.jsonl").read_text().splitlines()]
    assert all(developer_key not in json.dumps(c) and sandbox.token not in json.dumps(c) for c in calls)
