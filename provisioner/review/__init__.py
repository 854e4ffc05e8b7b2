"""The periodic access review: who can reach production, who holds admin, what changed.

``build.build_review`` makes a ``model.Review`` (pure); ``RENDERERS`` maps each
output format to its renderer, one module per format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from provisioner.review.model import Review
from provisioner.review.render_csv import render_csv
from provisioner.review.render_html import render_html
from provisioner.review.render_json import render_json
from provisioner.review.render_markdown import render_markdown

RENDERERS: Mapping[str, Callable[[Review], str]] = MappingProxyType(
    {"html": render_html, "csv": render_csv, "json": render_json, "markdown": render_markdown}
)

__all__ = ["RENDERERS"]
