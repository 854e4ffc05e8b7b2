"""Apply says where each server-made secret went, by its destination name (issue 23).

The real CLI against the sandbox over HTTP. One production instance gets two webhooks on
different hosts and two API keys; one of each chooses its name with ``sink:``, the other
keeps the default. For every secret the server makes, apply's line names the destination
(the ``sink:`` name or the default name), a ``--secrets-dir`` file is named after it, and
a ``--secrets-command`` gets it as ``{name}``. The names tell the two webhooks apart
(their hosts), and none is the old ``webhook-<8 hex>``.

The expected names are written out here from the config's rules (``sink:`` as written,
defaults ``RECALL_<INSTANCE>_WEBHOOK_<HOST>_<8 hex>`` and ``RECALL_<INSTANCE>_API_KEY_<NAME>``),
never read back from the output under test.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import subprocess
import sys

from tests.support import Api, Cli, org_config

INSTANCE = "notetaker-production"
BILLING = "https://billing.example.invalid/recall"
ALERTS = "https://alerts.example.invalid/recall"

CONFIG = f"""\
users:
  - {{email: admin@example.com, role: admin}}
  - {{email: svc-ci@example.com, role: developer, service_account: true}}
environments:
  production: {{members: [svc-ci@example.com]}}
workspaces:
  - name: notetaker
    environments: [production]
    webhooks:
      - url: "{BILLING}"
        events: [bot.done]
      - url: "{ALERTS}"
        events: [bot.done]
        sink: "ALERTS_HOOK_{{ENVIRONMENT}}"
    api_keys:
      - name: ci-deploy
        owner: svc-ci@example.com
        sink: "CI_DEPLOY_KEY_{{ENVIRONMENT}}"
      - name: bot-runner
        owner: svc-ci@example.com
"""


def _hash8(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:8].upper()


# object as apply's line names it -> its destination name
EXPECTED = {
    f"webhook {INSTANCE} {BILLING}": f"RECALL_NOTETAKER_PRODUCTION_WEBHOOK_BILLING_EXAMPLE_INVALID_{_hash8(BILLING)}",
    f"webhook {INSTANCE} {ALERTS}": "ALERTS_HOOK_PRODUCTION",
    f"api_key {INSTANCE} ci-deploy": "CI_DEPLOY_KEY_PRODUCTION",
    f"api_key {INSTANCE} bot-runner": "RECALL_NOTETAKER_PRODUCTION_API_KEY_BOT_RUNNER",
}
KEY_NAMES = {
    "ci-deploy": "CI_DEPLOY_KEY_PRODUCTION",
    "bot-runner": "RECALL_NOTETAKER_PRODUCTION_API_KEY_BOT_RUNNER",
}


def write(cli: Cli, sandbox) -> None:  # noqa: ANN001
    (cli.cwd / "org.yaml").write_text(org_config(sandbox.base_url, CONFIG))


def applied_lines(output: str) -> dict[str, str]:
    """Apply's ``applied: create <object> (<note>)`` lines of the objects that make a secret."""
    found = {}
    for line in output.splitlines():
        match = re.fullmatch(r"applied: create (webhook|api_key) (\S+) (\S+) \((.*)\)", line)
        if match:
            found[f"{match[1]} {match[2]} {match[3]}"] = match[4]
    return found


def test_apply_names_each_secret_s_destination_and_the_files_follow_it(cli: Cli, sandbox, api: Api) -> None:  # noqa: ANN001
    write(cli, sandbox)
    result = cli("apply", "-c", "org.yaml", "--auto-approve", "--secrets-dir", "sink")
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    lines = applied_lines(output)
    assert sorted(lines) == sorted(EXPECTED), output
    folder = cli.cwd / "sink" / "sandbox" / INSTANCE
    for what, name in EXPECTED.items():
        # "signing secret delivered to <dir>/<name>" / "key ak_… made, its secret delivered to <dir>/<name>"
        assert f"delivered to {folder / name}" in lines[what], (what, lines[what])
    # The plan shown before the changes says it too, by the same names.
    for name in EXPECTED.values():
        assert f"{name} <- " in result.stdout, name
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPECTED.values())
    assert not any(re.fullmatch(r"webhook-[0-9a-f]{8}", p.name) for p in folder.iterdir())
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hooks = {p.read_text() for p in folder.iterdir() if "HOOK" in p.name}
    assert len(hooks) == 2 and all(h.startswith("whsec_") for h in hooks)
    # Each key file holds that key: it authenticates, and its prefix is the live key's of that name.
    live = {k["name"]: k for k in api.list("/api_keys/") if not k["disabled"]}
    for key_name, name in KEY_NAMES.items():
        value = (folder / name).read_text()
        status, _, _ = Api(sandbox.base_url, value).request("GET", "/me/")
        assert status == 200
        assert value.startswith(live[key_name]["prefix"]), (key_name, live[key_name]["prefix"])
        assert value not in output


def test_a_secrets_command_is_named_in_apply_s_line_and_gets_the_destination_name(
    cli: Cli,
    sandbox,  # noqa: ANN001
) -> None:
    write(cli, sandbox)
    (cli.cwd / "record.py").write_text(
        "import json, os, sys\n"
        "with open('got.jsonl', 'a') as f:\n"
        "    f.write(json.dumps({'name': sys.argv[1], 'object': os.environ['PROVISIONER_SECRET_OBJECT']}) + '\\n')\n"
    )
    command = f"{sys.executable} record.py {{name}}"
    result: subprocess.CompletedProcess = cli(
        "apply", "-c", "org.yaml", "--auto-approve", "--secrets-command", command
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = applied_lines(result.stdout + result.stderr)
    assert sorted(lines) == sorted(EXPECTED)
    for what, name in EXPECTED.items():
        assert f"delivered to command {sys.executable} (name {name})" in lines[what], (what, lines[what])
    got = [json.loads(line) for line in (cli.cwd / "got.jsonl").read_text().splitlines()]
    assert sorted(g["name"] for g in got) == sorted(EXPECTED.values())
    by_object = {g["object"]: g["name"] for g in got}
    assert by_object[f"webhook {BILLING}"] == EXPECTED[f"webhook {INSTANCE} {BILLING}"]
    assert by_object[f"webhook {ALERTS}"] == "ALERTS_HOOK_PRODUCTION"
