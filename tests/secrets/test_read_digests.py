"""Digests of the secrets Recall.ai's v2 API returns in clear: fast in memory, slow where published."""

from __future__ import annotations

from dataclasses import replace

from provisioner.model import SecretDigest, SecretRef, State, ZoomApp
from provisioner.plan.fingerprint import state_fingerprint
from provisioner.resources.base import read_secret_digest
from provisioner.secrets.refs import READ_ALGORITHM, SecretValues

REF = SecretRef("env", "ZOOM_SECRET")


def test_a_read_digest_compares_the_value_in_memory() -> None:
    digest = read_secret_digest("s3cret-value", "app-1/client_secret")
    values = SecretValues({REF: "s3cret-value"})
    assert values.matches(REF, digest)
    assert not SecretValues({REF: "other"}).matches(REF, digest)
    # Stable across reads (the fingerprint stays put); salted per object and secret.
    assert digest == read_secret_digest("s3cret-value", "app-1/client_secret")
    assert digest.digest != read_secret_digest("s3cret-value", "app-2/client_secret").digest


def test_a_server_cannot_pass_a_fast_digest_off_as_one_of_ours() -> None:
    ours = read_secret_digest("s3cret-value", "app-1/client_secret")
    # The same fields, as a server's answer would be parsed: not compared (too weak).
    forged = SecretDigest(READ_ALGORITHM, ours.iterations, ours.salt, ours.digest)
    assert not SecretValues({REF: "s3cret-value"}).matches(REF, forged)


def _state(secret: str) -> State:
    app = ZoomApp(
        workspace="notetaker-production",
        client_id="zoom-1",
        digests=(("client_secret", read_secret_digest(secret, "app-1/client_secret")),),
        id="app-1",
    )
    return State.build(zoom_apps=[app])


def test_the_fingerprint_follows_a_read_secret_without_publishing_its_fast_digest() -> None:
    state = _state("s3cret-value")
    assert state_fingerprint(state) == state_fingerprint(_state("s3cret-value"))
    assert state_fingerprint(state) != state_fingerprint(_state("s3cret-valuf"))
    # The fast digest counts through the slow derivation, not as itself: the same
    # fields as a plain digest (hashed as they are) give another fingerprint.
    (app,) = state.zoom_apps.values()
    ((name, fast),) = app.digests
    plain = SecretDigest(fast.algorithm, fast.iterations, fast.salt, fast.digest)
    assert state_fingerprint(state) != state_fingerprint(
        State.build(zoom_apps=[replace(app, digests=((name, plain),))])
    )
