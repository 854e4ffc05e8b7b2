"""``build_review`` as a table of small cases, the audit-log reader, and the escapers it relies on."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest

from provisioner.audit import AuditLogError
from provisioner.escape import html, spreadsheet_cell
from provisioner.model import Membership, Policy, State, User, Workspace
from provisioner.review.audit_history import AuditEntry, read_audit_log, split_membership_key
from provisioner.review.build import build_review
from provisioner.review.model import Origin, Provenance
from provisioner.review.render_csv import render_csv
from tests.review.factory import IDENTITY, NOW, config, entry

USERS = [
    User("admin@example.com", "admin"),
    User("alice@acme.com", "developer"),
    User("bob@acme.com", "developer"),
]
WORKSPACES = [
    Workspace("app-production", environment="production"),
    Workspace("app-development", environment="development"),
]
PROD = ("app-production", "alice@acme.com")


def state(*members: tuple[str, str], extra_workspaces: tuple[str, ...] = ()) -> State:
    return State.build(
        USERS,
        [Workspace(w.name, id=w.name) for w in WORKSPACES] + [Workspace(n, id=n) for n in extra_workspaces],
        [Membership(ws, user, id="m") for ws, user in members],
    )


def desired(*members: Membership) -> State:
    return State.build(USERS, WORKSPACES, list(members))


# (name, records or None, expected provenance, the run's line when granted)
HISTORY_CASES = [
    ("no audit log", None, Provenance.NO_LOG, None),
    (
        "granted by the second run",
        [entry(1, [], set()), entry(2, [("create", "membership", "app-production/alice@acme.com")], {PROD})],
        Provenance.GRANTED,
        2,
    ),
    (
        "granted, revoked, back outside apply",
        [
            entry(1, [("create", "membership", "app-production/alice@acme.com")], {PROD}),
            entry(2, [("delete", "membership", "app-production/alice@acme.com")], set()),
        ],
        Provenance.NOT_BY_APPLY,
        None,
    ),
    ("left behind by the first run", [entry(1, [], {PROD})], Provenance.BEFORE_LOG, None),
    (
        "appeared after the first run",
        [entry(1, [], set()), entry(2, [], {PROD})],
        Provenance.NOT_BY_APPLY,
        None,
    ),
    (
        "log of another organization only",
        [entry(1, [("create", "membership", "app-production/alice@acme.com")], {PROD}, organization="other")],
        Provenance.BEFORE_LOG,
        None,
    ),
]


@pytest.mark.parametrize(
    ("records", "provenance", "line"), [c[1:] for c in HISTORY_CASES], ids=[c[0] for c in HISTORY_CASES]
)
def test_a_grants_history_comes_from_the_last_run_that_touched_it(
    records: list[AuditEntry] | None, provenance: Provenance, line: int | None
) -> None:
    review = build_review(
        config(desired(Membership(*PROD))), state(PROD), IDENTITY, records, NOW, NOW - timedelta(days=90)
    )
    (grant,) = review.grants
    assert grant.provenance is provenance
    assert (grant.since.line if grant.since else None) == line


ORIGIN_CASES = [
    ("declared", desired(Membership(*PROD)), Policy(), Origin.DECLARED),
    ("not in the config", desired(), Policy(), Origin.OUT_OF_BAND),
    (
        "past its expiry",
        desired(Membership(*PROD, expires=NOW - timedelta(hours=1))),
        Policy(),
        Origin.EXPIRED,
    ),
    ("ignored by policy", desired(), Policy(ignore_users=("alice@*",)), Origin.IGNORED),
]


@pytest.mark.parametrize(
    ("wanted", "policy", "origin"), [c[1:] for c in ORIGIN_CASES], ids=[c[0] for c in ORIGIN_CASES]
)
def test_a_grants_origin_compares_the_server_with_the_config(
    wanted: State, policy: Policy, origin: Origin
) -> None:
    review = build_review(config(wanted, policy=policy), state(PROD), IDENTITY, None, NOW, NOW)
    assert [g.origin for g in review.grants] == [origin]
    assert review.past_expiry == (review.grants if origin is Origin.EXPIRED else ())


def test_production_comes_first_and_an_out_of_band_instance_is_known_by_its_name() -> None:
    current = state(
        ("app-development", "bob@acme.com"),
        ("rogue-production", "bob@acme.com"),
        PROD,
        extra_workspaces=("rogue-production",),
    )
    review = build_review(config(desired(Membership(*PROD))), current, IDENTITY, None, NOW, NOW)
    assert [i.name for i in review.instances] == ["app-production", "rogue-production", "app-development"]
    assert [(g.workspace, g.production, g.origin) for g in review.production_grants] == [
        ("app-production", True, Origin.DECLARED),
        ("rogue-production", True, Origin.OUT_OF_BAND),
    ]


def test_expiring_lists_declared_grants_within_thirty_days_soonest_first() -> None:
    soon, later, far = (NOW + timedelta(days=d) for d in (3, 29, 31))
    current = state(PROD, ("app-production", "bob@acme.com"), ("app-development", "alice@acme.com"))
    wanted = desired(
        Membership(*PROD, expires=later),
        Membership("app-production", "bob@acme.com", expires=soon),
        Membership("app-development", "alice@acme.com", expires=far),
    )
    review = build_review(config(wanted), current, IDENTITY, None, NOW, NOW)
    assert [(g.user, g.expires) for g in review.expiring] == [
        ("bob@acme.com", soon),
        ("alice@acme.com", later),
    ]


def test_admins_say_whether_the_config_declares_them_and_which_run_promoted_them() -> None:
    current = State.build(
        [User("admin@example.com", "admin"), User("alice@acme.com", "admin", status="invited")]
    )
    records = [
        entry(1, [], set(), roles={"admin@example.com": "admin"}),
        entry(2, [("update", "user", "alice@acme.com")], set(), roles={"alice@acme.com": "admin"}),
    ]
    review = build_review(
        config(State.build([User("admin@example.com", "admin")])), current, IDENTITY, records, NOW, NOW
    )
    by_email = {a.email: a for a in review.admins}
    assert (
        by_email["admin@example.com"].declared
        and by_email["admin@example.com"].provenance is Provenance.BEFORE_LOG
    )
    alice = by_email["alice@acme.com"]
    assert (alice.declared, alice.status, alice.provenance, alice.since and alice.since.line) == (
        False,
        "invited",
        Provenance.GRANTED,
        2,
    )
    assert review.summary.out_of_band == 1


def test_changes_are_those_of_runs_in_the_period() -> None:
    old = entry(
        1, [("create", "membership", "app-production/alice@acme.com")], {PROD}, when=NOW - timedelta(days=100)
    )
    new = entry(
        2, [("delete", "membership", "app-production/alice@acme.com")], set(), when=NOW - timedelta(days=5)
    )
    review = build_review(config(desired()), state(), IDENTITY, [old, new], NOW, NOW - timedelta(days=90))
    assert [(c.action, c.workspace, c.user, c.run.line) for c in review.changes] == [
        ("delete", "app-production", "alice@acme.com", 2)
    ]


def test_a_membership_key_splits_at_a_known_workspace() -> None:
    assert split_membership_key("a/b/c@x.com", frozenset({"a/b"})) == ("a/b", "c@x.com")
    assert split_membership_key("ws/c@x.com", frozenset()) == ("ws", "c@x.com")


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        '{"time": "yesterday", "organization": "acme"}',
        '{"time": "2026-01-01T00:00:00+00:00", "organization": "acme", "applied": [{"action": 1}]}',
    ],
)
def test_an_unreadable_audit_record_is_an_error_naming_file_and_line(tmp_path: Path, line: str) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text('{"time": "2026-01-01T00:00:00+00:00", "organization": "acme"}\n\n' + line + "\n")
    with pytest.raises(AuditLogError, match=r"audit\.jsonl:3: not an audit record"):
        read_audit_log(log)


def test_a_missing_audit_log_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AuditLogError, match="does not exist"):
        read_audit_log(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+x", "'+x"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\\tx"),
        ("\rx", "'\\rx"),
        ("a=b", "a=b"),
        ("x\u202ey", "x\\u202ey"),
    ],
)
def test_a_spreadsheet_cell_never_starts_a_formula(value: str, cell: str) -> None:
    assert spreadsheet_cell(value) == cell


def test_html_escapes_markup_quotes_and_invisible_characters() -> None:
    assert html("<b a='1' b=\"2\">&\u202e") == "&lt;b a=&#x27;1&#x27; b=&quot;2&quot;&gt;&amp;\\u202e"


def test_csv_quotes_a_reason_with_commas_quotes_and_a_formula() -> None:
    reason = '=cmd|"/c calc"!A0, "quoted"'
    review = build_review(
        config(desired(Membership(*PROD, reason=reason))), state(PROD), IDENTITY, None, NOW, NOW
    )
    (row,) = list(csv.DictReader(io.StringIO(render_csv(review), newline="")))
    assert row["reason"] == "'" + reason and row["user"] == "alice@acme.com" and row["production"] == "yes"


def test_api_keys_by_owner_and_last_use_in_every_format() -> None:
    """Issue 15's last section (it waited for issue 14): live keys, production first per owner."""
    import json

    import jsonschema

    from provisioner.model import ApiKey
    from provisioner.review.render_html import render_html
    from provisioner.review.render_json import render_json
    from provisioner.review.render_markdown import render_markdown

    hostile = "<script>alert(1)</script>`|"
    current = State.build(
        USERS + [User("svc@acme.com", "developer")],
        [Workspace(w.name, id=w.name) for w in WORKSPACES],
        (),
        (),
        (),
        [
            ApiKey("app-development", "ci", "svc@acme.com", id="k1", prefix="ak_1", created_at=NOW),
            ApiKey(
                "app-production",
                "ci",
                "svc@acme.com",
                id="k2",
                prefix="ak_2",
                created_at=NOW,
                last_used_at=NOW,
            ),
            ApiKey("app-production", hostile, "bob@acme.com", id="k3", prefix="ak_3", created_at=NOW),
            ApiKey("app-production", "old", "bob@acme.com", id="k4", prefix="ak_4", disabled=True),
        ],
    )
    desired = State.build(
        USERS + [User("svc@acme.com", "developer", service_account=True)],
        WORKSPACES,
        (),
        (),
        (),
        [ApiKey("app-production", "ci", "svc@acme.com"), ApiKey("app-development", "ci", "svc@acme.com")],
    )
    review = build_review(config(desired), current, IDENTITY, None, NOW, NOW - timedelta(days=90))
    keys = [
        (k.owner, k.workspace, k.name, k.production, k.declared, k.service_account) for k in review.api_keys
    ]
    assert keys == [
        ("bob@acme.com", "app-production", hostile, True, False, False),
        ("svc@acme.com", "app-production", "ci", True, True, True),
        ("svc@acme.com", "app-development", "ci", False, True, True),
    ]  # the disabled key is not listed
    page = render_html(review)
    assert 'id="api-keys"' in page and hostile not in page and html(hostile) in page
    assert "made by hand" in page and "service account" in page
    document = json.loads(render_json(review))
    schema = json.loads((Path(__file__).parents[2] / "schemas" / "review.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert [k["prefix"] for k in document["api_keys"]] == ["ak_3", "ak_2", "ak_1"]
    checklist = render_markdown(review)
    assert "### API keys by owner and last use (3)" in checklist
    assert (
        "- [ ] `svc@acme.com` (service account) — `ci` `ak_2` — `app-production` — created "
        "`2026-03-01 12:00 UTC` — production — last used" in checklist
    )
    assert "`ci` `ak_1` — `app-development`" in checklist  # each key named by its prefix
    assert "**made by hand: not in the config**" in checklist
