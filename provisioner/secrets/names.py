"""Destination names: the name each server-made secret is delivered under.

A webhook's signing secret and an API key's secret go to the operator's sink
(a secret store, a CI variable, a file) under a name. Which name is a decision
the config makes, so it is desired state: the config's builder computes every
object's final name (``sink:`` or the default), the plan shows it, the server
records it on the object (``delivered_to``), and a changed name is a change a
reviewer sees.

Decisions worth knowing:

* **One spelling.** A name is ``[A-Z][A-Z0-9_]*``, at most ``MAX_NAME``
  characters: what ``gh secret set``, GitLab variables and every shell accept.
  A default name is made from the instance's name and a slug (every run of
  other characters becomes one ``_``); a name the config chose must already be
  a name (letters, digits, ``_``, starting with a letter), so nothing the
  author wrote is silently rewritten into another secret's name.
* **Cut names stay distinct.** A default longer than ``MAX_NAME`` is cut and
  ends in a hash of the whole name.
* **Uniqueness is the config's job** (``provisioner.config``): two objects
  with one final name would overwrite each other's secret, so a collision is a
  config error naming both.
"""

from __future__ import annotations

import hashlib
import re

NAME_PREFIX = "RECALL_"
# Long enough for any real workspace and slug; short enough for every secret
# store we know of. A longer default is cut and keeps a hash of the whole.
MAX_NAME = 200
_HASH_CHARS = 16
_NOT_IN_NAME = re.compile(r"[^A-Z0-9]+")
CHOSEN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def spelled(text: str) -> str:
    """``text`` as a destination name: upper case, each run of other characters one ``_``, cut with a hash."""
    whole = _NOT_IN_NAME.sub("_", text.upper()).strip("_")
    if len(whole) <= MAX_NAME:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:_HASH_CHARS].upper()
    return f"{whole[: MAX_NAME - _HASH_CHARS - 1].rstrip('_')}_{digest}"


def default_name(instance: str, slug: str) -> str:
    """``RECALL_<INSTANCE>_<SLUG>``, e.g. ``RECALL_NOTETAKER_PRODUCTION_API_KEY_CI_DEPLOY``."""
    return spelled(f"{NAME_PREFIX}{instance}_{slug}")


def chosen_name_problem(name: str) -> str | None:
    """Why a name the config chose (templates filled) cannot be a destination, or None."""
    if not name:
        return "the name is empty; write a secret name of letters, digits and _"
    if len(name) > MAX_NAME:
        return f"the name is longer than {MAX_NAME} characters; choose a shorter one"
    if not CHOSEN.fullmatch(name):
        return "a secret name is letters, digits and _, and starts with a letter (e.g. RECALL_CI_KEY)"
    return None


def api_key_slug(name: str) -> str:
    """The default name part of an API key's secret: ``API_KEY_<NAME>``."""
    return f"API_KEY_{name}"


def webhook_slug(url: str, host: str | None) -> str:
    """The default name part of a webhook's signing secret: ``WEBHOOK_<HOST>_<8 hex of the URL>``.

    The host tells two endpoints apart for a person; the hash keeps two URLs on
    one host apart.
    """
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    return f"WEBHOOK_{host or 'endpoint'}_{digest}"
