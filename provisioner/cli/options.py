"""Options shared by the commands, declared once."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from provisioner.api.pacing import PACE_PUBLISHED, Pace, per_minute_pair
from provisioner.escape import terminal
from provisioner.model import Config

F = Callable[..., object]


def config_option(f: F) -> F:
    return click.option(
        "-c",
        "--config",
        "configs",
        multiple=True,
        required=True,
        # Existence is checked by the config loader, as `validate` does: the same message and
        # exit code 1 for a missing file everywhere.
        type=click.Path(dir_okay=True, file_okay=True),
        help="A config file, or a folder whose *.yaml files form one organization. "
        "Repeat for several organizations.",
    )(f)


def endpoint_options(f: F) -> F:
    """``--api-url``, ``--sandbox`` and ``--pace``: where requests go, and how fast."""
    f = click.option(
        "--pace",
        type=PaceType(),
        default="auto",
        show_default=True,
        envvar="PROVISIONER_PACE",
        metavar="auto|published|off|LIST/OTHER",
        help="Keep to Recall.ai's published limits (60 list and 300 other requests a minute per key): "
        "auto paces the v2 API always and the management API on a region's endpoint only; published "
        "paces both wherever; off paces neither; LIST/OTHER (e.g. 600/3000) paces both at those "
        "numbers, for a sandbox started with the same --recall-limits. A 429 is always retried after "
        "its Retry-After.",
    )(f)
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


def base_option(f: F) -> F:
    """``--base PATH``: the target branch's config, which the plan is held to (one per ``-c``, in order)."""
    return click.option(
        "--base",
        "bases",
        multiple=True,
        metavar="PATH",
        help="The target branch's config (file or folder; one per -c, in order). Policy changes are "
        "shown first and in the digest, guards use the stricter policy, and an instance that is "
        "production there stays production here.",
    )(f)


def held_to_bases(configs: list[Config], bases: tuple[str, ...], *, api_url: str | None) -> list[Config]:
    """Each config held to its base config (``config.against_base``); as they are without ``--base``."""
    if not bases:
        return configs
    if len(bases) != len(configs):
        raise click.UsageError(f"give one --base per -c ({len(configs)} -c, {len(bases)} --base)")
    from provisioner.config.against_base import hold_to_base
    from provisioner.service.runner import load_organizations

    return [hold_to_base(c, b) for c, b in zip(configs, load_organizations(bases, api_url=api_url))]


def parallelism_option(f: F) -> F:
    return click.option(
        "--parallelism",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        help="How many requests may be in flight at once.",
    )(f)


def cache_options(f: F) -> F:
    """``--cache-dir``, ``--no-cache``, ``--refresh``: where the state snapshot lives, whether to use it."""
    f = click.option(
        "--refresh",
        is_flag=True,
        help="Read the whole organization even if a snapshot is current, and save a new snapshot.",
    )(f)
    f = click.option(
        "--no-cache",
        is_flag=True,
        envvar="PROVISIONER_NO_CACHE",
        help="Neither read nor save a snapshot: every plan reads the whole organization.",
    )(f)
    f = click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        default=None,
        envvar="PROVISIONER_CACHE_DIR",
        metavar="DIR",
        help="Keep the snapshot of what a plan read in DIR, so that the next plan reads only what "
        "changed [default: $XDG_CACHE_HOME/provisioner, else ~/.cache/provisioner].",
    )(f)
    return f


class PaceType(click.ParamType):  # type: ignore[type-arg]  # generic only in recent click; subscripting fails on 8.1
    """``--pace``: ``auto``, ``published``, ``off`` or ``LIST/OTHER`` requests a minute."""

    name = "pace"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Pace:
        if isinstance(value, Pace):
            return value
        try:
            return Pace.parse(str(value))
        except ValueError as problem:
            self.fail(f"{_excerpt(value)}: {problem}", param, ctx)


class PerMinuteType(click.ParamType):  # type: ignore[type-arg]  # generic only in recent click; subscripting fails on 8.1
    """``--recall-limits``: ``published`` (60/300) or ``LIST/OTHER`` requests a minute."""

    name = "per-minute"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        if str(value).strip().lower() == PACE_PUBLISHED:
            return Pace().list_per_minute, Pace().other_per_minute
        numbers = per_minute_pair(str(value))
        if numbers is None:
            self.fail(
                f"{_excerpt(value)} is not published nor LIST/OTHER requests a minute "
                "(whole numbers from 1, e.g. 600/3000)",
                param,
                ctx,
            )
        return numbers


class FiniteFloatRange(click.FloatRange):
    """click's ``FloatRange`` without ``nan`` and ``inf``, which pass its comparisons."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = float(super().convert(value, param, ctx))
        if not math.isfinite(number):
            self.fail(f"{_excerpt(value)} is not a finite number", param, ctx)
        return number


_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd])\s*$", re.ASCII)


def format_duration(value: timedelta) -> str:
    """``value`` as ``2d 3h``, ``5m 30s``, ``1s``: exact to the second, as a user writes it."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return " ".join(parts) or "0s"


def _excerpt(value: object, size: int = 40) -> str:
    """A short, escaped quote of what the user gave, for an error message."""
    text = str(value)
    return "'" + terminal(text[:size]) + ("…" if len(text) > size else "") + "'"


class DurationType(click.ParamType):  # type: ignore[type-arg]  # generic only in recent click; subscripting fails on 8.1
    """A duration such as ``90s``, ``30m``, ``24h`` or ``7d``, between ``minimum`` and ``maximum``.

    Only ASCII digits count (``int()`` would also take other scripts' digits),
    and the bounds keep every value a ``timedelta`` can hold, so a bad value is
    a usage error (exit 1), never a traceback.
    """

    name = "duration"

    def __init__(self, minimum: timedelta = timedelta(0), maximum: timedelta = timedelta(days=365)) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match:
            self.fail(
                f"{_excerpt(value)} is not a duration; write a whole number and a unit "
                "(s, m, h or d), e.g. 30m, 24h or 7d",
                param,
                ctx,
            )
        digits, unit = match.group(1), match.group(2)
        # Compared as a Python int before a timedelta is built (which would overflow);
        # 19 digits or more is too long anyway, and int() of 5,000 digits would raise.
        seconds = int(digits) * {"s": 1, "m": 60, "h": 3_600, "d": 86_400}[unit] if len(digits) < 19 else None
        if seconds is None or seconds > self.maximum.total_seconds():
            self.fail(
                f"{_excerpt(value)} is longer than the longest allowed, {format_duration(self.maximum)}",
                param,
                ctx,
            )
        duration = timedelta(seconds=seconds)
        if duration < self.minimum:
            self.fail(
                f"{_excerpt(value)} is shorter than the shortest allowed, {format_duration(self.minimum)}",
                param,
                ctx,
            )
        return duration
