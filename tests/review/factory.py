"""Reviews built in memory, through the real ``build_review``: for unit and browser tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from provisioner.model import (
    ApiKey,
    Config,
    Identity,
    Membership,
    Organization,
    OrganizationSettings,
    Policy,
    State,
    User,
    Workspace,
)
from provisioner.review.audit_history import AppliedChange, AuditEntry
from provisioner.review.build import build_review
from provisioner.review.model import Review

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ENVIRONMENTS = ("development", "staging", "production")
IDENTITY = Identity("u1", "admin@example.com", "admin", Organization("o1", "acme", "us-east-1"))


def config(
    desired: State, *, policy: Policy | None = None, environments: tuple[str, ...] = ENVIRONMENTS
) -> Config:
    return Config(
        organization=OrganizationSettings(region="us-east-1"),
        policy=policy or Policy(),
        desired=desired,
        environments=environments,
        sources=("org.yaml",),
        digest="d" * 64,
    )


def entry(
    line: int,
    applied: list[tuple[str, str, str]],
    members: set[tuple[str, str]],
    *,
    roles: dict[str, str] | None = None,
    commit: str | None = None,
    when: datetime | None = None,
    organization: str = "acme",
) -> AuditEntry:
    return AuditEntry(
        line=line,
        time=when or NOW - timedelta(days=10 - line),
        organization=organization,
        commit=commit if commit is not None else f"{line:040x}",
        result="success",
        plan_digest=None,
        applied=tuple(AppliedChange(*a) for a in applied),
        memberships=frozenset(members),
        workspaces=frozenset(ws for ws, _ in members),
        roles=tuple(sorted((roles or {}).items())),
    )


def large_review(users: int = 2_000, workspaces: int = 50) -> Review:
    """A review of ``users`` × ``workspaces`` instances, about a third of the cells granted."""
    names = [f"ws{i // 3:02d}-{ENVIRONMENTS[i % 3]}" for i in range(workspaces)]
    emails = [f"user{n:05d}@example.com" for n in range(users)]
    desired_workspaces = [Workspace(n, environment=n.rsplit("-", 1)[1]) for n in names]
    grants = [
        Membership(ws, email, reason="quarterly on-call" if ws.endswith("production") else None)
        for n, email in enumerate(emails)
        for i, ws in enumerate(names)
        if (n + i) % 3 == 0
    ]
    users_ = [User(e, "admin" if n < 5 else "developer") for n, e in enumerate(emails)]
    desired = State.build(users_, desired_workspaces, grants)
    current = State.build(
        users_,
        [Workspace(n, id=str(i)) for i, n in enumerate(names)],
        [Membership(m.workspace, m.user, id="x") for m in grants],
    )
    return build_review(config(desired), current, IDENTITY, None, NOW, NOW - timedelta(days=90))


def four_user_review() -> Review:
    """A small organization as a team of four has it: 4 users, 3 workspaces × 3 environments,
    keys, and a quarter of history (grants, a promotion, settings and key changes, approvals)."""
    users = [
        User("alice@acme.com", "admin"),
        User("bob@acme.com", "developer"),
        User("carol@acme.com", "developer"),
        User("svc-ci@acme.com", "developer", service_account=True),
    ]
    names = [f"{ws}-{env}" for ws in ("notetaker", "billing", "search") for env in ENVIRONMENTS]
    workspaces = [Workspace(n, environment=n.rsplit("-", 1)[1]) for n in names]
    grants = [
        Membership(ws, u.email, reason="on-call" if ws.endswith("production") else None)
        for ws in names
        for u in users
        if not (ws.endswith("production") and u.email == "carol@acme.com")
    ]
    keys = [
        ApiKey(ws, "ci-deploy", "svc-ci@acme.com", id=f"k{i}", prefix=f"rk_{i:04d}", created_at=NOW)
        for i, ws in enumerate(names)
    ]
    desired = State.build(
        users, workspaces, grants, (), (), [ApiKey(k.workspace, k.name, k.owner) for k in keys]
    )
    current = State.build(
        users,
        [Workspace(n, id=n) for n in names],
        [Membership(m.workspace, m.user, id="m") for m in grants],
        (),
        (),
        keys,
    )
    members = {(m.workspace, m.user) for m in grants}
    history = [
        entry(1, [("create", "membership", f"{m.workspace}/{m.user}") for m in grants], members),
        entry(
            2,
            [("update", "user", "bob@acme.com")],
            members,
            roles={"bob@acme.com": "admin"},
        ),
        entry(
            3,
            [("create", "webhook", f"{ws} https://hooks.example.invalid/recall/{ws}") for ws in names],
            members,
        ),
        entry(4, [("create", "api_key", f"{k.workspace} ci-deploy") for k in keys], members),
        entry(5, [("create", "credential", f"{ws} deepgram") for ws in names], members),
    ]
    history = [
        replace(
            e,
            pull_request=f"https://github.invalid/acme/access/pull/{e.line}",
            approvers=("alice", "bob"),
            merged_by="alice",
        )
        for e in history
    ]
    return build_review(config(desired), current, IDENTITY, history, NOW, NOW - timedelta(days=90))
