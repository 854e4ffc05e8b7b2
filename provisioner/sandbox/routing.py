"""The sandbox's routing tables: one Werkzeug rule per path, its methods mapped to endpoints.

Decisions worth knowing:

* **One rule per path, not one per method.** Werkzeug compiles every rule when
  the map is built (a regular expression and two URL builders generated as
  Python code), and the sandbox is built by every command run on an embedded
  sandbox. The v1 table had 45 method rules over 21 paths; building it was a
  tenth of a quickstart ``plan``. A rule's endpoint is the sorted
  ``(method, endpoint)`` pairs of its path (hashable, as Werkzeug requires),
  and ``match`` picks the request's. Matching, 404s and 405s (with the path's
  methods) are Werkzeug's, as before.
* ``HEAD`` is answered as ``GET`` (Werkzeug adds it to every rule with GET).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from werkzeug.routing import Map, Rule, RuleFactory
from werkzeug.wrappers import Request


class Route(NamedTuple):
    """A matched route: its rule (``/api/v1/users/<id>/``) and the endpoint for the method."""

    rule: str
    endpoint: str


def route_map(table: Iterable[tuple[str, Mapping[str, str]]]) -> Map:
    """A map of ``(path rule, {method: endpoint})`` rows, one Werkzeug rule per row."""
    rules: list[RuleFactory] = [
        Rule(path, methods=list(endpoints), endpoint=tuple(sorted(endpoints.items())))
        for path, endpoints in table
    ]
    return Map(rules)


def match(table: Map, request: Request) -> tuple[Route, dict[str, str]]:
    """The route and path values of ``request``; Werkzeug's NotFound, MethodNotAllowed or
    RequestRedirect when there is none. Every path value is a string (default converter)."""
    rule, values = table.bind_to_environ(request.environ).match(return_rule=True)
    endpoints = dict(rule.endpoint)
    method = "GET" if request.method == "HEAD" else request.method
    return Route(rule.rule, endpoints[method]), {key: str(value) for key, value in values.items()}


def routes(table: Map) -> Iterator[tuple[str, str, str]]:
    """``(rule, method, endpoint)`` of every route of ``table`` (HEAD, answered as GET, not listed)."""
    for rule in table.iter_rules():
        for method, endpoint in rule.endpoint:
            yield rule.rule, method, endpoint
