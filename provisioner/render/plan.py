"""A plan in each of its formats, with its digest: the plan registry.

``plan``, ``show`` and ``apply`` all print plans through ``render_plan``, so
the digest reads the same in every form: a field of the JSON document, the
last line of the text and of the markdown comment (where
``provisioner.plan.digest.find_digest`` reads it back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field

from provisioner import __version__
from provisioner.frozen import frozen
from provisioner.model import State
from provisioner.plan.digest import PlanTarget, markdown_line, pin_fields, text_line
from provisioner.plan.model import Plan
from provisioner.render.plan_json import render_json
from provisioner.render.plan_markdown import render_markdown
from provisioner.render.plan_text import render_text


@frozen
class PlanView:
    """What every plan renderer gets: the plan, who it is for, and what it was made from.

    ``environments`` maps workspace instance name -> environment, so that
    production comes first and its grants are called out. ``current`` lets the
    markdown access matrix mark unchanged access (``None`` offline, for
    ``show``). ``color`` is for the text format only; the caller decides it.
    """

    plan: Plan
    target: PlanTarget
    environments: Mapping[str, str | None] = field(default_factory=dict)
    current: State | None = None
    color: bool = False

    @property
    def digest(self) -> str:
        return pin_fields(self.plan, self.target)["digest"]


PlanRenderer = Callable[[PlanView], str]


def _with_digest_line(text: str, line: str) -> str:
    return text.rstrip("\n") + "\n\n" + line + "\n"


def plan_text(view: PlanView) -> str:
    """Terraform-like text (``provisioner.render.plan_text``), then ``Plan digest: …``."""
    text = render_text(view.plan, color=view.color, environments=view.environments)
    return _with_digest_line(text, text_line(view.digest))


def plan_markdown(view: PlanView) -> str:
    """A pull-request comment (``provisioner.render.plan_markdown``), then ``Plan digest: `…```."""
    text = render_markdown(view.plan, environments=view.environments, current=view.current)
    return _with_digest_line(text, markdown_line(view.digest))


def plan_json(view: PlanView) -> str:
    """The plan document with its pin (``digest``, ``organization_id``, ``region``)."""
    return render_json(view.plan, tool_version=__version__, extra=pin_fields(view.plan, view.target))


# The order is the order of ``--format``'s choices in ``--help``.
PLAN_RENDERERS: Mapping[str, PlanRenderer] = {
    "text": plan_text,
    "json": plan_json,
    "markdown": plan_markdown,
}


def render_plan(view: PlanView, fmt: str) -> str:
    """One plan in ``fmt`` (a key of ``PLAN_RENDERERS``)."""
    return PLAN_RENDERERS[fmt](view)
