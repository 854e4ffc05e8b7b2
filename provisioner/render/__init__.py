"""Everything provisioner shows a person or a tool: one registry per kind of output.

Each kind of output has one module, one signature shared by all its formats,
and one ``{format: renderer}`` table, as octoDNS's plan outputs share one
``run(plans)`` (``PlanLogger``, ``PlanJson``, ``PlanMarkdown``):

=================  =========================  ==========================================
kind               registry                   one renderer's signature
=================  =========================  ==========================================
plan               ``plan.PLAN_RENDERERS``    ``(PlanView) -> str`` (text, json, markdown)
drift report       ``drift.DRIFT_RENDERERS``  ``(DriftReport) -> str`` (text, json, markdown)
apply report       ``apply_report.APPLY_RENDERERS``  ``(ApplyReport) -> str`` (text)
validate results   ``validate.VALIDATE_RENDERERS``   ``(Validation) -> Rendered`` (text, json, github)
=================  =========================  ==========================================

A command's ``--format`` choices are the keys of its registry, so a new
format is one renderer and one entry. The modules per format
(``plan_text``, ``plan_markdown``, ``plan_json``) hold the walk over a plan.

Decisions worth knowing:

* Every untrusted value (from a config or the API) is escaped where it joins
  the output, by the function of ``provisioner.escape`` for that destination
  (``terminal``, ``markdown_code``, ``github_message`` ...), never by a
  renderer's own code.
* Renderers return text and print nothing: the CLI decides where it goes.
* This package imports nothing heavy: each kind's module is imported by the
  command that shows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from provisioner.escape import markdown_code, terminal
from provisioner.model import Config


def heading(config: Config, fmt: str) -> str:
    """A section heading for one organization when a run covers several."""
    # File names are the pull request author's: escaped like any other value.
    if fmt == "markdown":
        return f"## Organization from {', '.join(markdown_code(s) for s in config.sources)}\n"
    return f"=== Organization from {', '.join(terminal(s) for s in config.sources)} ==="


def json_array(documents: Sequence[str]) -> str:
    """Several organizations' JSON documents as one JSON array (each keeps its own form)."""
    return "[\n" + ",\n".join(d.rstrip("\n") for d in documents) + "\n]\n"
