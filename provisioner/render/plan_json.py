"""The plan as JSON text: the plan document (``provisioner.plan.serialize``) printed.

The document is validated against ``schemas/plan.schema.json`` before it is
returned, so what we emit is what we document. The text is byte-identical for
the same inputs: sorted keys, fixed separators, a trailing newline. JSON's own
encoder escapes every value; nothing else is needed for this destination.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from provisioner.plan.deliveries import deliveries
from provisioner.plan.model import Plan
from provisioner.plan.serialize import plan_to_dict, validate_plan_document


def render_json(plan: Plan, *, tool_version: str, extra: Mapping[str, Any] | None = None) -> str:
    """The plan as JSON text, validated against the schema, with a trailing newline.

    ``extra`` adds the optional top-level fields the schema describes (the
    digest and the organization's id and region, see ``provisioner.plan.digest``).
    """
    document = plan_to_dict(plan, tool_version=tool_version, extra=extra)
    # Where each server-made secret goes: derived from the changes, for readers of this form.
    document["secrets_written"] = [{"name": d.name, "object": d.what} for d in deliveries(plan)]
    validate_plan_document(document)
    return json.dumps(document, sort_keys=True, indent=2, separators=(",", ": "), ensure_ascii=False) + "\n"
