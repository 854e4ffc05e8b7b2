"""A local stand-in for the regional API: the v1 contract of ``schemas/openapi.yaml`` over SQLite.

It imports nothing from the rest of provisioner: the reconciler and the
sandbox share only the contract.

* ``start_sandbox(db_path, ...)`` serves it in a background thread (tests);
* ``provisioner sandbox serve`` serves it in the foreground (people, benchmarks);
* ``create_token(db_path, email)`` mints a key for an existing user;
* ``seed(db_path, users=..., workspaces=..., memberships=...)`` bulk-loads a db.
"""

from provisioner.sandbox.server import RunningSandbox, create_token, seed, start_sandbox
from provisioner.sandbox.store import SandboxError

__all__ = ["RunningSandbox", "SandboxError", "create_token", "seed", "start_sandbox"]
