"""Helpers shared by the workspace-settings tests (webhooks, credentials, verification secret)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.sandbox.test_sandbox_api_keys import create_workspace, stored_text

__all__ = ["create_workspace", "digest_of", "matches", "stored_text"]


def digest_of(secret: str, digest: dict[str, Any]) -> str:
    """What a client computes to compare its local value with a ``SecretDigest``."""
    assert digest["algorithm"] == "pbkdf2_sha256"
    return hashlib.pbkdf2_hmac(
        "sha256", secret.encode("utf-8"), bytes.fromhex(digest["salt"]), digest["iterations"]
    ).hex()


def matches(secret: str, digest: dict[str, Any]) -> bool:
    return digest_of(secret, digest) == digest["digest"]
