"""Schemathesis against the sandbox: every check, every phase (stateful too), time-boxed.

The CLI (``st run``) runs in a subprocess whose connections are limited to
loopback (``schemathesis_loopback.py``), against a sandbox on a loopback
port started by the ``make_sandbox`` fixture, so that our own contract
checker (tests/contract.py) also sees every response. It writes only into
the test's tmp directory (working directory, report; no example database).

The run fails the test on any failure that is not on ``KNOWN_FALSE_POSITIVES``
below: a short list of findings that follow from what the contract says but
a schema cannot (server state, opaque cursors, cascades). Each entry says why.

Knobs (environment): ``PROVISIONER_SCHEMATHESIS_SECONDS`` (time box, default
50) and ``PROVISIONER_SCHEMATHESIS_SEED`` (default fixed, for a stable CI;
set another to explore).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from provisioner.sandbox import RunningSandbox
from provisioner.sandbox.credentials import LABEL_ONLY, REQUIRED_NOT_NULL
from tests.sandbox.schemathesis_loopback import REFUSED_MARKER

CONTRACT = Path(__file__).resolve().parents[2] / "schemas" / "openapi.yaml"
RUNNER = Path(__file__).with_name("schemathesis_loopback.py")
SECONDS = int(os.environ.get("PROVISIONER_SCHEMATHESIS_SECONDS", "50"))
SEED = os.environ.get("PROVISIONER_SCHEMATHESIS_SEED", "20261130")


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the report records them."""

    method: str
    path: str
    status: int | None
    body: Any  # the answer's JSON, or None
    replayed: bool = False  # answered from the idempotency record (``Idempotent-Replayed: true``)

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None

    @property
    def fields(self) -> frozenset[str]:
        """The field names of a field-error body (``{"cursor": [...]}``); empty otherwise."""
        if not isinstance(self.body, dict) or "code" in self.body:
            return frozenset()
        return frozenset(self.body)


@dataclass(frozen=True)
class Finding:
    """One failed check on one request, with the scenario (stateful steps) it happened in."""

    check: str
    operation: str  # the operation schemathesis blames, e.g. "POST /workspace_memberships/"
    exchange: Exchange
    scenario: tuple[Exchange, ...]

    def __str__(self) -> str:
        return (
            f"{self.check} on {self.operation}: {self.exchange.method} {self.exchange.path} "
            f"-> {self.exchange.status} {json.dumps(self.exchange.body)[:300]}"
        )


def _cascaded_membership(finding: Finding) -> bool:
    """The membership was created, then its user removed (which removes their memberships), then read."""
    membership_id = finding.exchange.path.rstrip("/").rsplit("/", 1)[-1]
    created = [
        step.body
        for step in finding.scenario
        if step.method == "POST"
        and step.status == 201
        and isinstance(step.body, dict)
        and step.body.get("id") == membership_id
    ]
    return bool(created) and any(
        step.method == "DELETE"
        and step.status == 204
        and step.path.rstrip("/").endswith(f"/users/{created[0]['user_id']}")
        for step in finding.scenario
    )


POSITIVE, NEGATIVE = "positive_data_acceptance", "negative_data_rejection"

# (why, matches). Keep it short: every entry hides a class of findings.
KNOWN_FALSE_POSITIVES: tuple[tuple[str, Callable[[Finding], bool]], ...] = (
    # If-Match values are made up, so they rarely match the current ETag: 412 is
    # the documented answer. RFC 9110 (13.2.2) evaluates preconditions before the
    # body is processed, so an invalid body with a stale If-Match is 412 too.
    (
        "made-up If-Match",
        lambda f: (
            f.check in (POSITIVE, NEGATIVE)
            and (f.exchange.status, f.exchange.code) == (412, "precondition_failed")
        ),
    ),
    # The contract: DELETE /workspaces/{id}/ is always 405 not_supported.
    (
        "workspaces cannot be deleted",
        lambda f: (
            f.check == POSITIVE
            and f.operation == "DELETE /workspaces/{id}/"
            and f.exchange.code == "not_supported"
        ),
    ),
    # A cursor is opaque and issued by the server; a made-up string is not one.
    (
        "made-up cursor",
        lambda f: f.check == POSITIVE and f.exchange.status == 400 and f.exchange.fields == {"cursor"},
    ),
    # Schemathesis reuses Idempotency-Key values ("0") across different bodies:
    # 422 idempotency_key_reused is the documented answer.
    (
        "reused Idempotency-Key",
        lambda f: (
            f.check == POSITIVE and (f.exchange.status, f.exchange.code) == (422, "idempotency_key_reused")
        ),
    ),
    # Made-up (or since removed) user and workspace ids in a new membership.
    (
        "unknown ids in a membership",
        lambda f: (
            f.check == POSITIVE
            and f.operation == "POST /workspace_memberships/"
            and f.exchange.status == 400
            and bool(f.exchange.fields)
            and f.exchange.fields <= {"workspace_id", "user_id"}
            and all(m.startswith("No ") for v in f.exchange.body.values() for m in v)
        ),
    ),
    # The same for a new API key: its user and workspace must exist (made-up ids,
    # or a user removed earlier in a stateful scenario).
    (
        "unknown ids in an API key",
        lambda f: (
            f.check == POSITIVE
            and f.operation == "POST /api_keys/"
            and f.exchange.status == 400
            and bool(f.exchange.fields)
            and f.exchange.fields <= {"workspace_id", "user_id"}
            and all(m.startswith("No ") for v in f.exchange.body.values() for m in v)
        ),
    ),
    # The same for a new webhook endpoint or credential: its workspace must exist.
    (
        "unknown workspace of a setting",
        lambda f: (
            f.check == POSITIVE
            and f.operation in ("POST /webhook_endpoints/", "POST /credentials/")
            and f.exchange.status == 400
            and f.exchange.fields == {"workspace_id"}
            and all(m.startswith("No workspace ") for v in f.exchange.body.values() for m in v)
        ),
    ),
    # Which fields and secrets a credential has depends on its provider, which
    # a PATCH body does not carry (the contract's CredentialUpdate says so): a
    # name of another provider is refused, and so is null for a required field,
    # and a label for a secret the same request does not write (SecretSources).
    (
        "another provider's names in a credential PATCH",
        lambda f: (
            f.check == POSITIVE
            and f.operation == "PATCH /credentials/{id}/"
            and f.exchange.status == 400
            and bool(f.exchange.fields)
            and all(name.startswith(("fields.", "secrets.", "secret_sources.")) for name in f.exchange.fields)
            and all(
                m in ("Unknown field.", REQUIRED_NOT_NULL, LABEL_ONLY)
                for v in f.exchange.body.values()
                for m in v
            )
        ),
    ),
    # State, not shape: a revision the organization has not reached, or one before the
    # horizon (schemathesis calls /_sandbox/changes/compact too), is 410 revision_gone.
    (
        "a revision outside the change history",
        lambda f: (
            f.check == POSITIVE
            and f.operation == "GET /changes/"
            and (f.exchange.status, f.exchange.code) == (410, "revision_gone")
        ),
    ),
    # State, not shape: the organization already has its 50 workspaces.
    (
        "workspace limit",
        lambda f: (
            f.check == POSITIVE and (f.exchange.status, f.exchange.code) == (400, "workspace_limit_reached")
        ),
    ),
    # Schemathesis reuses Idempotency-Key values with the same body across scenarios:
    # the documented answer is a replay of the first response, which names the object
    # made then, though another scenario may have deleted it since. Only a create that
    # was such a replay (Idempotent-Replayed: true) is excused.
    (
        "an idempotent replay naming an object deleted since",
        lambda f: (
            f.check == "ensure_resource_availability"
            and f.exchange.status == 404
            and any(step.method == "POST" and step.replayed for step in f.scenario)
        ),
    ),
    # Removing a user removes their memberships (documented); schemathesis then
    # expects the membership it created to still be there.
    (
        "membership removed with its user",
        lambda f: (
            f.check == "ensure_resource_availability" and f.exchange.status == 404 and _cascaded_membership(f)
        ),
    ),
)


def _exchange(interaction: dict[str, Any]) -> Exchange:
    request, response = interaction["request"], interaction.get("response") or {}
    body = None
    content = response.get("content")
    if content and "$base64" in content:
        try:
            body = json.loads(base64.b64decode(content["$base64"]))
        except ValueError:
            body = None
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    replayed = "true" in str(headers.get("idempotent-replayed", "")).lower()
    return Exchange(
        request["method"], urlsplit(request["uri"]).path, response.get("status_code"), body, replayed
    )


def read_report(path: Path) -> tuple[list[Finding], set[str], list[str]]:
    """(findings, hosts every request went to, non-fatal errors) from the NDJSON event stream."""
    findings: list[Finding] = []
    hosts: set[str] = set()
    errors: list[str] = []
    with path.open(encoding="utf-8") as events:
        for line in events:
            ((kind, event),) = json.loads(line).items()
            if kind == "NonFatalError":
                errors.append(json.dumps(event)[:500])
                continue
            if kind != "ScenarioFinished":
                continue
            recorder = event["recorder"]
            interactions = recorder.get("interactions", {})
            for interaction in interactions.values():
                hosts.add(urlsplit(interaction["request"]["uri"]).netloc)
            scenario = tuple(
                _exchange(i) for i in sorted(interactions.values(), key=lambda i: i["timestamp"])
            )
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    if check["status"] != "failure" or case_id not in interactions:
                        continue
                    failure = check["failure_info"]["failure"]
                    findings.append(
                        Finding(
                            check["name"], failure["operation"], _exchange(interactions[case_id]), scenario
                        )
                    )
    return findings, hosts, errors


def run_schemathesis(
    sandbox: RunningSandbox,
    workdir: Path,
    *,
    contract: Path = CONTRACT,
    url: str | None = None,
    token: str | None = None,
    seconds: int = SECONDS,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``st run`` against ``sandbox``, all checks and phases, time-boxed; (process, NDJSON report).

    By default the v1 contract at the sandbox's v1 URL with the admin's key;
    ``test_schemathesis_v2.py`` passes recall-v2.yaml, the server's root and a workspace key.
    """
    report = workdir / "events.ndjson"
    command = [
        sys.executable,
        str(RUNNER),
        "run",
        str(contract),
        "--url",
        url or sandbox.base_url,
        "--header",
        f"Authorization: Token {token or sandbox.token}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-time",
        str(seconds),
        "--max-examples",
        "25",  # per operation and cycle; the time box repeats cycles
        "--continue-on-failure",  # a known false positive must not hide a later real failure
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--max-redirects",
        "0",
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
    ]
    # Only the loopback sandbox: no proxy may route the traffic elsewhere, and
    # caches or configs land in the tmp directory.
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env.update(
        HOME=str(workdir),
        XDG_CACHE_HOME=str(workdir / "cache"),
        XDG_CONFIG_HOME=str(workdir / "config"),
        NO_PROXY="*",
        PYTHONDONTWRITEBYTECODE="1",
    )
    process = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=seconds + 90, check=False
    )
    return process, report


def unexplained(findings: list[Finding]) -> Iterator[Finding]:
    for finding in findings:
        if not any(matches(finding) for _, matches in KNOWN_FALSE_POSITIVES):
            yield finding


def test_schemathesis_finds_nothing_beyond_the_known_false_positives(
    make_sandbox, contract_checker, tmp_path
) -> None:  # noqa: ANN001
    sandbox = make_sandbox()
    workdir = tmp_path / "schemathesis"
    workdir.mkdir()
    process, report = run_schemathesis(sandbox, workdir)
    output = process.stdout[-4000:] + process.stderr[-4000:]
    # Our own contract checker saw every response too (the fixture fails on what
    # it found). Requests outside the contract are not its business: methods the
    # contract does not list (schemathesis tries them and expects 405 with Allow)
    # and paths it does not list (schemathesis probes the base URL).
    contract_checker.violations[:] = [
        v
        for v in contract_checker.violations
        if not (v.status == 405 and v.problem.startswith(f"{v.method} is not an operation of"))
        and not (v.status == 404 and v.problem == "path matches no template in the contract")
    ]

    assert REFUSED_MARKER not in process.stderr, output
    assert process.returncode in (0, 1), output  # 1: failures, read below; anything else: it did not run
    assert sandbox.token not in process.stdout + process.stderr  # the report filters the header
    findings, hosts, errors = read_report(report)
    assert hosts == {urlsplit(sandbox.base_url).netloc}, hosts
    assert not errors, errors
    assert contract_checker.checked > 300, "schemathesis sent too few requests to mean anything"

    left = list(unexplained(findings))
    # One line per kind (check, operation, status), with a count and an example.
    kinds: dict[tuple[str, str, int | None], list[Finding]] = {}
    for finding in left:
        kinds.setdefault((finding.check, finding.operation, finding.exchange.status), []).append(finding)
    assert not left, f"{len(left)} schemathesis findings (seed {SEED}):\n" + "\n".join(
        f"{len(group)} x {group[0]}" for group in kinds.values()
    )
