"""Hypothesis strategies for random organizations, shared by the export round trips.

Organizations are drawn so that the interesting cases are common, not lucky:
workspace names mix instances of the known environments (which fold) with
plain names (some of which look like instances but are not, or collide with a
base name); members are drawn from a few "teams", so identical member sets
(groups) and access shared across an environment (lifting) happen often.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from provisioner.model import (
    ACTIVE,
    ADMIN,
    DEVELOPER,
    INVITED,
    Identity,
    Membership,
    Organization,
    State,
    User,
    Workspace,
)

ENVIRONMENTS = ("development", "staging", "production")
FORMATS = ("{workspace}-{environment}", "{environment}.{workspace}", "{workspace}_{environment}")

_LOCAL = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "svc-ci", "o.brien", "a+b", "x_y"])
_DOMAIN = st.sampled_from(["acme.com", "example.org", "sub.acme.io"])
_BASES = ("notetaker", "recorder", "bot-api", "a")
# Plain names: ordinary ones, a base name (blocks folding of that base), one
# with an unknown environment, and YAML look-alikes that need quoting.
_PLAIN_NAMES = ("playground", "notetaker", "notetaker-qa", "shared", "yes", "null", "2026")
_ODD_NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)


@dataclass(frozen=True)
class Org:
    identity: Identity
    current: State
    workspace_name_format: str


@st.composite
def organizations(draw: st.DrawFn, *, odd_names: bool = False) -> Org:
    """A consistent organization: memberships only name existing users and workspaces.

    ``odd_names`` adds arbitrary Unicode workspace names (for the text-level
    round trip; the config loader may reasonably restrict names).
    """
    fmt = draw(st.sampled_from(FORMATS))
    emails = draw(
        st.lists(
            st.builds(lambda local, d: f"{local}@{d}", _LOCAL, _DOMAIN), min_size=1, max_size=8, unique=True
        )
    )
    users = [
        User(
            email,
            draw(st.sampled_from([ADMIN, DEVELOPER])),
            draw(st.sampled_from([ACTIVE, ACTIVE, INVITED])),
        )
        for email in emails
    ]
    # At least one admin, as every real organization has (the loader may
    # insist on min_admins); the no-admin case has its own unit test.
    users[0] = User(users[0].email, ADMIN, ACTIVE)

    names: set[str] = set()
    for base in draw(st.lists(st.sampled_from(_BASES), max_size=3, unique=True)):
        envs = draw(st.lists(st.sampled_from(ENVIRONMENTS), min_size=1, unique=True))
        names.update(fmt.format(workspace=base, environment=env) for env in envs)
    names.update(draw(st.lists(st.sampled_from(_PLAIN_NAMES), max_size=3, unique=True)))
    if odd_names:
        names.update(draw(st.lists(_ODD_NAMES, max_size=2)))
    workspaces = sorted(names)

    teams = draw(st.lists(st.sets(st.sampled_from(emails), min_size=1), min_size=1, max_size=3))
    memberships: list[Membership] = []
    for name in workspaces:
        members: set[str] = set()
        for team in draw(st.lists(st.sampled_from(teams), max_size=2)):
            members |= team
        members |= draw(st.sets(st.sampled_from(emails), max_size=2))
        memberships += [Membership(name, email) for email in sorted(members)]

    organization = Organization(
        id="org_1",
        name=draw(st.sampled_from(["acme", "Acme Inc.", "ünï # corp"])),
        region="us-east-1",
    )
    identity = Identity("u_1", users[0].email, ADMIN, organization)
    return Org(identity, State.build(users, [Workspace(n) for n in workspaces], memberships), fmt)
