"""Running the app with uvicorn: what `websonic serve` calls.

Behind a TLS reverse proxy, pass ``forwarded_allow_ips`` (the proxy's address) so that client
addresses (used by login throttling and the audit log) come from ``X-Forwarded-For``.

No secret goes in a URL WebSonic hands out, but a client may still put one there (an old
one-liner, a hand-made request): every log line uvicorn writes goes through :class:`MaskSecrets`,
which masks WebSonic tokens wherever they are and the values of secret-named query parameters.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from websonic.settings import Settings
from websonic.web.app import create_app

MASK = "***"
TOKEN_SECRET = re.compile(r"(wst_[0-9a-f]{16}_)[A-Za-z0-9_-]{43}")
SECRET_PARAMETER = re.compile(
    r"([?&](?:token|code|password|secret|access_token)=)[^&\s\"]*", re.IGNORECASE
)


def mask_secrets(text: str) -> str:
    """``text`` with WebSonic tokens and secret query values replaced by ``***``."""
    return SECRET_PARAMETER.sub(r"\g<1>" + MASK, TOKEN_SECRET.sub(r"\g<1>" + MASK, text))


class MaskSecrets(logging.Filter):
    """Masks secrets in a log record's message and arguments (the access log's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_secrets(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging, every handler filtered by :class:`MaskSecrets`."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"mask_secrets": {"()": MaskSecrets}}
    for handler in config["handlers"].values():
        handler["filters"] = ["mask_secrets"]
    return config


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
        log_config=log_config(),
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
