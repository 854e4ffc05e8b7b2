"""A snapshot makes a plan faster, never different: a hypothesis state machine.

Config edits, out-of-band edits (users, roles, memberships, workspaces,
webhook endpoints, credentials and their secrets, API keys and their use), applies, injected faults,
compaction of the change history and corrupted cache files (snapshots and
cached configs alike) interleave with plans. Every ``compare`` step makes a
plan from the cache folder (its config from the config cache, its state from
the snapshot) and then one from the files and a full read, with nothing
written in between, and asserts that the configs, the current states, the
changes, the digests and the state fingerprints are identical. In-process
(``read_and_diff``) against a real sandbox on loopback.

Bounded for CI (well under a minute); ``PROVISIONER_SNAPSHOT_SM_EXAMPLES`` /
``PROVISIONER_SNAPSHOT_SM_STEPS`` raise it for a soak.
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from provisioner.api.client import ApiClient
from provisioner.api.snapshot import SnapshotCache
from provisioner.apply.executor import apply_plan
from provisioner.config import load_config, load_configs
from provisioner.config.cache import ConfigCache, load_cached
from provisioner.endpoint import OperatorAllowances
from provisioner.errors import ProvisionerError
from provisioner.model import Config
from provisioner.plan.digest import PlanTarget, plan_digest
from provisioner.sandbox import create_token, start_sandbox
from provisioner.service.plan import PlannedOrganization, guard, read_and_diff
from tests.sandbox.test_sandbox_credentials import full_body
from tests.support import TOKEN_ENV, Api, org_config

EMAILS = ["ann@acme.com", "ben@acme.com", "cat@acme.com", "dov@acme.com"]
SPACES = ["alpha", "beta", "gamma"]
ADMIN = "admin@example.com"
# A developer every config keeps, whose key plans too: what a developer's lists show differs
# (credentials without their digests), and so must their snapshot.
DEVELOPER = "obs@example.com"
HOOK = "https://hooks.example.invalid/{name}"

desired_users = st.dictionaries(st.sampled_from(EMAILS), st.sampled_from(["admin", "developer"]), max_size=4)
desired_members = st.fixed_dictionaries({w: st.sets(st.sampled_from(EMAILS), max_size=4) for w in SPACES})
OUT_OF_BAND = [
    "invite",
    "remove",
    "flip-role",
    "grant",
    "revoke",
    "new-workspace",
    "rename-workspace",
    "add-webhook",
    "drop-webhook",
    "make-key-and-use-it",
    "add-credential",
    "rotate-credential",
]


class SnapshotMachine(RuleBasedStateMachine):
    # The journal's share as shipped, and one that keeps every feed in the journal
    # (at test scale the shipped share mostly writes the snapshot whole).
    @initialize(journal_share=st.sampled_from([0.1, math.inf]))
    def start(self, journal_share: float = 0.1) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rel-snap-"))
        self.db = self.dir / "org.db"
        self.token = "snap-" + uuid.uuid4().hex
        self.cache = SnapshotCache(self.dir / "cache", tool_version="test", journal_share=journal_share)
        self.config_cache = ConfigCache(self.dir / "cache", tool_version="test")
        self.sandbox = start_sandbox(self.db, token=self.token)
        Api(self.sandbox.base_url, self.token).request(
            "POST", "/users/", {"email": DEVELOPER, "role": "developer"}
        )
        self.developer_token = create_token(self.db, DEVELOPER)
        self.faulty = False
        self.users: dict[str, str] = {}
        self.members: dict[str, set[str]] = {SPACES[0]: set()}
        self.hooks = False
        self.compared = 0
        self.config_hits: list[bool] = []  # each cached load: from the cache (True) or the files
        self.sources: list[str] = []  # how each compared snapshot plan read its state
        self.configs: list[bool] = []  # whether each compared cached plan's config was the cached one

    def teardown(self) -> None:
        if hasattr(self, "sandbox"):
            self.sandbox.stop()

    def _restart(self, fail_rate: float, seed: int) -> None:
        self.sandbox.stop()
        self.faulty = fail_rate > 0
        self.sandbox = start_sandbox(self.db, token=self.token, fail_rate=fail_rate, seed=seed)

    def _config(self) -> Path:
        users = "".join(f"  - {{email: {e}, role: {r}}}\n" for e, r in sorted(self.users.items()))
        spaces = ""
        for name, members in sorted(self.members.items()):
            spaces += f"  - name: {name}\n    members: [{', '.join(sorted(members & set(self.users)))}]\n"
            if self.hooks:
                spaces += f'    webhooks:\n      - {{url: "{HOOK.format(name=name)}", events: [bot.done]}}\n'
        body = (
            f"users:\n  - {{email: {ADMIN}, role: admin}}\n  - {{email: {DEVELOPER}, role: developer}}\n"
            f"{users}workspaces:\n{spaces}"
            "policy: {max_removals: 1000}\n"
        )
        path = self.dir / "org.yaml"
        path.write_text(org_config(self.sandbox.base_url, body))
        return path

    def _load(self, cached: bool) -> Config:
        """The config, from the files or (``cached``) through the config cache, as ``plan`` loads it."""
        path = str(self._config())
        if not cached:
            return load_config(path)

        def load(paths: Sequence[str], allowances: OperatorAllowances) -> list[Config]:
            return load_configs(list(paths), allowances=allowances)

        (config,), hit = load_cached([path], OperatorAllowances.from_environ(), self.config_cache, load)
        self.config_hits.append(hit)
        return config

    def _plan(self, cache: SnapshotCache | None, token: str | None = None) -> PlannedOrganization:
        config = self._load(cached=cache is not None)
        key = token or self.token
        os.environ[TOKEN_ENV] = key
        with ApiClient(self.sandbox.base_url, key, backoff_max=0.01, max_retries=3) as client:
            return read_and_diff(config, client, now=datetime.now(UTC), cache=cache)

    # --- rules -------------------------------------------------------------------------

    @rule(users=desired_users, members=desired_members, hooks=st.booleans())
    def edit_config(self, users: dict[str, str], members: dict[str, set[str]], hooks: bool) -> None:
        self.users, self.members, self.hooks = users, members, hooks

    @rule(action=st.sampled_from(OUT_OF_BAND), email=st.sampled_from(EMAILS), space=st.sampled_from(SPACES))
    def out_of_band(self, action: str, email: str, space: str) -> None:
        """One edit made behind the tool's back (with the sandbox's faults off, so that it lands)."""
        faulty = self.faulty
        if faulty:
            self._restart(0.0, 0)
        api = Api(self.sandbox.base_url, self.token)
        users, spaces = api.users(), api.workspaces()
        user, workspace = users.get(email), spaces.get(space)
        if action == "invite" and user is None:
            api.request("POST", "/users/", {"email": email, "role": "developer"})
        elif action == "remove" and user is not None:
            api.request("DELETE", f"/users/{user['id']}/")
        elif action == "flip-role" and user is not None:
            role = "admin" if user["role"] == "developer" else "developer"
            api.request("PATCH", f"/users/{user['id']}/", {"role": role})
        elif action == "grant" and user is not None and workspace is not None:
            api.request(
                "POST", "/workspace_memberships/", {"workspace_id": workspace["id"], "user_id": user["id"]}
            )
        elif action == "revoke" and user is not None and workspace is not None:
            for m in api.list("/workspace_memberships/"):
                if (m["workspace_id"], m["user_id"]) == (workspace["id"], user["id"]):
                    api.request("DELETE", f"/workspace_memberships/{m['id']}/")
        elif action == "new-workspace" and workspace is None:
            api.request("POST", "/workspaces/", {"name": space})
        elif action == "rename-workspace" and workspace is not None and f"{space}-old" not in spaces:
            api.request("PATCH", f"/workspaces/{workspace['id']}/", {"name": f"{space}-old"})
        elif action == "add-webhook" and workspace is not None:
            body = {"workspace_id": workspace["id"], "url": HOOK.format(name=space), "events": ["bot.done"]}
            api.request("POST", "/webhook_endpoints/", body)
        elif action == "drop-webhook":
            for hook in api.list("/webhook_endpoints/"):
                api.request("DELETE", f"/webhook_endpoints/{hook['id']}/")
        elif action == "add-credential" and workspace is not None:
            api.request("POST", "/credentials/", full_body(workspace["id"], "assembly_ai"))
        elif action == "rotate-credential":
            for credential in api.list("/credentials/"):
                api.request("PATCH", f"/credentials/{credential['id']}/", {"secrets": {"api_key": email}})
        elif action == "make-key-and-use-it" and user is not None and workspace is not None:
            status, made, _ = api.request(
                "POST", "/api_keys/", {"name": "oob", "workspace_id": workspace["id"], "user_id": user["id"]}
            )
            if status == 201:
                Api(self.sandbox.base_url, made["key"]).request("GET", "/me/")  # sets last_used_at
        if faulty:
            self._restart(0.3, 1)

    @rule(on=st.booleans(), seed=st.integers(0, 1000))
    def toggle_faults(self, on: bool, seed: int) -> None:
        self._restart(0.3 if on else 0.0, seed)

    @rule()
    def compact_history(self) -> None:
        Api(self.sandbox.base_url, self.token).request("POST", "/_sandbox/changes/compact")

    # Drawn from fixed ranges: the files and their sizes differ from run to run (ids,
    # times), and hypothesis must see the same choices when it replays a case.
    @rule(which=st.integers(0, 7), where=st.integers(0, 2**24), delta=st.integers(1, 255))
    def corrupt_snapshot(self, which: int, where: int, delta: int) -> None:
        files = sorted(self.cache.directory.glob("*.json")) if self.cache.directory.exists() else []
        if not files:
            return
        target = files[which % len(files)]
        raw = bytearray(target.read_bytes())
        at = where % len(raw)
        raw[at] = (raw[at] + delta) % 256
        target.write_bytes(bytes(raw))

    @rule()
    def apply(self) -> None:
        try:
            planned = self._plan(self.cache)
            guard(planned, force=True, for_apply=True)
            with ApiClient(self.sandbox.base_url, self.token, backoff_max=0.01, max_retries=3) as client:
                apply_plan(planned.plan, client, current=planned.current, run_id=uuid.uuid4().hex)
        except ProvisionerError:
            return  # a failed read or a refused plan

    @rule(as_developer=st.booleans())
    def compare(self, as_developer: bool = False) -> None:
        token = self.developer_token if as_developer else self.token
        try:
            cached = self._plan(self.cache, token)
            full = self._plan(None, token)
        except ProvisionerError:
            return  # an injected fault failed a read: nothing to compare
        assert cached.config == full.config
        assert cached.current == full.current
        assert cached.plan.changes == full.plan.changes
        assert cached.plan.state_fingerprint == full.plan.state_fingerprint
        target = PlanTarget.of(full.identity.organization)
        assert plan_digest(cached.plan, target) == plan_digest(full.plan, target)
        self.compared += 1
        self.sources.append(cached.read.source)
        self.configs.append(self.config_hits[-1])


SnapshotMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("PROVISIONER_SNAPSHOT_SM_EXAMPLES", "10")),
    stateful_step_count=int(os.environ.get("PROVISIONER_SNAPSHOT_SM_STEPS", "12")),
    deadline=None,
)
test_snapshot_plans_equal_full_read_plans = SnapshotMachine.TestCase


@pytest.mark.parametrize("journal_share", [0.1, math.inf])
def test_the_machine_compares_plans_from_the_snapshot_and_the_feed(journal_share: float) -> None:
    """The machine's comparison is not vacuous: a fixed run goes through every kind of read
    (with every feed kept in the journal, too)."""
    machine = SnapshotMachine()
    journals: list[int] = []
    try:
        machine.start(journal_share)
        machine.edit_config({"ann@acme.com": "developer"}, {"alpha": {"ann@acme.com"}}, True)
        machine.apply()
        for step in (
            lambda: None,  # the apply wrote after its read: the feed
            lambda: None,  # unchanged: the snapshot alone
            lambda: machine.out_of_band("invite", "ben@acme.com", "alpha"),
            lambda: machine.out_of_band("add-webhook", "ben@acme.com", "alpha"),
            lambda: machine.out_of_band("make-key-and-use-it", "ann@acme.com", "alpha"),
        ):
            step()
            machine.compare()
            journals.append(len(list(machine.cache.directory.glob("*.journal.json"))))
        machine.compare(as_developer=True)  # another user's snapshot: read in full
        machine.compare(as_developer=True)  # then their own
        # A removal the history then forgets: the feed answers 410, the plan reads in full.
        machine.out_of_band("remove", "ben@acme.com", "alpha")
        machine.compact_history()
        machine.compare()
        # A config edit: loaded from the files, then from the cache again.
        machine.edit_config({"ann@acme.com": "admin"}, {"alpha": {"ann@acme.com"}, "beta": set()}, False)
        machine.compare()
        machine.compare()
        # A damaged cached config (every file in the folder is damaged once): loaded from the files.
        for which in range(len(list(machine.cache.directory.glob("*.json")))):
            machine.corrupt_snapshot(which, 40, 1)
        machine.compare()
        sources, configs = machine.sources, machine.configs
    finally:
        machine.teardown()
    assert sources == ["feed", "snapshot", "feed", "feed", "feed", "full", "snapshot", "full", "snapshot"] + [
        "snapshot",
        "full",
    ]
    # Every feed went to the journal when its share allows any; at the shipped share the
    # few objects of this organization are written whole.
    assert journals == ([1] * 5 if journal_share == math.inf else [0] * 5)
    # The first compare's config was cached by the apply's plan before it; every
    # later one by the plan before it, but after an edit and after the damage.
    assert configs == [True] * 8 + [False, True, False]
