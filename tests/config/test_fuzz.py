"""Whatever the input, the loader returns a Config or raises a clean ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.config import load_config
from provisioner.errors import ConfigError
from provisioner.model import Config

KEYS = [
    "version",
    "organization",
    "region",
    "users",
    "email",
    "role",
    "groups",
    "workspaces",
    "name",
    "environments",
    "members",
    "user",
    "expires",
    "reason",
    "policy",
    "max_removals",
    "min_admins",
    "protected_users",
    "ignore",
    "api_url",
    "workspace_name_format",
    "x",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "admin",
            "developer",
            "us-east-1",
            "a@b.co",
            "@g",
            "2026-01-01",
            "no",
            "{workspace}-{environment}",
            "25%",
            "http://x",
            "",
        ]
    ),
    st.text(max_size=8),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5),
    ),
    max_leaves=25,
)


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(data)
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as error:
            assert error.issues
            for issue in error.issues:
                assert issue.message and "Traceback" not in issue.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS)
def test_random_documents(doc: object) -> None:
    _check(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {
            "version": st.sampled_from([1, 1, 2, "1"]),
            "organization": st.fixed_dictionaries({"region": st.sampled_from(["us-east-1", "x", 3])}),
            "users": st.lists(
                st.fixed_dictionaries(
                    {
                        "email": st.sampled_from(["a@b.co", "B@b.co", "bad", "c@b.co"]),
                        "role": st.sampled_from(["admin", "developer", "Admin", True]),
                    }
                ),
                max_size=4,
            ),
            "groups": st.dictionaries(
                st.sampled_from(["g", "h"]),
                st.lists(st.sampled_from(["a@b.co", "@g", "@h", "z@b.co"]), max_size=3),
            ),
            "workspaces": st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["w", "w-p", "no", 7])}, optional={"members": DOCS}
                ),
                max_size=3,
            ),
        }
    )
)
def test_config_shaped_documents(doc: dict) -> None:
    _check(yaml.safe_dump(doc).encode("utf-8"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        DOCS,
        st.fixed_dictionaries(
            {"version": st.sampled_from([1, True, 1.0])},
            optional={
                "users": st.lists(
                    st.fixed_dictionaries(
                        {
                            "email": st.sampled_from(["a@b.co", "bad", 3]),
                            "role": st.sampled_from(["admin", "x", None]),
                        }
                    ),
                    max_size=2,
                ),
                "workspaces": st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["w", "-w", 1])},
                        optional={
                            "environments": st.lists(st.sampled_from(["p", "q"]), max_size=2),
                            "members": DOCS,
                        },
                    ),
                    max_size=2,
                ),
                "policy": st.fixed_dictionaries(
                    {},
                    optional={
                        "max_removals": st.sampled_from([3, -1, "25%", "101%", 2.0, True]),
                        "min_admins": st.sampled_from([0, -1, 1.5, "1"]),
                    },
                ),
                "environments": st.dictionaries(
                    st.sampled_from(["p", "-q"]), st.one_of(st.none(), DOCS), max_size=2
                ),
            },
        ),
    )
)
def test_fast_check_agrees_with_jsonschema(doc: object) -> None:
    from provisioner.config.schema import _fast_check, _validator

    fast = _fast_check()
    assert fast is not None  # the schema only uses keywords the fast path knows
    assert fast(doc) == _validator().is_valid(doc)
