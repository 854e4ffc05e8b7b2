"""The contract document itself, persistence across restarts, and the `sandbox` CLI."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import requests
from click.testing import CliRunner

from provisioner.cli.sandbox import sandbox as sandbox_cli
from provisioner.sandbox import SandboxError, create_token, start_sandbox
from provisioner.sandbox.server import build_app, make_wsgi_server, prepare
from tests.contract import ContractChecker, load_contract
from tests.sandbox.conftest import Api


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    document = load_contract()  # raises if openapi-spec-validator rejects it
    assert document["openapi"].startswith("3.1")
    assert "/workspace_memberships/{id}/" in document["paths"]


def test_the_checker_catches_a_response_that_breaks_the_contract() -> None:
    checker = ContractChecker()
    body = b'{"id": "u1", "email": "a@example.com", "role": "owner"}'
    problems = checker.check("GET", "/api/v1/users/u1/", 200, {"Content-Type": "application/json"}, body)
    assert any("ETag" in p for p in problems)
    assert any("owner" in p for p in problems)
    assert checker.check("GET", "/api/v1/users/", 418, {}, b"") == [
        "status 418 is not documented for GET /users/"
    ]


def test_state_survives_a_restart(make_sandbox, tmp_path) -> None:
    db = tmp_path / "kept.db"
    first = make_sandbox(db_path=db, token="fixed-key")
    api = Api(first.base_url, first.token)
    user = api.post("/users/", {"email": "a@example.com", "role": "developer"}).json()
    first.stop()

    second = make_sandbox(db_path=db)  # no token: a new key is minted for the admin
    assert second.token != "fixed-key"
    for key in (second.token, "fixed-key"):
        assert Api(second.base_url, key).get(f"/users/{user['id']}/").json() == user


def test_shutdown_wakes_the_serving_loop_instead_of_waiting_for_its_poll(tmp_path) -> None:
    # Every command on an embedded sandbox stops it at exit; socketserver's loop
    # only looked at a shutdown once per poll interval (50 ms a command). With a
    # poll interval of an hour, only a woken loop stops within the join's bound.
    prepared = prepare(
        tmp_path / "x.db", token="k", admin_email="a@example.com", org_name="o", region="us-east-1"
    )
    server = make_wsgi_server("127.0.0.1", 0, build_app(prepared.db))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600}, daemon=True)
    thread.start()
    answer = requests.get(
        f"http://127.0.0.1:{server.server_port}/api/v1/me/", headers={"Authorization": "Token k"}
    )
    assert answer.status_code == 200  # the loop is serving
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout=30)
    thread.join(timeout=30)
    prepared.db.close()
    assert not stopper.is_alive() and not thread.is_alive(), "shutdown() waited for the loop's next poll"


def test_start_sandbox_refuses_a_non_loopback_host(tmp_path) -> None:
    with pytest.raises(SandboxError, match="--public"):
        start_sandbox(tmp_path / "x.db", host="0.0.0.0")


def test_serve_refuses_a_non_loopback_host_without_public(tmp_path) -> None:
    result = CliRunner().invoke(sandbox_cli, ["serve", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "--public" in result.output
    assert not (tmp_path / "x.db").exists()


def test_token_create_prints_a_working_key(make_sandbox, tmp_path) -> None:
    sandbox = make_sandbox(db_path=tmp_path / "t.db")
    Api(sandbox.base_url, sandbox.token).post("/users/", {"email": "dev@example.com", "role": "developer"})
    result = CliRunner().invoke(
        sandbox_cli, ["token", "create", "--db", str(tmp_path / "t.db"), "--email", "Dev@Example.com"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert Api(sandbox.base_url, key).get("/me/").json()["email"] == "dev@example.com"


def test_token_create_for_an_unknown_user_fails(tmp_path) -> None:
    start_sandbox(tmp_path / "t.db").stop()
    result = CliRunner().invoke(
        sandbox_cli, ["token", "create", "--db", str(tmp_path / "t.db"), "--email", "x@example.com"]
    )
    assert result.exit_code == 1
    assert "no user 'x@example.com'" in result.output
    with pytest.raises(SandboxError):
        create_token(tmp_path / "t.db", "x@example.com")


def test_serve_runs_in_the_foreground_and_prints_the_key_once(tmp_path) -> None:
    db = tmp_path / "served.db"
    command = [
        sys.executable,
        "-c",
        "from provisioner.cli.sandbox import sandbox; sandbox()",
        "serve",
        "--db",
        str(db),
        "--port",
        "0",
        "--admin-email",
        "ops@example.com",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()  # "Sandbox API at http://127.0.0.1:PORT/api/v1 (db ...)"
        key = process.stdout.readline().strip()
        base_url = banner.split()[3]
        response = requests.get(f"{base_url}/me/", headers={"Authorization": f"Token {key}"}, timeout=10)
        assert response.status_code == 200, banner
        assert response.json()["email"] == "ops@example.com"
        assert ContractChecker().check("GET", "/api/v1/me/", 200, response.headers, response.content) == []
    finally:
        process.terminate()
        process.wait(10)
    assert key not in db.read_bytes().decode("latin-1"), "keys are stored hashed"


@pytest.mark.parametrize(
    "where",
    [
        "workspace_id = ? AND seq > ?",
        "user_id = ? AND seq > ?",
        "workspace_id = ? AND seq < ?",
        "workspace_id = ? AND user_id = ?",
    ],
)
def test_filtered_lists_use_an_index_not_a_table_scan(tmp_path, where: str) -> None:
    import sqlite3

    start_sandbox(tmp_path / "plan.db").stop()  # creates the schema
    conn = sqlite3.connect(tmp_path / "plan.db")
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM memberships WHERE {where} ORDER BY seq LIMIT 51", ("a", "b")
    ).fetchall()
    conn.close()
    details = " ".join(row[3] for row in plan)
    assert "USING INDEX" in details and "SCAN" not in details, details
