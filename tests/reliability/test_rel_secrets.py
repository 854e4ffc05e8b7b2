"""Point 8: the API key never appears in any byte the tool writes.

The key is a sentinel; no 12 characters of it may appear either. Every command (validate, plan in every format, plan
--out, apply, apply --plan, drift, export) and every failure path (401 with the
sentinel as the wrong key, 403, 500s, connection refused, timeout, stale plan,
guard violation) runs at each verbosity; stdout, stderr, every file written
(plan files, audit logs, exports) and the messages of exceptions raised
in-process are searched for it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from provisioner.api.client import ApiClient
from provisioner.endpoint import Endpoint
from provisioner.errors import ProvisionerError
from provisioner.sandbox import seed, start_sandbox, store
from tests.local_server import LocalServer, Reply
from tests.reliability.rel_support import FAST_ENV, SENTINEL, run_cli, write_config
from tests.support import Api

BODY = """
users:
  - {email: admin@example.com, role: admin}
  - {email: bob@acme.com, role: developer}
workspaces:
  - {name: app, members: [bob@acme.com]}
"""
MORE = BODY + "  - {name: extra, members: [bob@acme.com]}\n"
DEMOTE_SELF = BODY.replace(
    "{email: admin@example.com, role: admin}", "{email: admin@example.com, role: developer}"
)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_clean(where: str, *texts: str, key: str = SENTINEL) -> None:
    """Neither the key nor any 12 characters of it (what ``redact`` promises) is in ``texts``."""
    fragments = {key[i : i + 12] for i in range(len(key) - 11)}
    for text in texts:
        assert key not in text, f"the key leaked in {where}"
        assert not [f for f in fragments if f in text], f"part of the key leaked in {where}"


@pytest.mark.parametrize("verbosity", [[], ["-v"], ["-vv"]], ids=["quiet", "v", "vv"])
def test_the_key_never_leaks_from_any_command_or_failure(
    hooked_sandbox, tmp_path: Path, verbosity: list[str]
) -> None:  # noqa: ANN001
    db = tmp_path / "org.db"
    seed(db, users=[("bob@acme.com", "developer", "active")], workspaces=["app"], memberships=[])
    sandbox, _ = hooked_sandbox(db_path=db, token=SENTINEL)
    api = Api(sandbox.base_url, SENTINEL)
    work = tmp_path / "work"
    work.mkdir()
    cfg = write_config(work / "org.yaml", sandbox.base_url, BODY)
    more = write_config(work / "more.yaml", sandbox.base_url, MORE)
    plan_a, plan_b, audit = str(work / "a.plan"), str(work / "b.plan"), str(work / "audit.jsonl")
    ran: list[tuple[str, int]] = []

    def cli(
        name: str, expect: int, *args: str, env: dict[str, str] | None = None, token: str = SENTINEL
    ) -> None:
        result = run_cli(work, token, *verbosity, *args, env={**FAST_ENV, **(env or {})})
        assert_clean(f"{name} ({' '.join(verbosity)})", result.stdout, result.stderr)
        assert result.returncode == expect, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr or verbosity == ["-vv"]
        ran.append((name, result.returncode))

    # Every command, on the success path.
    cli("validate", 0, "validate", "-c", cfg)
    for fmt in ("text", "json", "markdown"):
        cli(f"plan {fmt}", 0, "plan", "-c", cfg, "--format", fmt)
    cli("plan --out", 0, "plan", "-c", cfg, "--out", plan_a)
    cli("apply --plan", 0, "apply", "-c", cfg, "--plan", plan_a)
    cli("apply", 0, "apply", "-c", more, "--auto-approve", "--audit-log", audit)
    cli("drift", 0, "drift", "-c", more, "--audit-log", audit)
    cli(
        "export",
        0,
        "export",
        "--api-url",
        sandbox.base_url,
        "--token-env",
        "PROVISIONER_TEST_KEY",
        "-o",
        str(work / "exported.yaml"),
    )
    # Failure paths.
    cli("plan --out (to go stale)", 0, "plan", "-c", cfg, "--out", plan_b)
    bob = api.users()["bob@acme.com"]
    assert api.request("PATCH", f"/users/{bob['id']}/", {"role": "admin"})[0] == 200
    cli("stale plan", 1, "apply", "-c", cfg, "--plan", plan_b)
    cli(
        "guard violation",
        1,
        "apply",
        "-c",
        write_config(work / "self.yaml", sandbox.base_url, DEMOTE_SELF),
        "--auto-approve",
    )
    with start_sandbox(tmp_path / "other.db") as other:  # the sentinel is the WRONG key here
        wrong = write_config(work / "wrong.yaml", other.base_url, BODY)
        cli("401 plan", 1, "plan", "-c", wrong)
        cli("401 apply", 1, "apply", "-c", wrong, "--auto-approve")
    dev_db = tmp_path / "dev.db"
    seed(dev_db, users=[("dev@acme.com", "developer", "active")])
    with start_sandbox(dev_db) as dev_sandbox:  # the sentinel is a developer's key here
        keys = store.Store(dev_db)
        with keys.transaction(write=True) as conn:
            store.add_token(conn, store.user_by_email(conn, "dev@acme.com")["id"], SENTINEL)
        keys.close()
        cli(
            "403 apply",
            1,
            "apply",
            "-c",
            write_config(work / "dev.yaml", dev_sandbox.base_url, MORE),
            "--auto-approve",
        )
    with start_sandbox(tmp_path / "broken.db", token=SENTINEL, fail_rate=1.0, seed=1) as broken:
        cli("500s", 1, "plan", "-c", write_config(work / "broken.yaml", broken.base_url, BODY))
    refused = write_config(work / "refused.yaml", f"http://127.0.0.1:{closed_port()}/api/v1", BODY)
    cli("connection refused", 1, "plan", "-c", refused)
    with LocalServer(lambda seen: Reply(hang=True)) as hang:
        cli(
            "timeout",
            1,
            "plan",
            "-c",
            write_config(work / "hang.yaml", hang.base_url, BODY),
            env={"PROVISIONER_READ_TIMEOUT": "0.3", "PROVISIONER_MAX_RETRIES": "0"},
        )
        assert all(
            s.headers.get("Authorization") == f"Token {SENTINEL}" for s in hang.seen
        )  # sent, only there
    assert len(ran) == 18

    written = [p for p in work.rglob("*") if p.is_file()]
    assert {"a.plan", "audit.jsonl", "exported.yaml"} <= {p.name for p in written}
    for path in written:
        assert_clean(str(path), path.read_bytes().decode("utf-8", "replace"))


def test_exception_messages_and_reprs_never_hold_the_key(hooked_sandbox, tmp_path: Path) -> None:  # noqa: ANN001
    errors: list[ProvisionerError] = []
    with start_sandbox(tmp_path / "other.db") as other:
        for base in (other.base_url, f"http://127.0.0.1:{closed_port()}/api/v1"):
            with ApiClient(base, SENTINEL, max_retries=0) as client:
                with pytest.raises(ProvisionerError) as caught:
                    client.get("/me/")
                errors.append(caught.value)
                assert_clean("client repr", repr(client))
    # A server that echoes the key back in its error body: redacted.
    with LocalServer(
        lambda seen: Reply(400, {"detail": f"bad key {seen.headers.get('Authorization')}", "code": SENTINEL})
    ) as echo:
        with ApiClient(echo.base_url, SENTINEL) as client, pytest.raises(ProvisionerError) as caught:
            client.post("/users/", {"email": "x@y.io"}, idempotency_key="k")
        errors.append(caught.value)
    with pytest.raises(ProvisionerError) as caught:
        ApiClient(f"http://example.invalid/{SENTINEL}", SENTINEL)
    errors.append(caught.value)
    assert len(errors) == 4
    for error in errors:
        assert_clean(type(error).__name__, str(error), repr(error), repr(error.args), str(vars(error)))
    assert_clean("endpoint repr", repr(Endpoint("http://127.0.0.1/api/v1", SENTINEL, "label")))


@pytest.mark.parametrize(
    "odd",
    ["\n", "\r", "\x1b", " ", "\u20ac", "\u00e9"],
    ids=["newline", "cr", "esc", "space", "euro", "e-acute"],
)
def test_a_key_a_header_cannot_carry_is_refused_by_every_command_without_showing_it(
    tmp_path: Path, odd: str
) -> None:
    key = SENTINEL[:14] + odd + SENTINEL[14:]
    with LocalServer(lambda seen: Reply(200, {})) as server:
        cfg = write_config(tmp_path / "org.yaml", server.base_url, BODY)
        commands = [
            ["plan", "-c", cfg],
            ["apply", "-c", cfg, "--auto-approve"],
            ["drift", "-c", cfg],
            ["export", "--api-url", server.base_url, "--token-env", "PROVISIONER_TEST_KEY"],
        ]
        for verbosity in ([], ["-vv"]):
            for command in commands:
                result = run_cli(tmp_path, key, *verbosity, *command, env=FAST_ENV)
                assert result.returncode == 1, (command, result.stderr)
                assert "cannot be sent" in result.stderr and "position 15" in result.stderr, result.stderr
                assert "Traceback" not in result.stderr
                assert_clean(" ".join(command), result.stdout, result.stderr, key=key)
        assert server.seen == []  # refused before any request
