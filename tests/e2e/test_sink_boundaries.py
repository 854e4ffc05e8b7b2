"""Issue 21, part 5: the secret sink and the secret references have operator-set boundaries.

The real CLI against the sandbox server over HTTP. Each test here is a
reproduction of the issue: it fails with its fix reverted.

* ``--secrets-command`` runs with a minimal environment (``PATH``, ``HOME``,
  the locale, ``PROVISIONER_SECRET_*`` and what the operator names with
  ``--secrets-command-env``): never the run's key nor a config secret.
* What the command writes reaches the terminal and the audit record only
  redacted of every secret the run knows: the key, the config's secret values
  and each secret already delivered.
* ``{env:}`` follows an allow rule with an operator list outside the
  repository; ``{file:}`` refuses ``.git`` and every dot-directory.
"""

from __future__ import annotations

import json
import sys

from tests.e2e.test_settings import KEYS, webhooks, write_config
from tests.support import TOKEN_ENV, Api, Cli, org_config

# Variables a pull request's job may hold that the sink command must never see.
OUTSIDE = {
    "RECALL_API_KEY": "recall-admin-key-not-for-sinks-0123456789",
    "UNRELATED_VARIABLE": "unrelated-value-0123456789",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}

ENV_RECORDER = """\
import json, os, sys
sys.stdin.read()
with open(os.path.join({cwd!r}, "envs.jsonl"), "a") as f:
    f.write(json.dumps(dict(os.environ)) + "\\n")
"""


def test_the_secrets_command_gets_a_minimal_environment(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write_config(cli, sandbox)
    (cli.cwd / "record_env.py").write_text(ENV_RECORDER.format(cwd=str(cli.cwd)))
    result = cli(
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--secrets-command",
        f"{sys.executable} record_env.py {{name}}",
        extra_env={**KEYS, **OUTSIDE},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = [json.loads(line) for line in (cli.cwd / "envs.jsonl").read_text().splitlines()]
    assert len(seen) == 2  # one signing secret per environment's webhook
    for env in seen:
        # The run's key (token_env), a RECALL key variable, the config's secrets, anything else: none.
        leaked = {TOKEN_ENV, "RECALL_API_KEY", "UNRELATED_VARIABLE", *KEYS} & env.keys()
        assert leaked == set(), leaked
        assert cli.token not in json.dumps(env)
        assert not any(value in json.dumps(env) for value in KEYS.values())
        # What it needs: where programs are, a home, the locale, and the secret's name.
        assert {"PATH", "LANG", "LC_ALL", "PROVISIONER_SECRET_NAME"} <= env.keys()
        assert env["PROVISIONER_SECRET_NAME"].startswith("RECALL_NOTETAKER_")
        outside = {"PATH", "HOME", "LANG", "LC_ALL"}
        assert set(env) - outside <= {
            "PROVISIONER_SECRET_NAME",
            "PROVISIONER_SECRET_ORGANIZATION",
            "PROVISIONER_SECRET_WORKSPACE",
            "PROVISIONER_SECRET_ENVIRONMENT",
            "PROVISIONER_SECRET_OBJECT",
        } | _added_by_the_interpreter(env)


def _added_by_the_interpreter(env: dict[str, str]) -> set[str]:
    # Python (and the C library) may set a few variables of their own at start-up.
    return {name for name in env if name in ("LC_CTYPE", "PWD", "SHLVL", "_", "__CF_USER_TEXT_ENCODING")}


def test_the_operator_passes_the_commands_own_credential_but_never_the_key(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    (cli.cwd / "record_env.py").write_text(ENV_RECORDER.format(cwd=str(cli.cwd)))
    command = f"{sys.executable} record_env.py {{name}}"
    gh_token = {"GH_TOKEN": "gh-token-for-the-sink-0123456789"}
    refused = cli(
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--secrets-command",
        command,
        "--secrets-command-env",
        TOKEN_ENV,
        "--secrets-command-env",
        "DEEPGRAM_KEY_PRODUCTION",
        extra_env={**KEYS, **gh_token},
    )
    assert refused.returncode == 1
    assert f"--secrets-command-env may not pass DEEPGRAM_KEY_PRODUCTION, {TOKEN_ENV}" in refused.stderr
    assert webhooks(api) == {}  # refused before any change
    passed = cli(
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--secrets-command",
        command,
        "--secrets-command-env",
        "GH_TOKEN",
        extra_env={**KEYS, **gh_token},
    )
    assert passed.returncode == 0, passed.stderr
    seen = [json.loads(line) for line in (cli.cwd / "envs.jsonl").read_text().splitlines()]
    assert seen and all(env.get("GH_TOKEN") == gh_token["GH_TOKEN"] for env in seen)
    assert all(TOKEN_ENV not in env for env in seen)


# Delivers the first secret it is given, remembering it; then fails, printing the admin key, a
# config secret and that first delivered secret (whole and in pieces) to stderr. The values are
# written into the script: a command may learn them in ways no environment rule can stop.
LEAKY = """\
import os, sys
value = sys.stdin.read()
first = os.path.join({cwd!r}, "first-secret")
if not os.path.exists(first):
    with open(first, "w") as f:
        f.write(value)
    sys.exit(0)
delivered = open(first).read()
for secret in ({key!r}, {config_secret!r}, delivered):
    sys.stderr.write("leaking " + secret + " and its middle " + secret[3:-3] + "\\n")
sys.exit(4)
"""


def test_a_failing_commands_output_is_redacted_of_every_secret_the_run_knows(
    cli: Cli,
    sandbox,
    api: Api,  # noqa: ANN001
) -> None:
    write_config(cli, sandbox)
    config_secret = KEYS["DEEPGRAM_KEY_PRODUCTION"] + "-long-enough-to-redact"
    env = {**KEYS, "DEEPGRAM_KEY_PRODUCTION": config_secret}
    script = LEAKY.format(cwd=str(cli.cwd), key=cli.token, config_secret=config_secret)
    (cli.cwd / "leaky.py").write_text(script)
    result = cli(
        "-vv",
        "apply",
        "-c",
        "org.yaml",
        "--auto-approve",
        "--parallelism",
        "1",
        "--audit-log",
        "audit.jsonl",
        "--secrets-command",
        f"{sys.executable} leaky.py {{name}}",
        extra_env=env,
    )
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "leaking ***" in out  # the command's stderr is shown, redacted
    audit = (cli.cwd / "audit.jsonl").read_text()
    assert "leaking ***" in audit
    delivered = (cli.cwd / "first-secret").read_text()
    assert delivered.startswith("whsec_")
    for secret in (cli.token, config_secret, delivered):
        for shown in (out, audit):
            assert secret not in shown
            assert secret[3:-3] not in shown
            assert secret[:12] not in shown


def test_an_operator_list_outside_the_repository_allows_more_secret_variables(
    cli: Cli,
    sandbox,  # noqa: ANN001
) -> None:
    body = """\
users:
  - {email: admin@example.com, role: admin}
workspaces:
  - name: app
    transcription:
      deepgram: {api_key: {env: DG_PROD}}
"""
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, body))
    refused = cli("validate", "-c", "org.yaml")
    assert refused.returncode == 1
    assert "org.yaml:10:33:" in refused.stderr and "does not name a secret" in refused.stderr
    assert "PROVISIONER_ALLOWED_SECRET_ENVS=DG_PROD" in refused.stderr
    allowed = cli("validate", "-c", "org.yaml", extra_env={"PROVISIONER_ALLOWED_SECRET_ENVS": "OTHER, DG_*"})
    assert allowed.returncode == 0, allowed.stderr
    # No operator entry makes the tool's own key variables readable.
    own = body.replace("DG_PROD", "RECALL_ADMIN_KEY")
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, own))
    still = cli("validate", "-c", "org.yaml", extra_env={"PROVISIONER_ALLOWED_SECRET_ENVS": "*"})
    assert still.returncode == 1 and "RECALL or PROVISIONER as a word" in still.stderr


def test_a_file_reference_into_git_is_refused_as_written_and_through_a_link(
    cli: Cli,
    sandbox,  # noqa: ANN001
) -> None:
    git = cli.cwd / ".git"
    git.mkdir()
    (git / "config").write_text('[http]\n\textraheader = "AUTHORIZATION: basic c2VjcmV0LXRva2Vu"\n')
    body = """\
users:
  - {email: admin@example.com, role: admin}
workspaces:
  - name: app
    transcription:
      deepgram: {api_key: {file: .git/config}}
"""
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, body))
    refused = cli("validate", "-c", "org.yaml")
    assert refused.returncode == 1
    assert "org.yaml:10:" in refused.stderr and "dot-directory (`.git`)" in refused.stderr
    assert "c2VjcmV0LXRva2Vu" not in refused.stdout + refused.stderr
    # A link with an innocent name that leads into .git is refused when the value is read.
    (cli.cwd / "deepgram-key").symlink_to(git / "config")
    (cli.cwd / "org.yaml").write_text(
        org_config(sandbox.base_url, body.replace(".git/config", "deepgram-key"))
    )
    # A plan reads no value; the apply that would send it refuses before any change.
    plan = cli("apply", "-c", "org.yaml", "--auto-approve", "--secrets-dir", "sink")
    assert plan.returncode == 1
    assert "deepgram-key leads into `.git`" in plan.stderr
    assert "c2VjcmV0LXRva2Vu" not in plan.stdout + plan.stderr
