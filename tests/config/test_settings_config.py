"""Workspace settings in the config: templates, environment defaults, secret references, what is managed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioner.config import load_config
from provisioner.errors import ConfigError, SecretReferenceError
from provisioner.model import SecretRef
from provisioner.secrets.refs import MAX_FILE_BYTES, resolve

HEAD = """\
version: 1
organization: {region: us-east-1}
users:
  - {email: alice@acme.com, role: admin}
environments:
  staging: {members: [alice@acme.com]}
  production:
    members: [alice@acme.com]
    webhooks:
      - {url: "https://hooks.acme.example/prod-default", events: [bot.done]}
    transcription:
      deepgram: {api_key: {env: DG_KEY_PROD_DEFAULT}}
"""


def load(tmp_path: Path, workspaces: str):
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + "workspaces:\n" + workspaces)
    return load_config(path)


def errors(tmp_path: Path, workspaces: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, workspaces)
    return str(caught.value)


def test_templates_environment_defaults_and_the_workspace_winning(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
  - name: note-taker
    environments: [staging, production]
    webhooks:
      - {url: "https://hooks.acme.example/{workspace}/{environment}", events: [transcript.done, bot.done]}
    transcription:
      deepgram: {api_key: {env: "DG_KEY_{WORKSPACE}_{ENVIRONMENT}"}, environments: [staging]}
""",
    )
    hooks = sorted((h.workspace, h.url, h.events) for h in config.desired.webhooks.values())
    assert hooks == [
        (
            "note-taker-production",
            "https://hooks.acme.example/note-taker/production",
            ("bot.done", "transcript.done"),
        ),
        ("note-taker-production", "https://hooks.acme.example/prod-default", ("bot.done",)),
        (
            "note-taker-staging",
            "https://hooks.acme.example/note-taker/staging",
            ("bot.done", "transcript.done"),
        ),
    ]
    creds = {k: dict(c.secrets)["api_key"] for k, c in config.desired.credentials.items()}
    # staging: the workspace's own (templated, upper-cased, - as _); production: the environment's default
    assert creds == {
        ("note-taker-staging", "deepgram"): SecretRef("env", "DG_KEY_NOTE_TAKER_STAGING"),
        ("note-taker-production", "deepgram"): SecretRef("env", "DG_KEY_PROD_DEFAULT"),
    }
    production = config.desired.workspaces["note-taker-production"]
    staging = config.desired.workspaces["note-taker-staging"]
    assert production.manages == ("webhooks", "transcription") and staging.manages == (
        "webhooks",
        "transcription",
    )
    where = {u.ref.name: u.where for u in config.secret_uses}
    assert where["DG_KEY_NOTE_TAKER_STAGING"].endswith("c.yaml:19:27")  # the reference itself


def test_a_section_named_nowhere_is_not_managed(tmp_path: Path) -> None:
    config = load(tmp_path, "  - name: plain\n    members: [alice@acme.com]\n")
    assert config.desired.workspaces["plain"].manages == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('webhooks: [{url: "https://x.example/{env}", events: [bot.done]}]', "unknown template `{env}`"),
        ('webhooks: [{url: "http://hooks.example/x", events: [bot.done]}]', "plain http"),
        (
            'webhooks: [{url: "https://u:p@hooks.example/x", events: [bot.done]}]',
            "may not hold a user or password",
        ),
        ('webhooks: [{url: "https://h.example/x", events: [bot.dance]}]', "`bot.dance` is not a valid"),
        ("transcription: {deepgram: {api_key: sk-live-123}}", "a secret must be a reference"),
        ("transcription: {deepgram: {api_key: {env: RECALL_API_KEY}}}", "holds the API key"),
        ("transcription: {deepgram: {api_key: {env: ACTIONS_RUNTIME_TOKEN}}}", "namespace of a CI system"),
        # Issue 21: {env:} is an allow rule, {file:} refuses dot-directories.
        ("transcription: {deepgram: {api_key: {env: CI_REGISTRY_PASSWORD}}}", "namespace of a CI system"),
        ("transcription: {deepgram: {api_key: {env: CI_REPOSITORY_URL}}}", "namespace of a CI system"),
        ("transcription: {deepgram: {api_key: {env: GITHUB_TOKEN}}}", "namespace of a CI system"),
        ("transcription: {deepgram: {api_key: {env: RECALL_ADMIN_KEY}}}", "RECALL or PROVISIONER as a word"),
        ("transcription: {deepgram: {api_key: {env: ACME_RECALL_KEY}}}", "RECALL or PROVISIONER as a word"),
        ("transcription: {deepgram: {api_key: {env: PROVISIONER_KEY}}}", "RECALL or PROVISIONER as a word"),
        ("transcription: {deepgram: {api_key: {env: HOME}}}", "does not name a secret"),
        ("transcription: {deepgram: {api_key: {env: DEEPGRAM_URL}}}", "does not name a secret"),
        ("transcription: {deepgram: {api_key: {file: .git/config}}}", "dot-directory (`.git`)"),
        ("transcription: {deepgram: {api_key: {file: ./.git/config}}}", "dot-directory (`.git`)"),
        ("transcription: {deepgram: {api_key: {file: secrets/.aws/credentials}}}", "dot-directory (`.aws`)"),
        ("transcription: {deepgram: {api_key: {file: .env}}}", "dot-directory (`.env`)"),
        ("transcription: {deepgram: {api_key: {file: ../outside}}}", "inside the config's directory"),
        ("transcription: {deepgram: {api_key: {file: /etc/passwd}}}", "relative to the config's directory"),
        ("transcription: {deepgram: {api_key: {env: A, file: b}}}", "a secret must be a reference"),
        (
            "transcription: {aws_transcribe: {region: us-east-1, secret_access_key: {env: A}}}",
            "access_key_id",
        ),
        ("platforms: {zoom: {client_id: x, client_secret: {env: A}}}", "webhook_secret"),
        ("transcription: {whisper: {api_key: {env: A}}}", "unknown key `whisper`"),
    ],
)
def test_bad_settings_are_located_errors(tmp_path: Path, entry: str, message: str) -> None:
    text = errors(tmp_path, f"  - name: plain\n    {entry}\n")
    assert message in text and "c.yaml:" in text
    assert "sk-live-123" not in text


def test_environments_filter_needs_a_workspace_with_environments_and_a_known_one(tmp_path: Path) -> None:
    text = errors(
        tmp_path,
        """\
  - name: plain
    webhooks: [{url: "https://h.example/a", events: [bot.done], environments: [staging]}]
  - name: app
    environments: [staging]
    webhooks: [{url: "https://h.example/b", events: [bot.done], environments: [prod]}]
""",
    )
    assert "this workspace has no environments" in text
    assert "this workspace has no environment `prod`" in text


def test_a_url_listed_twice_for_one_instance_is_an_error(tmp_path: Path) -> None:
    text = errors(
        tmp_path,
        "  - name: plain\n    webhooks:\n"
        '      - {url: "https://h.example/a", events: [bot.done]}\n'
        '      - {url: "https://h.example/a", events: [bot.fatal]}\n',
    )
    assert "is listed twice for plain" in text


def test_resolve_reads_files_inside_the_folder_only_and_names_every_missing_one(tmp_path: Path) -> None:
    (tmp_path / "inside").write_text("s3cr3t-value\n")
    (tmp_path / "big").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_text("stolen")
    os.symlink(outside, tmp_path / "link")
    config = load(
        tmp_path,
        """\
  - name: plain
    transcription:
      deepgram: {api_key: {file: inside}}
      rev: {api_key: {file: link}}
      gladia: {api_key: {file: big}}
      elevenlabs: {api_key: {file: missing}}
      assembly_ai: {api_key: {env: NOT_SET_ANYWHERE_KEY}}
""",
    )
    with pytest.raises(SecretReferenceError) as caught:
        resolve(config.secret_uses, base=config.secret_base, environ={})
    text = str(caught.value)
    assert "4 secret references cannot be read" in text
    assert "leads outside the config's directory" in text and "stolen" not in text
    assert "larger than 64 KiB" in text and "does not exist" in text and "is not set" in text
    values = resolve(
        [u for u in config.secret_uses if u.ref.name == "inside"], base=config.secret_base, environ={}
    )
    assert values.value(SecretRef("file", "inside")) == "s3cr3t-value"  # one trailing newline dropped
    assert "s3cr3t" not in repr(values) + str(values)
