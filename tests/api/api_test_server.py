"""The scripted HTTP server on 127.0.0.1 for the HTTP client tests.

``responses`` mocks at the adapter level: it emulates status retries but never
calls ``Retry.sleep`` and never retries raised exceptions. The behaviour that
lives inside urllib3 (Retry-After waits, connection/read retries, the deadline)
is therefore tested against ``ScriptedServer`` (``tests/local_server.py``): it
answers from a script and records what it received.
"""

from tests.local_server import Reply, ScriptedServer, Seen

__all__ = ["Reply", "ScriptedServer", "Seen"]
