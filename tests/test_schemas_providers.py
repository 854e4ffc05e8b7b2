"""The credential providers agree everywhere they are listed: model, sandbox, contract, config schema.

``model.PROVIDERS`` is the one list of the management contract's providers;
``model.CONFIG_PROVIDERS`` adds ``zoom``, which a config declares under
``platforms`` but which is Recall.ai's real Zoom app, never a contract
credential (issue 22).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from provisioner import model
from provisioner.sandbox import credentials as sandbox_credentials
from tests.contract import load_contract


def _config_schema() -> dict[str, Any]:
    text = files("provisioner.schemas").joinpath("config.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def _spec(p: model.Provider) -> tuple[str, set[str], set[str], set[str]]:
    return (p.kind, set(p.fields), set(p.optional_fields), set(p.secrets))


def test_the_contract_lists_the_models_providers_and_not_zoom() -> None:
    schemas = load_contract()["components"]["schemas"]
    assert schemas["CredentialProvider"]["enum"] == list(model.PROVIDERS)
    assert [branch["title"] for branch in schemas["CredentialCreate"]["oneOf"]] == list(model.PROVIDERS)
    assert model.ZOOM not in model.PROVIDERS
    assert "/api/v2/zoom-oauth-apps/" in schemas["CredentialProvider"]["description"]


def test_the_sandbox_has_the_models_providers_with_the_same_fields_and_secrets() -> None:
    assert list(sandbox_credentials.PROVIDERS) == list(model.PROVIDERS)
    for name, spec in sandbox_credentials.PROVIDERS.items():
        optional = set(spec.optional)
        assert (spec.kind, set(spec.fields) - optional, optional, set(spec.secrets)) == _spec(
            model.PROVIDERS[name]
        ), name


def test_what_the_sandbox_refuses_for_the_real_api_is_a_real_api_path() -> None:
    real = load_contract("recall-v2.yaml")["paths"]
    assert set(sandbox_credentials.ON_THE_REAL_API) == {model.ZOOM}
    for name, (_, path) in sandbox_credentials.ON_THE_REAL_API.items():
        assert path in real and name not in sandbox_credentials.PROVIDERS


def test_the_config_schema_sections_take_the_config_providers() -> None:
    defs = _config_schema()["$defs"]
    declared = {
        kind: {
            name: set(spec.get("required", ()))
            for name, spec in defs[section]["properties"].items()
            if name != "google_login_groups"  # Recall.ai's v2 API, not a provider
        }
        for section, kind in (("transcription", model.TRANSCRIPTION), ("platforms", model.PLATFORM))
    }
    expected = {
        kind: {
            p.name: set(p.fields) | set(p.secrets) for p in model.CONFIG_PROVIDERS.values() if p.kind == kind
        }
        for kind in (model.TRANSCRIPTION, model.PLATFORM)
    }
    assert declared == expected
    assert model.ZOOM in declared[model.PLATFORM]
