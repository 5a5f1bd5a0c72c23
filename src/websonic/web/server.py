"""Running the app with uvicorn: what `websonic serve` calls.

Behind a TLS reverse proxy, pass ``forwarded_allow_ips`` (the proxy's address) so that client
addresses (used by login throttling and the audit log) come from ``X-Forwarded-For``.
"""

from __future__ import annotations

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
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
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
