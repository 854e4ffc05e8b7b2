"""The drift invariant, as a property over random histories of one organization.

A history is a run of events: the config is edited, someone edits the
organization out of band, or the config is applied -- with its audit record
in the log that ``drift`` reads, with it sent elsewhere (``--audit-log -``),
or with none. After every event:

* drift reports nothing when ``plan`` reports no changes; more strongly, its
  items are exactly the plan's changes that are not cascades, in order;
* no object is reported twice (so never both out-of-band and unapplied);
* when only the config moved since the last logged apply, every item is
  unapplied; when only the organization moved, every item is out-of-band.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.audit import compact_state, state_from_compact
from provisioner.drift import Origin, detect_drift
from provisioner.model import (
    Config,
    Membership,
    OrganizationSettings,
    Policy,
    RemovalLimit,
    State,
    User,
    Workspace,
)
from provisioner.plan.diff import diff
from provisioner.plan.model import phase_of
from provisioner.plan.replay import replay

NOW = datetime(2026, 6, 1, tzinfo=UTC)
EMAILS = ("ann@x.com", "bob@x.com", "cy@x.com", "dee@x.com")
SPACES = {"app-production": "production", "app-development": "development", "legacy": None}
POLICY = Policy(max_removals=RemovalLimit(percent=100))


@st.composite
def states(draw: st.DrawFn) -> State:
    """A consistent organization (or config): memberships only of present users and workspaces."""
    users = [User(e, draw(st.sampled_from(("admin", "developer")))) for e in EMAILS if draw(st.booleans())]
    spaces = [Workspace(n, environment=env) for n, env in SPACES.items() if draw(st.booleans())]
    memberships = [Membership(w.name, u.email) for w in spaces for u in users if draw(st.booleans())]
    return State.build(users, spaces, memberships)


events = st.one_of(
    st.tuples(st.just("edit config"), states()),
    st.tuples(st.just("out of band"), states()),
    st.tuples(st.just("apply"), st.sampled_from(("logged", "logged elsewhere", "not logged"))),
)


def config_of(desired: State) -> Config:
    return Config(OrganizationSettings(region="us-east-1"), POLICY, desired)


@settings(max_examples=300, deadline=None)
@given(first=states(), history=st.lists(events, max_size=8))
def test_drift_agrees_with_plan_over_any_history(first: State, history: list[tuple[str, object]]) -> None:
    server, desired = first, first
    last: State | None = None
    config_moved = server_moved = False  # since the last logged apply
    for event, arg in history:
        if event == "edit config":
            assert isinstance(arg, State)
            desired, config_moved = arg, True
        elif event == "out of band":
            assert isinstance(arg, State)
            server, server_moved = arg, True
        else:
            plan = diff(server, desired, POLICY, now=NOW)
            server = replay(server, sorted(plan.changes, key=phase_of))
            assert diff(server, desired, POLICY, now=NOW).empty
            if arg == "logged":
                # What `apply --audit-log FILE` writes, read back as `drift` reads it.
                last = state_from_compact(compact_state(server))
                config_moved = server_moved = False
            else:
                server_moved = True  # the log no longer knows what the server holds

        plan = diff(server, desired, POLICY, now=NOW)
        report = detect_drift(server, config_of(desired), last_applied=last, now=NOW, organization="o")
        keys = [item.change.key for item in report.items]

        if plan.empty:
            assert not report.drifted, report.items
        assert [item.change for item in report.items] == [c for c in plan.changes if not c.cascade]
        assert len(keys) == len(set(keys)), f"an object reported twice: {keys}"
        assert not {i.change.key for i in report.out_of_band} & {i.change.key for i in report.unapplied}
        if last is None:
            assert {i.origin for i in report.items} <= {Origin.UNKNOWN}
        elif not server_moved:
            assert {i.origin for i in report.items} <= {Origin.UNAPPLIED}, report.items
        elif not config_moved:
            assert {i.origin for i in report.items} <= {Origin.OUT_OF_BAND}, report.items


def test_the_reproduction_an_apply_logged_elsewhere_is_not_drift() -> None:
    """The log knows an older state; server and config agree: nothing to report."""
    older = State.build([User("ann@x.com", "admin")])
    newer = State.build([User("ann@x.com", "admin"), User("bob@x.com", "developer")])
    report = detect_drift(newer, config_of(newer), last_applied=older, now=NOW, organization="o")
    assert report.items == () and not report.drifted
