"""`provisioner sandbox`: run the local stand-in for the regional API, and mint keys for it.

The commands only parse options and call ``provisioner.sandbox``.
"""

from __future__ import annotations

import click

from provisioner.cli.options import FiniteFloatRange, PerMinuteType
from provisioner.sandbox import SandboxError, create_token
from provisioner.sandbox.app import API_PREFIX
from provisioner.sandbox.server import build_app, check_host, create_workspace_key, make_wsgi_server, prepare


def _sandbox_errors(error: SandboxError) -> click.ClickException:
    # The sandbox shares no code with the reconciler, so its one error type is
    # converted here rather than in the project's error hierarchy.
    return click.ClickException(str(error))


@click.group("sandbox")
def sandbox() -> None:
    """A local sandbox of the regional API (SQLite-backed) for trying plans and for tests."""


@sandbox.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless --public)."
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option(
    "--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite file; created if new."
)
@click.option(
    "--token", default=None, help="The admin's API key. Without it a new key is generated and printed once."
)
@click.option("--admin-email", default="admin@example.com", show_default=True, help="The admin of a new db.")
@click.option("--org-name", default="sandbox", show_default=True, help="Organization name of a new db.")
@click.option(
    "--region", default="us-east-1", show_default=True, help="Region reported by /me/ for a new db."
)
@click.option(
    "--latency-ms", default=0, type=click.IntRange(0, 600_000), help="Add this many ms to every response."
)
@click.option(
    "--rate-limit",
    default=None,
    type=FiniteFloatRange(min=0, min_open=True),
    help="At most N requests/second per key; the rest get 429.",
)
@click.option(
    "--fail-rate",
    default=0.0,
    type=FiniteFloatRange(0.0, 1.0),
    help="Probability that a request fails (500, 503 or dropped connection).",
)
@click.option("--seed", default=None, type=int, help="Seed for --fail-rate, for repeatable faults.")
@click.option(
    "--recall-limits",
    type=PerMinuteType(),
    is_flag=False,
    flag_value="published",
    default=None,
    metavar="[LIST/OTHER]",
    help="Enforce Recall.ai's published limits: 60 list and 300 other requests a minute, per "
    "workspace on /api/v2/ and per key on /api/v1/ (429 with Retry-After beyond them); "
    "LIST/OTHER (e.g. 600/3000) scales them for tests.",
)
@click.option("--public", is_flag=True, help="Allow a non-loopback --host. The sandbox has no real security.")
def serve(
    host: str,
    port: int,
    db_path: str,
    token: str | None,
    admin_email: str,
    org_name: str,
    region: str,
    latency_ms: int,
    rate_limit: float | None,
    fail_rate: float,
    seed: int | None,
    recall_limits: tuple[int, int] | None,
    public: bool,
) -> None:
    """Serve the sandbox API in the foreground until interrupted."""
    try:
        check_host(host, public)
        prepared = prepare(db_path, token=token, admin_email=admin_email, org_name=org_name, region=region)
    except SandboxError as error:
        raise _sandbox_errors(error) from None
    app = build_app(
        prepared.db,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        seed=seed,
        recall_limits=recall_limits or False,
    )
    server = make_wsgi_server(host, port, app)
    click.echo(f"Sandbox API at http://{host}:{server.server_port}{API_PREFIX} (db {db_path})", err=True)
    if prepared.generated:
        # Printed once, on stdout alone so that scripts can capture it; only its hash is stored.
        click.echo(f"Admin API key for {admin_email}: ", err=True, nl=False)
        click.echo(prepared.token)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        prepared.db.close()


@sandbox.group("token")
def token() -> None:
    """Manage API keys of sandbox users."""


@token.command("create")
@click.option(
    "--db",
    "db_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The sandbox's SQLite file.",
)
@click.option("--email", default=None, help="An existing user's email (default with --workspace: the admin).")
@click.option(
    "--workspace",
    default=None,
    help="Mint a v2 key scoped to this workspace instance (made if new), as Recall.ai's dashboard does.",
)
def token_create(db_path: str, email: str | None, workspace: str | None) -> None:
    """Print a new API key for an existing user (e.g. a developer), or a workspace's v2 key."""
    if email is None and workspace is None:
        raise click.UsageError("give --email, --workspace, or both")
    try:
        if workspace is not None:
            click.echo(create_workspace_key(db_path, workspace, email))
        else:
            assert email is not None
            click.echo(create_token(db_path, email))
    except SandboxError as error:
        raise _sandbox_errors(error) from None
