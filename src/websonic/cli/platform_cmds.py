"""init, serve, worker: the platform itself."""

from __future__ import annotations

from pathlib import Path

import typer

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json
from websonic.core.errors import InvalidInput
from websonic.platform import init_platform


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("serve")(serve)
    app.command("worker")(worker)


def init(
    ctx: typer.Context,
    admin: str = typer.Option("admin", "--admin", help="Username of the first admin."),
    as_json: bool = JsonOption,
) -> None:
    """Make the state folder, its database, the signing key and the first admin."""
    result = init_platform(get(ctx).settings, admin_username=admin)
    if as_json:
        emit_json(
            {
                "home": str(result.home),
                "created": result.created,
                "admin": result.admin_username,
                "signing_key": result.signing_key_id,
                "admin_password_file": str(result.admin_password_file or "") or None,
            }
        )
        return
    console.print(f"State folder: {result.home}" + ("" if result.created else " (already set up)"))
    console.print(f"Signing key: {result.signing_key_id}")
    if result.admin_password_file:
        console.print(
            f"Admin [bold]{result.admin_username}[/]: password in "
            f"{result.admin_password_file} (readable by you only; change it)."
        )
    elif result.admin_username:
        console.print(f"Admin [bold]{result.admin_username}[/] made with WEBSONIC_ADMIN_PASSWORD.")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    forwarded_allow_ips: str = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Address(es) of the TLS reverse proxy in front, whose X-Forwarded-For is trusted.",
    ),
    tls_cert: Path = typer.Option(
        None, "--tls-cert", help="Serve HTTPS with this PEM certificate (chain) file."
    ),
    tls_key: Path = typer.Option(None, "--tls-key", help="The certificate's PEM private key."),
) -> None:
    """Run the portal, the API and the background workers (nothing else to start)."""
    from websonic.web.app import create_app
    from websonic.web.server import make_server

    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("--tls-cert and --tls-key go together.")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise InvalidInput(f"{path} does not exist.")
    cli = get(ctx)
    app = create_app(cli.settings, platform=cli.platform)
    scheme = "https" if tls_cert else "http"
    console.print(f"WebSonic on {scheme}://{host}:{port}/ (state: {cli.settings.home})")
    tls = (tls_cert, tls_key) if tls_cert and tls_key else None
    make_server(app, host, port, forwarded_allow_ips=forwarded_allow_ips, tls=tls).run()


def worker(ctx: typer.Context) -> None:
    """Run job workers only (for WEBSONIC_QUEUE_URL=redis://… shared by several machines)."""
    import signal
    import threading

    from websonic.worker import Workers

    cli = get(ctx)
    workers = Workers(cli.platform)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    workers.start()
    console.print(f"Workers running ({cli.settings.workers} threads); Ctrl-C to stop.")
    stop.wait()
    workers.stop()
