"""A verified cache of loaded configs, so that a plan of an unchanged config does not parse it again.

``plan`` of a 10,000-user config spends most of its local time turning YAML
into a ``Config`` (the parse, the schema check, the semantic checks, the
expansion), and a plan from a state snapshot has little else to do. When the
same files were loaded before, with the same tool and the same operator
allowances, the result is the same ``Config``; this module keeps it, as JSON,
beside the state snapshots (``--cache-dir``).

Decisions worth knowing:

* **Keyed by everything loading depends on**: the bytes and names of every
  file each ``-c`` stands for, the ``-c`` arguments as given and the working
  folder (they become ``sources`` and ``secret_base``), the tool version, the
  cache format, the config schema's digest and the operator's allowances
  (``PROVISIONER_ALLOWED_*`` and ``--api-url``, which decide what a config may
  name). Any difference is a miss, and a miss is the ordinary load: an edited
  config is read again, and its errors are reported exactly as without a
  cache. Only a load that succeeded is saved, so a hit has no error to report.
* **And by the code that loads.** A release's version changes with its code,
  but a source checkout or an editable install keeps its version while the
  loader or the model changes; the key therefore also covers the bytes of the
  modules that make a ``Config`` (``config/``, ``model.py``, ``secrets/`` and
  the few helpers they use; ~0.2 MB, hashed once a run in about a millisecond).
* **One entry per set of ``-c`` arguments** (and working folder): an edited
  config replaces its entry rather than adding one, so the folder does not
  grow with every commit.
* **JSON, never pickle, and only the model's own types.** Tuples, mappings,
  frozensets, dates and the dataclasses of ``provisioner.model`` are tagged
  objects of one key; decoding builds nothing else, so a forged entry can make
  a wrong ``Config`` but cannot run code. A ``State`` is stored as the lists it
  is built from (its keys are its objects' identities).
* **Verified like the snapshot**: the file is the body, a newline and the
  body's SHA-256, checked before it is parsed. That catches a torn or damaged
  file, not an attacker (whoever can write the file can write the digest).
  A forged entry can mislead a plan, as a forged snapshot can, never an
  apply: ``apply``, ``drift``, ``validate`` and ``export`` never open this
  cache, and an apply's fresh plan then differs in digest from the comment
  (docs/threat-model.md).
* Anything unexpected (unreadable, damaged, another format, an unknown type)
  is a miss, logged at INFO; a cache that cannot be written is a warning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from itertools import starmap
from pathlib import Path
from types import MappingProxyType
from typing import Any

from provisioner import collector, fastcheck, model
from provisioner.config.files import MAX_BYTES, config_files
from provisioner.endpoint import OperatorAllowances
from provisioner.frozen import frozen
from provisioner.model import Config, State

__all__ = ["FORMAT", "ConfigCache", "decode", "encode", "load_cached"]

log = logging.getLogger("provisioner.config")

FORMAT = 2  # 2: a state as runs of one type
_PREFIX = "config-"

# One-key tags of the JSON objects that stand for what JSON has no word for.
_TUPLE, _DICT, _MAPPING, _FROZENSET, _DATETIME, _DATE, _STATE, _TYPE = "(", "{", "m", "<", "T", "D", "S", "$"


class CacheMiss(Exception):
    """An entry that cannot be used (why, in the message)."""


def _model_types() -> dict[str, type]:
    """The dataclasses of ``provisioner.model``: the only types an entry may build."""
    return {
        name: value
        for name, value in vars(model).items()
        if isinstance(value, type) and is_dataclass(value) and value.__module__ == model.__name__
    }


def _constructor(cls: type) -> Callable[..., Any]:
    """How a state's runs build objects of ``cls``: the model's fast constructor where it has one."""
    try:
        return model.fast_constructor(cls)
    except TypeError:  # a type with something to run at construction
        return cls


_TYPES = _model_types()
_FIELDS = {name: tuple(f.name for f in fields(cls)) for name, cls in _TYPES.items()}
_STATE_FIELDS = _FIELDS["State"]


def _encode(value: Any) -> Any:
    """``value`` as JSON-ready data: natives as they are, everything else a tagged one-key object."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, MappingProxyType | dict):
        pairs = [[_encode(k), _encode(v)] for k, v in value.items()]
        return {_MAPPING if isinstance(value, MappingProxyType) else _DICT: pairs}
    if isinstance(value, frozenset):
        return {_FROZENSET: [_encode(v) for v in value]}
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if isinstance(value, State):
        return {_STATE: [_state_objects(value, name) for name in _STATE_FIELDS]}
    name = type(value).__name__
    if _TYPES.get(name) is not type(value):
        raise TypeError(f"a config holds a {type(value).__qualname__}, which the cache cannot hold")
    return {_TYPE + name: [_encode(getattr(value, field)) for field in _FIELDS[name]]}


def _state_objects(state: State, name: str) -> list[list[Any]]:
    """One of ``state``'s mappings as runs of one type: ``[type, fields, fields, ...]``.

    Field lists, not tagged objects (the objects' identities are their keys): a
    state holds most of a config's objects (100,000 memberships), and a run is
    decoded by one ``starmap`` of its type, without a call of the JSON object
    hook or a type lookup per object.
    """
    runs: list[list[Any]] = []
    for obj in getattr(state, name).values():
        kind = type(obj).__name__
        if _TYPES.get(kind) is not type(obj):
            raise TypeError(f"a state holds a {type(obj).__qualname__}, which the cache cannot hold")
        if not runs or runs[-1][0] != kind:
            runs.append([kind])
        runs[-1].append([_encode(getattr(obj, field)) for field in _FIELDS[kind]])
    return runs


@functools.cache
def _run_constructor(name: str) -> Callable[..., Any]:
    return _constructor(_TYPES[name])  # KeyError for a forged type name: a miss


def _state(mappings: list[list[list[Any]]]) -> State:
    """A ``State`` from ``_state_objects``'s runs (one list of runs per mapping, in field order)."""
    lists: list[list[Any]] = []
    for runs in mappings:
        objects: list[Any] = []
        for run in runs:
            objects.extend(starmap(_run_constructor(run[0]), run[1:]))
        lists.append(objects)
    return State.build(*lists)


def encode(configs: Sequence[Config]) -> Any:
    """``configs`` as JSON-ready data; ``TypeError`` for a value outside the model.

    A ``State`` whose mappings are not keyed by their objects' identities (one
    not made by ``State.build``) cannot be stored as lists, and is refused too.
    """
    for config in configs:
        lists = (tuple(getattr(config.desired, name).values()) for name in _STATE_FIELDS)
        if State.build(*lists) != config.desired:
            raise TypeError("a desired state not keyed by its objects' identities")
    return [_encode(config) for config in configs]


def _decode_object(obj: dict[str, Any]) -> Any:
    """``json.loads``'s hook: one tagged object back to its value (inner ones are decoded first)."""
    if len(obj) != 1:
        raise CacheMiss("not a cache entry")
    ((tag, payload),) = obj.items()
    build = _DECODERS.get(tag)
    if build is not None:
        return build(payload)
    cls = _TYPES.get(tag[1:]) if tag.startswith(_TYPE) else None
    if cls is None or not isinstance(payload, list):
        raise CacheMiss(f"an entry holds an unknown type {tag[:40]!r}")
    return cls(*payload)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    _TUPLE: tuple,
    _DICT: lambda pairs: {k: v for k, v in pairs},
    _MAPPING: lambda pairs: MappingProxyType({k: v for k, v in pairs}),
    _FROZENSET: frozenset,
    _DATETIME: datetime.fromisoformat,
    _DATE: date.fromisoformat,
    _STATE: _state,
}


def decode(text: bytes | str) -> list[Config]:
    """The configs ``encode`` stored; ``CacheMiss`` for anything else."""
    try:
        configs = json.loads(text, object_hook=_decode_object)
    except CacheMiss:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:  # a forged shape
        raise CacheMiss(f"not a cache entry ({type(error).__name__})") from None
    if not isinstance(configs, list) or not all(isinstance(c, Config) for c in configs):
        raise CacheMiss("not a cache entry")
    return configs


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The modules whose code decides what a config loads to (the generated schema check is
# covered by the schema's digest, which it records).
_LOADING_CODE = (
    "config/*.py",
    "fastcheck.py",
    "frozen.py",
    "secrets/*.py",
    "model.py",
    "endpoint.py",
    "apiurl.py",
    "errors.py",
    "escape.py",
)
_GENERATED = "_schema_compiled.py"


def _bounded_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None if it cannot be read or is bigger than a config may be.

    Its size is checked before a byte is read: a 10 GB file named by a pull
    request costs the key no more memory than the loader's own refusal does.
    """
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_BYTES:
                return None
            raw = fh.read(MAX_BYTES + 1)  # and bounded, should it grow meanwhile
    except OSError:
        return None
    return raw if len(raw) <= MAX_BYTES else None


@functools.cache
def _code_digest() -> str:
    """SHA-256 over the names and bytes of the modules that load a config."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for pattern in _LOADING_CODE:
        for path in sorted(package.glob(pattern)):
            if path.name != _GENERATED:
                digest.update(f"{path.relative_to(package)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


@frozen
class ConfigCache:
    """Loaded configs kept in ``directory`` (the snapshot folder), for ``plan`` only."""

    directory: Path
    tool_version: str
    refresh: bool = False  # load the files even if an entry matches, and save it again

    def key(self, paths: Sequence[str], allowances: OperatorAllowances) -> str | None:
        """The digest of everything loading ``paths`` depends on; None when a path cannot be listed.

        (A path with a problem is loaded the ordinary way, which reports it.)
        """
        digest = hashlib.sha256()
        schema = fastcheck.schema_digest(fastcheck.CONFIG.schema_bytes())
        for part in (str(FORMAT), self.tool_version, schema, _code_digest(), repr(allowances)):
            digest.update(part.encode() + b"\0")
        digest.update(os.getcwd().encode("utf-8", "surrogateescape") + b"\0")
        for arg in paths:
            files = config_files(arg)
            if files is None:
                return None
            digest.update(b"-c\0" + arg.encode("utf-8", "surrogateescape") + b"\0")
            for shown, rel, path in files:
                raw = _bounded_bytes(path)
                if raw is None:  # unreadable or too big: the loader reports it, bounded
                    return None
                named = f"{shown}\0{rel}\0{len(raw)}\0".encode("utf-8", "surrogateescape")
                digest.update(named + raw)
        return digest.hexdigest()

    def path(self, paths: Sequence[str]) -> Path:
        """The entry of one set of ``-c`` arguments (in this working folder)."""
        named = "\0".join([os.getcwd(), *paths]).encode("utf-8", "surrogateescape")
        return self.directory / f"{_PREFIX}{_digest(named)[:32]}.json"

    def load(self, paths: Sequence[str], key: str) -> list[Config] | None:
        """The configs saved under ``key``, or None (why, at INFO) to load the files."""
        try:
            if self.refresh:
                raise CacheMiss("refresh")
            return self._read(self.path(paths), key)
        except CacheMiss as miss:
            log.info("config: loaded from its files (%s)", miss)
            return None

    def _read(self, path: Path, key: str) -> list[Config]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise CacheMiss("no cached config") from None
        except OSError as error:
            raise CacheMiss(f"unreadable cached config ({error.strerror or error})") from None
        body, _, stated = raw.rpartition(b"\n")
        if stated.decode("ascii", "replace") != _digest(body):
            raise CacheMiss("the cached config fails its integrity check")
        head, _, configs = body.partition(b"\n")
        if head != self._head(key):
            raise CacheMiss("the files, tool, schema or allowances differ from the cached config's")
        with collector.paused():
            loaded = decode(configs)
        log.info("config: from the cache (%s)", path.name)
        return loaded

    def _head(self, key: str) -> bytes:
        return json.dumps({"format": FORMAT, "tool_version": self.tool_version, "key": key}).encode()

    def save(self, paths: Sequence[str], key: str, configs: Sequence[Config]) -> None:
        """Keep ``configs`` (loaded from ``paths``, whose key is ``key``); a failure is logged, not raised."""
        try:
            encoded = json.dumps(encode(configs), separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
            log.info("config: not cached (%s)", error)
            return
        body = self._head(key) + b"\n" + encoded
        path = self.path(paths)
        try:
            _write(path, body + b"\n" + _digest(body).encode())
        except OSError as error:
            log.warning("could not save the loaded config in %s: %s", path.parent, error.strerror or error)


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp makes it 0600
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached(
    paths: Sequence[str],
    allowances: OperatorAllowances,
    cache: ConfigCache,
    load: Callable[[Sequence[str], OperatorAllowances], list[Config]],
) -> tuple[list[Config], bool]:
    """The configs of ``paths``, and whether they came from ``cache``.

    From the cache when it holds this very load; else ``load`` them (raising
    as ``load`` raises: the errors of an edited config are its own) and keep
    the result for the next plan.
    """
    key = cache.key(paths, allowances)
    if key is None:
        return load(paths, allowances), False
    cached = cache.load(paths, key)
    if cached is not None:
        return cached, True
    configs = load(paths, allowances)
    if cache.key(paths, allowances) == key:  # not edited while it was loading
        cache.save(paths, key, configs)
    return configs, False
