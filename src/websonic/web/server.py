"""Running the app with uvicorn: what `websonic serve` calls.

Behind a TLS reverse proxy, pass ``forwarded_allow_ips`` (the proxy's address) so that client
addresses (used by login throttling and the audit log) come from ``X-Forwarded-For``.
"""

from __future__ import annotations

from pathlib import Path

import uvicorn
from fastapi import FastAPI

from websonic.settings import Settings
from websonic.web.app import create_app


def make_server(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    forwarded_allow_ips: str | None = None,
    tls: tuple[Path, Path] | None = None,
) -> uvicorn.Server:
    """``tls``: (certificate chain, private key) PEM files to serve HTTPS directly."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        log_level="info",
    )
    return uvicorn.Server(config)


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve the portal, the API and the job workers until interrupted."""
    make_server(create_app(settings), host, port, forwarded_allow_ips=forwarded_allow_ips).run()
