"""Every plan form shows every section a newcomer's plan can have (issue 23), on the embedded sandbox.

Two holes the forms had: the pull-request comment (``--format markdown``) failed with a
traceback on any Zoom app or Google login group change, because it filed those changes
as access changes; and the text plan left out ``--base``'s policy changes whenever the
plan had changes (only a plan with none showed them).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import Cli

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "ZOOM_CLIENT_SECRET_STAGING": "cs-staging",
    "ZOOM_CLIENT_SECRET_PRODUCTION": "cs-production",
    "ZOOM_WEBHOOK_SECRET_STAGING": "ws-staging",
    "ZOOM_WEBHOOK_SECRET_PRODUCTION": "ws-production",
}
GROUPS = """\
      google_login_groups:
        - name: meet-bots
          logins:
            - email: bot1@acme.example
              sso_v2_workspace_domain: acme.example
              sso_v2_private_key: {file: "keys/bot1-{environment}.pem"}
              sso_v2_cert: {file: "keys/bot1.crt"}
"""


def _integrations(tmp_path: Path) -> Cli:
    """examples/integrations.yaml with a Google login group, beside its key files."""
    text = (ROOT / "examples" / "integrations.yaml").read_text(encoding="utf-8")
    (tmp_path / "org.yaml").write_text(text.rstrip("\n") + "\n" + GROUPS, encoding="utf-8")
    keys = tmp_path / "keys"
    keys.mkdir()
    for env in ("staging", "production"):
        (keys / f"bot1-{env}.pem").write_text(
            f"-----BEGIN PRIVATE KEY-----\npem-{env}\n-----END PRIVATE KEY-----\n"
        )
    (keys / "bot1.crt").write_text("-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n")
    return Cli(tmp_path, "unused-key-for-the-embedded-sandbox", env=dict(SECRETS))


def _plan(cli: Cli, form: str, *extra: str) -> str:
    result = cli(
        "plan", "-c", "org.yaml", "--sandbox", "sandbox.db", "--detailed-exitcode", "--format", form, *extra
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    return result.stdout


def test_every_form_shows_zoom_app_and_google_login_group_changes(tmp_path: Path) -> None:
    cli = _integrations(tmp_path)
    first = cli("apply", "-c", "org.yaml", "--sandbox", "sandbox.db", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    # A replacement (client_id) and a change of the group's mode: one plan with both types.
    config = (tmp_path / "org.yaml").read_text()
    config = config.replace('client_id: "notetaker-{environment}"', 'client_id: "notetaker2-{environment}"')
    config = config.replace(
        "        - name: meet-bots\n", "        - name: meet-bots\n          login_mode: only_if_required\n"
    )
    (tmp_path / "org.yaml").write_text(config)
    text = _plan(cli, "text")
    markdown = _plan(cli, "markdown")
    document = json.loads(_plan(cli, "json"))
    for env in ("staging", "production"):
        zoom = f"Zoom OAuth app notetaker2-{env} (notetaker-{env}): REPLACE"
        group = f"Google login group meet-bots (notetaker-{env})"
        assert zoom in text and group in text
        assert zoom in markdown and group in markdown  # the comment names both, in its body
        assert f"#### `notetaker-{env}`" in markdown
    assert {c["type"] for c in document["changes"]} == {"zoom_oauth_app", "google_login_group"}
    for value in (*SECRETS.values(), "pem-staging", "pem-production"):
        assert value not in text + markdown + json.dumps(document)


ORG = """\
version: 1
organization:
  name: sandbox
  region: us-east-1
users:
  - {email: admin@example.com, role: admin}
  - {email: dana@example.com, role: developer}
"""


def test_the_text_plan_shows_base_s_policy_changes_also_when_there_are_changes(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "unused-key-for-the-embedded-sandbox")
    (tmp_path / "base.yaml").write_text(ORG)
    (tmp_path / "org.yaml").write_text(ORG)
    first = cli("apply", "-c", "org.yaml", "--sandbox", "sandbox.db", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    head = ORG + "  - {email: eli@example.com, role: developer}\npolicy:\n  min_admins: 0\n"
    (tmp_path / "org.yaml").write_text(head)
    for form in ("text", "markdown"):
        shown = _plan(cli, form, "--base", "base.yaml")
        assert "eli@example.com" in shown
        assert "Policy changes (1;" in shown, shown
        assert "policy.min_admins" in shown and "1" in shown and "0" in shown
        # First: before the secrets, the changes and the summary it judges.
        assert shown.index("Policy changes") < shown.index("eli@example.com")
