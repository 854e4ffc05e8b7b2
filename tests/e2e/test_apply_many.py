"""apply over several organizations, and what its audit record says of the config's repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import TOKEN_ENV, Api, Cli, org_config

ADMIN = "  - {email: admin@example.com, role: admin}\n"


def test_one_refused_organization_means_none_is_changed(make_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    first, second = make_sandbox(), make_sandbox()
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(
        org_config(first.base_url, "users:\n" + ADMIN + "  - {email: x@acme.com, role: developer}\n")
    )
    # The second demotes the key's own (only) admin: a guard refuses it.
    b.write_text(org_config(second.base_url, "users:\n  - {email: admin@example.com, role: developer}\n"))
    cli = Cli(tmp_path, "unused")
    # Each sandbox has its own key; each organization names its own variable.
    a.write_text(a.read_text().replace(TOKEN_ENV, TOKEN_ENV + "_A"))
    b.write_text(b.read_text().replace(TOKEN_ENV, TOKEN_ENV + "_B"))
    keys = {TOKEN_ENV + "_A": first.token, TOKEN_ENV + "_B": second.token}
    result = cli("apply", "-c", str(a), "-c", str(b), "--auto-approve", extra_env=keys)
    assert result.returncode == 1, result.stderr
    assert "none was changed" in result.stderr
    assert set(Api(first.base_url, first.token).users()) == {"admin@example.com"}, (
        "the first organization was applied although the second was refused"
    )
    assert Api(second.base_url, second.token).users()["admin@example.com"]["role"] == "admin"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_the_audit_record_names_the_commit_of_the_config_s_own_repo(sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    repo = tmp_path / "access-repo"
    repo.mkdir()
    config = repo / "org.yaml"
    config.write_text(
        org_config(sandbox.base_url, "users:\n" + ADMIN + "  - {email: y@acme.com, role: developer}\n")
    )
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "org.yaml")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "access")
    head = _git(repo, "rev-parse", "HEAD")
    elsewhere = tmp_path / "elsewhere"  # the run's working folder is not the config's repo
    elsewhere.mkdir()
    audit = tmp_path / "audit.jsonl"
    result = Cli(elsewhere, sandbox.token)(
        "apply", "-c", str(config), "--auto-approve", "--audit-log", str(audit)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(audit.read_text().splitlines()[-1])["git_commit"] == head

    loose = tmp_path / "loose"  # a config outside any repository: null, not the cwd's commit
    loose.mkdir()
    (loose / "org.yaml").write_text(config.read_text() + "  - {email: z@acme.com, role: developer}\n")
    result = Cli(repo, sandbox.token)(
        "apply", "-c", str(loose / "org.yaml"), "--auto-approve", "--audit-log", str(audit)
    )
    assert result.returncode == 0, result.stderr
    records = audit.read_text().splitlines()
    assert len(records) == 2
    assert json.loads(records[-1])["git_commit"] is None
