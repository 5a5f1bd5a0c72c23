"""The addresses WebSonic gives out (registry realm, installer URLs): never from the request.

A ``Host`` (or ``X-Forwarded-Host``) header is whatever the client sent: an address built from
it would send customers' servers, and their credentials, wherever the client chose. Addresses
come from ``WEBSONIC_PUBLIC_URL``; without it, the registry's realm falls back to the address
the connection was accepted on (the listening socket, which a client cannot choose), and the
installer's endpoints, whose addresses a server keeps, refuse to answer.
"""

from __future__ import annotations

from fastapi import Request

from websonic.web.auth import settings_of

DEFAULT_PORTS = {"http": 80, "https": 443}


def public_url(request: Request) -> str:
    """WEBSONIC_PUBLIC_URL, or InvalidInput saying how to set it."""
    return settings_of(request).require_public_url()


def configured_public_url(request: Request) -> str | None:
    configured = settings_of(request).public_url
    return configured.rstrip("/") if configured else None


def public_base(request: Request) -> str:
    """WEBSONIC_PUBLIC_URL, else the scheme and socket address this connection reached."""
    return configured_public_url(request) or socket_url(request)


def socket_url(request: Request) -> str:
    scheme = str(
        request.scope.get("scheme", "http")
    )  # the connection (TLS or not), or a trusted proxy
    host, port = request.scope.get("server") or ("127.0.0.1", DEFAULT_PORTS.get(scheme, 80))
    host = f"[{host}]" if ":" in str(host) else str(host)
    suffix = "" if port is None or DEFAULT_PORTS.get(scheme) == port else f":{port}"
    return f"{scheme}://{host}{suffix}"
