"""Per-instance keys for Recall.ai's v2 API: ``organization.workspace_token_env`` and ``workspaces[].token_env``."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.config import load_config
from provisioner.errors import ConfigError

HEAD = """\
version: 1
organization:
  region: us-east-1
  workspace_token_env: "RECALL_API_KEY_{ENVIRONMENT}"
environments:
  staging: {}
  production: {}
"""


def load(tmp_path: Path, text: str):  # noqa: ANN201
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def test_each_instance_gets_its_own_key_variable_and_a_workspace_may_override(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        HEAD
        + """\
workspaces:
  - name: notetaker
    environments: [staging, production]
  - name: sales-bot
    environments: [production]
    token_env: "SALES_RECALL_KEY_{WORKSPACE}_{ENVIRONMENT}"
""",
    )
    assert dict(config.workspace_token_envs) == {
        "notetaker-staging": "RECALL_API_KEY_STAGING",
        "notetaker-production": "RECALL_API_KEY_PRODUCTION",
        "sales-bot-production": "SALES_RECALL_KEY_SALES_BOT_PRODUCTION",
    }
    assert config.organization.workspace_token_env == "RECALL_API_KEY_{ENVIRONMENT}"


def test_without_a_template_no_instance_has_a_key_of_its_own(tmp_path: Path) -> None:
    config = load(tmp_path, "version: 1\norganization: {region: us-east-1}\nworkspaces: [{name: app}]\n")
    assert dict(config.workspace_token_envs) == {}


def test_a_key_variable_outside_the_naming_rule_is_refused_where_it_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load(
            tmp_path,
            HEAD
            + """\
workspaces:
  - name: app
    environments: [production]
    token_env: "AWS_SECRET_ACCESS_KEY"
""",
        )
    message = str(refused.value)
    assert "c.yaml:11:" in message and "workspaces[0].token_env" in message
    assert "the key variable of app-production may not name AWS_SECRET_ACCESS_KEY" in message
    assert "PROVISIONER_ALLOWED_TOKEN_ENVS=AWS_SECRET_ACCESS_KEY" in message


def test_the_operator_may_allow_another_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIONER_ALLOWED_TOKEN_ENVS", "ZOOM_KEY_PRODUCTION")
    config = load(
        tmp_path,
        HEAD.replace("RECALL_API_KEY_{ENVIRONMENT}", "ZOOM_KEY_{ENVIRONMENT}")
        + "workspaces:\n  - name: app\n    environments: [production]\n",
    )
    assert dict(config.workspace_token_envs) == {"app-production": "ZOOM_KEY_PRODUCTION"}


def test_an_environment_template_needs_a_workspace_with_environments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, HEAD + "workspaces: [{name: plain}]\n")
    assert "organization.workspace_token_env" in str(refused.value)
    assert "{ENVIRONMENT} needs a workspace with environments" in str(refused.value)
