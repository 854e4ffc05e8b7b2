"""Options shared by the commands, declared once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Callable

import click

F = Callable[..., object]


def config_option(f: F) -> F:
    return click.option(
        "-c",
        "--config",
        "configs",
        multiple=True,
        required=True,
        type=click.Path(exists=True, dir_okay=True, file_okay=True),
        help="A config file, or a folder whose *.yaml files form one organization. "
        "Repeat for several organizations.",
    )(f)


def endpoint_options(f: F) -> F:
    f = click.option(
        "--sandbox",
        "sandbox",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="DBPATH",
        help="Run against an embedded sandbox whose organization persists in DBPATH "
        "(admin: admin@example.com). Needs no server and no key.",
    )(f)
    f = click.option(
        "--api-url",
        default=None,
        metavar="URL",
        help="Send requests (and the key) to this base URL instead of the config's "
        "(https, or http on loopback only). It also allows a config's api_url outside the "
        "four regions when it is the same URL; PROVISIONER_ALLOWED_API_URLS does so too.",
    )(f)
    return f


def parallelism_option(f: F) -> F:
    return click.option(
        "--parallelism",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        help="How many requests may be in flight at once.",
    )(f)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class DurationType(click.ParamType):
    """A duration such as ``90s``, ``30m``, ``24h`` or ``7d``."""

    name = "duration"

    def convert(self, value: object, param, ctx) -> timedelta:  # noqa: ANN001
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration; write e.g. 30m, 24h or 7d", param, ctx)
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
