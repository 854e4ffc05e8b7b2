"""Point 9: the key goes only to the origin the operator chose, over verified TLS or loopback http."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioner.api.client import ApiClient
from provisioner.cli.main import cli
from provisioner.errors import TransportError
from provisioner.sandbox import start_sandbox
from tests.local_server import LocalServer, Reply
from tests.reliability.rel_support import run_cli, upstream_of, write_config
from tests.support import TOKEN_ENV, org_config

BODY = "users:\n  - {email: admin@example.com, role: admin}\n  - {email: bob@acme.com, role: developer}\n"


def test_plain_http_to_a_remote_host_is_refused_before_any_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[object] = []
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: attempts.append(a) or real_getaddrinfo(*a, **k)
    )
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr))
    with pytest.raises(TransportError, match="plain http"):
        ApiClient("http://example.invalid/api/v1", "key")
    config = write_config(tmp_path / "org.yaml", "http://example.invalid/api/v1", BODY)
    for command in (["plan", "-c", config], ["apply", "-c", config, "--auto-approve"]):
        result = CliRunner().invoke(cli, command, env={TOKEN_ENV: "key"})
        assert result.exit_code == 1 and "plain http" in result.stderr, result.output
    assert attempts == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_host_is_not_followed(tmp_path: Path, status: int) -> None:
    with LocalServer(lambda seen: Reply(200, {})) as elsewhere:
        target = elsewhere.base_url + "/me/"
        with LocalServer(lambda seen: Reply(status, None, {"Location": target})) as api:
            config = write_config(tmp_path / "org.yaml", api.base_url, BODY)
            result = run_cli(tmp_path, "the-key", "plan", "-c", config)
            assert api.seen  # the configured server was asked
        assert elsewhere.seen == []  # the other host never received a request, nor the key
    assert result.returncode == 1
    assert "redirected" in result.stderr and "refusing to follow" in result.stderr, result.stderr


def test_proxies_and_netrc_from_the_environment_neither_see_nor_change_the_key(
    hooked_sandbox, tmp_path: Path
) -> None:  # noqa: ANN001
    sandbox, _ = hooked_sandbox()
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(
        "machine 127.0.0.1 login mallory password stolen-credential\ndefault login mallory password stolen-credential\n"
    )
    netrc.chmod(0o600)
    with (
        LocalServer(lambda seen: Reply(502, {"detail": "captured"})) as capture,
        LocalServer(None, upstream=upstream_of(sandbox)) as recorder,
    ):
        proxy_env = {
            name: capture.url
            for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
        }
        env = {**proxy_env, "HOME": str(home), "NETRC": str(netrc), "NO_PROXY": "", "no_proxy": ""}
        config = write_config(tmp_path / "org.yaml", recorder.base_url, BODY)
        plan = run_cli(tmp_path, sandbox.token, "plan", "-c", config, env=env)
        apply = run_cli(tmp_path, sandbox.token, "apply", "-c", config, "--auto-approve", env=env)
        assert capture.seen == []
        assert recorder.seen
        assert {s.headers.get("Authorization") for s in recorder.seen} == {f"Token {sandbox.token}"}
    assert plan.returncode == 0, plan.stderr
    assert apply.returncode == 0, apply.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path):  # noqa: ANN201
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with LocalServer(lambda seen: Reply(200, {}), tls=context) as server:
        server.cert = cert
        yield server


def test_tls_verification_cannot_be_turned_off_from_the_environment(
    tmp_path: Path, tls_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, "")
    client = ApiClient(tls_server.base_url, "the-key", max_retries=0)
    assert client.session.verify is True and client.session.trust_env is False
    with client, pytest.raises(TransportError) as caught:
        client.get("/me/")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) or "certificate" in str(caught.value).lower()

    config = write_config(tmp_path / "org.yaml", tls_server.base_url, BODY)
    env = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", "PROVISIONER_MAX_RETRIES": "0"}
    result = run_cli(tmp_path, "the-key", "plan", "-c", config, env=env)
    assert result.returncode == 1
    assert "certificate" in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr
    # A CA bundle from the environment does not change what is trusted either.
    result = run_cli(
        tmp_path,
        "the-key",
        "plan",
        "-c",
        config,
        env={"REQUESTS_CA_BUNDLE": str(tls_server.cert), "PROVISIONER_MAX_RETRIES": "0"},
    )
    assert result.returncode == 1 and "certificate" in result.stderr.lower()
    assert tls_server.seen == []  # no request (and no key) ever reached the unverified server


# --- promise 3 of issue 10: one parser, and the operator (not the config) picks the endpoint ---


def _record_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name the run tries to resolve; resolving fails at once (no network in tests)."""
    hosts: list[str] = []

    def lookup(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        hosts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "test: no such host")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return hosts


def test_a_config_cannot_send_the_key_to_a_host_the_operator_did_not_allow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = "https://collector.example.invalid/api/v1"
    config = tmp_path / "org.yaml"
    config.write_text(f"version: 1\norganization:\n  api_url: {collector}\n  token_env: GITHUB_TOKEN\n{BODY}")
    env = {
        "GITHUB_TOKEN": "the-key",
        "PROVISIONER_MAX_RETRIES": "0",
        "PROVISIONER_ALLOWED_API_URLS": None,
        "PROVISIONER_ALLOWED_TOKEN_ENVS": None,
    }
    hosts = _record_lookups(monkeypatch)
    refused = CliRunner().invoke(cli, ["plan", "-c", str(config)], env=env)
    assert refused.exit_code == 1 and hosts == []
    assert f"{config}:3:12: organization.api_url" in refused.stderr, refused.stderr
    assert f"{config}:4:14: organization.token_env" in refused.stderr
    assert (
        "PROVISIONER_ALLOWED_API_URLS" in refused.stderr
        and "PROVISIONER_ALLOWED_TOKEN_ENVS" in refused.stderr
    )

    # The operator allows both, outside the repo: the run goes there (and fails to resolve it).
    allowed_env = {
        **env,
        "PROVISIONER_ALLOWED_API_URLS": "https://collector.example.invalid",
        "PROVISIONER_ALLOWED_TOKEN_ENVS": "GITHUB_TOKEN",
    }
    allowed = CliRunner().invoke(cli, ["plan", "-c", str(config)], env=allowed_env)
    assert allowed.exit_code == 1 and "organization." not in allowed.stderr, allowed.stderr
    assert set(hosts) == {"collector.example.invalid"}, allowed.stderr
    # --api-url with the same URL allows it too (the token variable still needs its allowance).
    hosts.clear()
    flagged = CliRunner().invoke(
        cli,
        ["plan", "-c", str(config), "--api-url", collector],
        env={**env, "PROVISIONER_ALLOWED_TOKEN_ENVS": "GITHUB_TOKEN"},
    )
    assert flagged.exit_code == 1 and "organization.api_url" not in flagged.stderr, flagged.stderr
    assert set(hosts) == {"collector.example.invalid"}


@pytest.mark.parametrize("via", ["config", "--api-url", "next"])
def test_a_url_the_parsers_read_differently_never_reaches_the_other_host(tmp_path: Path, via: str) -> None:
    """urlsplit reads 127.0.0.1:<api>, urllib3 127.0.0.1:<decoy>: the decoy must hear nothing."""
    with start_sandbox(tmp_path / "org.db") as sandbox, LocalServer(lambda seen: Reply(200, {})) as decoy:
        host, port = upstream_of(sandbox)

        def hostile(api_port: int) -> str:
            return f"http://127.0.0.1:{decoy.port}\\@127.0.0.1:{api_port}/api/v1"

        def rewrite(seen, status, headers, body):  # noqa: ANN001, ANN202
            if seen.path.startswith("/api/v1/users/?"):
                page = json.loads(body)
                page["next"] = hostile(int(seen.headers["Host"].rsplit(":", 1)[1])) + "/users/?page=2"
                return json.dumps(page).encode()
            return body

        with LocalServer(None, upstream=(host, port), rewrite=rewrite) as proxy:
            config = tmp_path / "org.yaml"
            if via == "config":
                config.write_text(org_config(f"'{hostile(port)}'", BODY))
                result = run_cli(tmp_path, sandbox.token, "plan", "-c", str(config))
            elif via == "--api-url":
                write_config(config, sandbox.base_url, BODY)
                result = run_cli(
                    tmp_path, sandbox.token, "plan", "-c", str(config), "--api-url", hostile(port)
                )
            else:
                write_config(config, proxy.base_url, BODY)
                result = run_cli(tmp_path, sandbox.token, "plan", "-c", str(config))
                assert proxy.requests_with("GET", "/api/v1/users/")
        assert decoy.seen == []
    assert result.returncode == 1 and "backslash" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_plan_states_its_endpoint_and_flags_one_that_is_not_the_regions(tmp_path: Path) -> None:
    with start_sandbox(tmp_path / "org.db") as sandbox:
        config = write_config(tmp_path / "org.yaml", sandbox.base_url, BODY)
        note = "not the region's endpoint us-east-1: https://us-east-1.recall.ai/api/v1"
        text = run_cli(tmp_path, sandbox.token, "plan", "-c", config)
        assert text.stdout.splitlines()[0] == f"Endpoint: {sandbox.base_url} ({note})", text.stdout
        doc = json.loads(run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--format", "json").stdout)
        assert (doc["endpoint"], doc["region"]) == (sandbox.base_url, "us-east-1")
        markdown = run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--format", "markdown").stdout
        assert f"Endpoint: `{sandbox.base_url}` ⚠️ `{note}`" in markdown
        saved = tmp_path / "org.plan"
        assert run_cli(tmp_path, sandbox.token, "plan", "-c", config, "--out", str(saved)).returncode == 0
        assert json.loads(saved.read_text())["endpoint"] == sandbox.base_url
        applied = run_cli(tmp_path, sandbox.token, "apply", "-c", config, "--plan", str(saved))
        assert applied.returncode == 0 and f"Endpoint: {sandbox.base_url}" in applied.stdout
