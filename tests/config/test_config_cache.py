"""The config cache's codec and key (``provisioner.config.cache``), in-process.

The codec must give back exactly the ``Config`` it was given (types
included: a tuple stays a tuple, a read-only mapping stays read-only), build
nothing but the model's own types, and the key must change with everything
loading depends on. The CLI's use of it is in ``tests/e2e/test_config_cache.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from provisioner.config import cache as cache_module
from provisioner.config import load_config, load_configs
from provisioner.config.cache import CacheMiss, ConfigCache, decode, encode, load_cached
from provisioner.endpoint import OperatorAllowances
from provisioner.export import export_config
from provisioner.model import Config, State, User
from tests.export.export_strategies import Org, organizations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "quickstart.yaml",
    ROOT / "examples" / "acme.yaml",
    ROOT / "examples" / "integrations.yaml",
    ROOT / "examples" / "multi-file",
]


def round_trip(configs: list[Config]) -> list[Config]:
    return decode(json.dumps(encode(configs), ensure_ascii=False).encode())


def same_types(a: Any, b: Any, where: str = "config") -> None:
    """``a`` and ``b`` are made of the same types all the way down (``==`` alone lets a
    list equal nothing but a list, yet a MappingProxyType equals a dict)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} is not {type(b).__name__}"
    if is_dataclass(a) and not isinstance(a, type):
        for f in fields(a):
            same_types(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, tuple | list):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_types(x, y, f"{where}[{i}]")
    elif isinstance(a, dict | MappingProxyType):
        for key in a:
            same_types(a[key], b[key], f"{where}[{key!r}]")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_comes_back_equal_and_of_the_same_types(example: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPGRAM_KEY_DEVELOPMENT", "x")
    configs = load_configs([str(example)])
    back = round_trip(configs)
    assert back == configs
    same_types(back, configs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(org=organizations())
def test_any_exported_organization_comes_back_equal(org: Org, tmp_path: Path) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(export_config(org.identity, org.current, workspace_name_format=org.workspace_name_format))
    config = load_config(path)
    back = round_trip([config])
    assert back == [config]
    same_types(back, [config])


def test_an_entry_builds_only_the_models_types() -> None:
    config = load_config(EXAMPLES[0])
    text = json.dumps(encode([config]), separators=(",", ":"))
    forged = [
        text.replace('{"$Policy":[', '{"$Path":[', 1),  # not a model type
        text.replace('{"$Policy":[', '{"$__class__":[', 1),
        text.replace('{"$Policy":[', '{"$Policy":[1,', 1),  # one argument too many
        text.replace('{"(":', '{"(":1,"x":', 1),  # not a one-key object
        text.replace('["User",', '["Path",', 1),  # a state's row of no model type
        text.replace('["User",', '["Config",', 1),  # of the wrong model type
        text.replace('["User",', '[],["User",', 1),  # an empty row
        text.replace('["User",', '[7,"User",', 1),
    ]
    assert len(set(forged)) == len(forged) and text not in forged
    for entry in [*forged, '{"$Config": []}', "[1, 2]", "{"]:
        with pytest.raises(CacheMiss):
            decode(entry)


def test_what_the_model_cannot_say_is_not_cached() -> None:
    config = load_config(EXAMPLES[0])

    @dataclass(frozen=True)
    class Stranger:
        name: str

    with pytest.raises(TypeError):
        encode([replace(config, environments=(Stranger("x"),))])
    # A state whose keys are not its objects' identities cannot be stored as lists.
    users = dict(config.desired.users)
    users["someone-else@example.com"] = users["admin@example.com"]
    with pytest.raises(TypeError):
        encode([replace(config, desired=replace(config.desired, users=MappingProxyType(users)))])


def test_a_state_comes_back_with_its_keys() -> None:
    state = State.build([User("a@example.com", "admin"), User("b@example.com", "developer")])
    config = replace(load_config(EXAMPLES[0]), desired=state)
    (back,) = round_trip([config])
    assert list(back.desired.users) == ["a@example.com", "b@example.com"]
    assert isinstance(back.desired.users, MappingProxyType)


def test_the_key_changes_with_everything_loading_depends_on(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "org.yaml"
    config.write_text(EXAMPLES[0].read_text())
    monkeypatch.chdir(tmp_path)
    cache = ConfigCache(tmp_path / "cache", tool_version="1.0")
    allowances = OperatorAllowances()
    key = cache.key(["org.yaml"], allowances)
    assert key is not None and key == cache.key(["org.yaml"], allowances)

    config.write_text(config.read_text() + "\n")
    assert cache.key(["org.yaml"], allowances) not in (None, key)  # the bytes
    config.write_text(EXAMPLES[0].read_text())
    assert cache.key(["org.yaml"], allowances) == key
    assert ConfigCache(tmp_path / "cache", tool_version="1.1").key(["org.yaml"], allowances) != key
    assert cache.key([str(config)], allowances) != key  # the -c argument (sources, secret_base)
    other = OperatorAllowances(token_envs=frozenset({"ACME_KEY"}))
    assert cache.key(["org.yaml"], other) != key  # what the operator allows
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert cache.key(["../org.yaml"], allowances) != key
    assert cache.key(["missing.yaml"], allowances) is None  # loading reports it


def test_an_entry_holds_secret_references_never_their_values(tmp_path: Path, monkeypatch) -> None:
    values = {"DEEPGRAM_KEY_DEVELOPMENT": "dev-v4lue", "DEEPGRAM_KEY_STAGING": "stg-v4lue"}
    values["DEEPGRAM_KEY_PRODUCTION"] = "prd-v4lue"
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    cache = ConfigCache(tmp_path / "cache", tool_version="1.0")
    paths = [str(EXAMPLES[0])]
    key = cache.key(paths, OperatorAllowances())
    assert key is not None
    cache.save(paths, key, load_configs(paths))
    saved = cache.path(paths).read_bytes()
    assert b"DEEPGRAM_KEY_PRODUCTION" in saved  # the reference, by name
    assert not any(value.encode() in saved for value in values.values())
    assert cache.load(paths, key) == load_configs(paths)


def test_the_key_follows_the_code_that_loads(tmp_path: Path, monkeypatch) -> None:
    # A source checkout keeps its version while the loader or the model changes.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org.yaml").write_text(EXAMPLES[0].read_text())
    cache = ConfigCache(tmp_path / "cache", tool_version="1.0")
    key = cache.key(["org.yaml"], OperatorAllowances())
    monkeypatch.setattr(cache_module, "_code_digest", lambda: "another loader")
    assert cache.key(["org.yaml"], OperatorAllowances()) != key


def test_a_config_edited_while_it_loads_is_not_saved_under_the_old_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "org.yaml"
    config.write_text(EXAMPLES[0].read_text())
    cache = ConfigCache(tmp_path / "cache", tool_version="1.0")

    def load_while_edited(paths: Sequence[str], allowances: OperatorAllowances) -> list[Config]:
        config.write_text(config.read_text().replace("eli@example.com", "eve@example.com"))
        return load_configs(list(paths), allowances=allowances)

    (loaded,), cached = load_cached(["org.yaml"], OperatorAllowances(), cache, load_while_edited)
    assert not cached and "eve@example.com" in loaded.desired.users
    assert not cache.path(["org.yaml"]).exists()  # it would have served the new config for the old bytes
