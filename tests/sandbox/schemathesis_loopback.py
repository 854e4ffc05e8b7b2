"""Run the schemathesis CLI (``st``) in a process that can connect only to loopback.

    python tests/sandbox/schemathesis_loopback.py run schemas/openapi.yaml --url http://127.0.0.1:PORT/api/v1 ...

The arguments are the CLI's own. Before the CLI starts, ``socket.connect``
is replaced by a guard (as tests/conftest.py does for the suite itself): a
connection to anything but 127.0.0.0/8 or ::1 is refused, and a line
starting with ``REFUSED_MARKER`` is written to stderr so that the calling
test can fail on it. Nothing the fuzzer generates (a ``next`` link, a
redirect, a server URL in the contract) can reach another host.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

REFUSED_MARKER = "schemathesis-loopback-guard: refused"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback(address: object) -> bool:
    if not (isinstance(address, tuple) and address):
        return True  # AF_UNIX and the like are local by nature
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False  # a name: connect() would resolve it; only literal loopback addresses pass


def _refuse(address: object) -> None:
    print(f"{REFUSED_MARKER} {address!r}", file=sys.stderr, flush=True)
    raise ConnectionRefusedError(f"{REFUSED_MARKER} {address!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _loopback(address):
        _refuse(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _loopback(address):
        _refuse(address)
    return _real_connect_ex(self, address)


def main() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    from schemathesis.cli import schemathesis  # after the guard: nothing connects before it

    sys.exit(schemathesis(args=sys.argv[1:], prog_name="st"))


if __name__ == "__main__":
    main()
