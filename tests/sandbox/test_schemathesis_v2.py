"""Schemathesis against the sandbox's Recall.ai v2 endpoints, with a workspace key, time-boxed.

The runner, the report reader and the loopback guard are
``test_schemathesis.py``'s; this file names only what differs: the document
(``schemas/recall-v2.yaml``), the URL (the server's root: the document's
paths carry ``/api/v2/``), a workspace-scoped key, and the few findings that
follow from what the reference says but a schema cannot.

Knob: ``PROVISIONER_SCHEMATHESIS_V2_SECONDS`` (time box, default 25).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from provisioner.sandbox import RunningSandbox
from tests.contract import ContractChecker
from tests.sandbox.schemathesis_loopback import REFUSED_MARKER
from tests.sandbox.test_schemathesis import NEGATIVE, POSITIVE, Finding, read_report, run_schemathesis

V2_CONTRACT = Path(__file__).resolve().parents[2] / "schemas" / "recall-v2.yaml"
SECONDS = int(os.environ.get("PROVISIONER_SCHEMATHESIS_V2_SECONDS", "25"))

# (why, matches). Every entry hides a class of findings: keep it short.
KNOWN_V2_FALSE_POSITIVES: tuple[tuple[str, Callable[[Finding], bool]], ...] = (
    # A cursor is opaque and issued by the server; DRF answers a made-up one 404 "Invalid cursor".
    (
        "made-up cursor",
        lambda f: (
            f.check == POSITIVE
            and f.exchange.status == 404
            and f.exchange.body == {"detail": "Invalid cursor"}
        ),
    ),
    # A login's group must be a group of the key's workspace: made-up ids are refused by field.
    (
        "unknown group of a login",
        lambda f: (
            f.check == POSITIVE
            and f.operation.startswith(("POST /api/v2/google-logins/", "PUT /api/v2/google-logins/"))
            and f.exchange.status == 400
            and f.exchange.fields == {"group_id"}
        ),
    ),
    # The reference: a key reused within the hour answers the first request's answer, whatever
    # the body now (schemathesis reuses keys across bodies). The sandbox marks such a replay.
    ("an idempotent replay", lambda f: f.check in (POSITIVE, NEGATIVE) and f.exchange.replayed),
    # ...and such a replayed create names the object made then, which a later step may have deleted.
    (
        "an idempotent replay naming an object deleted since",
        lambda f: (
            f.check == "ensure_resource_availability"
            and f.exchange.status == 404
            and any(step.method == "POST" and step.replayed for step in f.scenario)
        ),
    ),
    # The reference: a payload naming localhost is blocked by the WAF (403, HTML).
    ("the WAF", lambda f: f.exchange.status == 403),
)


def test_schemathesis_v2_finds_nothing_beyond_the_known_false_positives(
    make_sandbox: Callable[..., RunningSandbox], contract_checker: ContractChecker, tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    key = sandbox.workspace_key("app-staging")
    workdir = tmp_path / "schemathesis"
    workdir.mkdir()
    process, report = run_schemathesis(
        sandbox, workdir, contract=V2_CONTRACT, url=sandbox.url, token=key, seconds=SECONDS
    )
    output = process.stdout[-4000:] + process.stderr[-4000:]
    # As for v1: methods and paths outside the document are not our checker's business.
    contract_checker.violations[:] = [
        v
        for v in contract_checker.violations
        if not (v.status == 405 and v.problem.startswith(f"{v.method} is not an operation of"))
        and not (v.status == 404 and v.problem == "path matches no template in the contract")
    ]
    assert REFUSED_MARKER not in process.stderr, output
    assert process.returncode in (0, 1), output
    assert key not in process.stdout + process.stderr
    findings, hosts, errors = read_report(report)
    assert hosts == {urlsplit(sandbox.url).netloc}, hosts
    assert not errors, errors
    assert contract_checker.checked > 100, "schemathesis sent too few requests to mean anything"
    left = [f for f in findings if not any(matches(f) for _, matches in KNOWN_V2_FALSE_POSITIVES)]
    kinds: dict[tuple[str, str, int | None], list[Finding]] = {}
    for finding in left:
        kinds.setdefault((finding.check, finding.operation, finding.exchange.status), []).append(finding)
    assert not left, f"{len(left)} schemathesis findings:\n" + "\n".join(
        f"{len(group)} x {group[0]}" for group in kinds.values()
    )
