"""Where a plan's server-made secrets go: the "Secrets this apply writes" section of every plan form.

A webhook's signing secret and an API key's secret are made by the server and
delivered by apply to the operator's sink under a destination name that the
config decides (``sink:`` or the default; ``provisioner.secrets.names``). That
name is a decision a reviewer must see: a pull request that points a
production key at a variable its own jobs can read changes nothing else. So
each plan lists, before anything that can be shortened, every destination its
apply writes and the object whose secret goes there. The names are also part
of the digest (each type's ``material``), so a comment without them cannot be
the reviewed plan.
"""

from __future__ import annotations

from provisioner.frozen import frozen
from provisioner.plan.model import Plan
from provisioner.resources.registry import REGISTRY


@frozen(slots=True)
class Delivery:
    """One secret an apply delivers: its destination ``name``, the object it belongs to (``what``),
    and whether the config chose the name (``sink:``) rather than taking the default."""

    name: str
    what: str
    chosen: bool = True


def deliveries(plan: Plan) -> tuple[Delivery, ...]:
    """Every secret the plan's apply delivers, by destination name (untrusted text: escape it)."""
    out = []
    for change in plan.changes:
        kind = REGISTRY[change.type]
        if kind.makes_secret(change):
            made = kind.delivery(change)
            if made is not None:
                out.append(Delivery(*made))
    return tuple(sorted(out, key=lambda d: (d.name, d.what)))
