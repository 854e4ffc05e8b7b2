"""Point 10: a hypothesis state machine interleaving config edits, out-of-band
API edits, injected faults and applies (in-process: ``read_and_diff`` +
``apply_plan``). After every apply that reports success, the organization
equals the desired state and the next plan is empty.

Bounded in CI; ``PROVISIONER_SM_EXAMPLES`` / ``PROVISIONER_SM_STEPS`` raise it (soak).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from provisioner.api.client import ApiClient
from provisioner.apply.executor import apply_plan
from provisioner.config import load_config
from provisioner.errors import ProvisionerError
from provisioner.sandbox import start_sandbox
from provisioner.service.plan import PlannedOrganization, guard, read_and_diff
from tests.reliability.rel_support import snapshot
from tests.support import TOKEN_ENV, Api, org_config

EMAILS = ["ann@acme.com", "ben@acme.com", "cat@acme.com", "dov@acme.com"]
SPACES = ["alpha", "beta", "gamma"]
ADMIN = "admin@example.com"

desired_users = st.dictionaries(st.sampled_from(EMAILS), st.sampled_from(["admin", "developer"]), max_size=4)


class ReconcileMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rel-sm-"))
        self.db = self.dir / "org.db"
        self.token = "sm-" + uuid.uuid4().hex
        self.fail_rate = 0.0
        self.fault_seed = 0
        self.sandbox = start_sandbox(self.db, token=self.token)
        self.users: dict[str, str] = {}
        self.members: dict[str, set[str]] = {name: set() for name in SPACES[:1]}
        self.applied_ok = False

    def teardown(self) -> None:
        if hasattr(self, "sandbox"):
            self.sandbox.stop()

    def _restart(self, fail_rate: float, seed: int) -> None:
        self.sandbox.stop()
        self.fail_rate, self.fault_seed = fail_rate, seed
        self.sandbox = start_sandbox(self.db, token=self.token, fail_rate=fail_rate, seed=seed)

    def _config_path(self, base_url: str) -> Path:
        users = "".join(f"  - {{email: {e}, role: {r}}}\n" for e, r in sorted(self.users.items()))
        spaces = "".join(
            f"  - {{name: {w}, members: [{', '.join(sorted(m & set(self.users)))}]}}\n"
            for w, m in sorted(self.members.items())
        )
        body = f"users:\n  - {{email: {ADMIN}, role: admin}}\n{users}workspaces:\n{spaces}policy: {{max_removals: 1000}}\n"
        path = self.dir / "org.yaml"
        path.write_text(org_config(base_url, body))
        return path

    def _plan(self, base_url: str) -> PlannedOrganization:
        config = load_config(self._config_path(base_url))
        os.environ[TOKEN_ENV] = self.token
        with ApiClient(base_url, self.token, backoff_max=0.01, max_retries=3) as client:
            return read_and_diff(config, client, now=datetime.now(UTC))

    # --- rules -----------------------------------------------------------------------------

    @rule(
        users=desired_users,
        members=st.fixed_dictionaries({w: st.sets(st.sampled_from(EMAILS), max_size=4) for w in SPACES}),
    )
    def edit_config(self, users: dict[str, str], members: dict[str, set[str]]) -> None:
        self.users = users
        self.members = members
        self.applied_ok = False

    @rule(
        users=desired_users,
        members=st.fixed_dictionaries({w: st.sets(st.sampled_from(EMAILS), max_size=4) for w in SPACES}),
    )
    def edit_config_then_apply(self, users: dict[str, str], members: dict[str, set[str]]) -> None:
        """The everyday flow (a merged pull request), so edit-apply-edit-apply is common."""
        self.edit_config(users, members)
        self.apply()

    @precondition(lambda self: self.fail_rate == 0.0)
    @rule(
        action=st.sampled_from(["invite", "remove", "flip-role", "grant", "revoke"]),
        email=st.sampled_from(EMAILS),
        space=st.sampled_from(SPACES),
    )
    def out_of_band(self, action: str, email: str, space: str) -> None:
        api = Api(self.sandbox.base_url, self.token)
        users = api.users()
        spaces = api.workspaces()
        if action == "invite" and email not in users:
            api.request("POST", "/users/", {"email": email, "role": "developer"})
        elif action == "remove" and email in users:
            api.request("DELETE", f"/users/{users[email]['id']}/")
        elif action == "flip-role" and email in users:
            role = "admin" if users[email]["role"] == "developer" else "developer"
            api.request("PATCH", f"/users/{users[email]['id']}/", {"role": role})
        elif action == "grant" and email in users and space in spaces:
            api.request(
                "POST",
                "/workspace_memberships/",
                {"workspace_id": spaces[space]["id"], "user_id": users[email]["id"]},
            )
        elif action == "revoke" and email in users and space in spaces:
            for m in api.list("/workspace_memberships/"):
                if m["workspace_id"] == spaces[space]["id"] and m["user_id"] == users[email]["id"]:
                    api.request("DELETE", f"/workspace_memberships/{m['id']}/")
        self.applied_ok = False

    @rule(on=st.booleans(), seed=st.integers(0, 1000))
    def toggle_faults(self, on: bool, seed: int) -> None:
        self._restart(0.3 if on else 0.0, seed)

    @rule()
    def apply(self) -> None:
        try:
            planned = self._plan(self.sandbox.base_url)
            guard(planned, force=True, for_apply=True)
            with ApiClient(self.sandbox.base_url, self.token, backoff_max=0.01, max_retries=3) as client:
                report = apply_plan(planned.plan, client, current=planned.current, run_id=uuid.uuid4().hex)
        except ProvisionerError:
            self.applied_ok = False  # a failed read or a refused plan: nothing to promise
            return
        self.applied_ok = report.ok

    @invariant()
    def converged_after_a_successful_apply(self) -> None:
        if not getattr(self, "applied_ok", False):
            return
        faults = (self.fail_rate, self.fault_seed)
        self._restart(0.0, 0)  # inspect without faults
        try:
            state = snapshot(Api(self.sandbox.base_url, self.token))
            assert state.clean(), state
            assert state.users == {ADMIN: "admin", **self.users}
            assert state.workspaces >= set(self.members)  # workspaces are never deleted
            expected = {(w, e) for w, m in self.members.items() for e in m if e in self.users}
            assert state.memberships == expected
            assert self._plan(self.sandbox.base_url).plan.empty
        finally:
            self._restart(*faults)
        self.applied_ok = False  # checked once


ReconcileMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("PROVISIONER_SM_EXAMPLES", "8")),
    stateful_step_count=int(os.environ.get("PROVISIONER_SM_STEPS", "8")),
    deadline=None,
)
test_reconcile_state_machine = ReconcileMachine.TestCase
