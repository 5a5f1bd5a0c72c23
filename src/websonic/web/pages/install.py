"""The installer's endpoints: what a customer's server fetches to install a site by itself.

    GET /install.sh, /install.sh.sig               the installer and the agency's signature
    GET /install/{customer}/{site}?token=…         the installer with the portal's values
    GET /install/{customer}/{site}/plan[?release=N]  the signed plan   (Basic CUSTOMER:TOKEN)
    GET /install/{customer}/{site}/secrets         the site's secrets  (Basic CUSTOMER:TOKEN)

Tokens must carry the ``install`` scope. The plan and secrets take the token in an
``Authorization`` header (never in a URL, so it stays out of access logs); only the one-liner
carries it in its query, because that is what a customer pastes.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from websonic.installer import remote
from websonic.installer.script import installer_text
from websonic.web.auth import client_addr, platform_of, settings_of

router = APIRouter()
SHELL = "text/x-shellscript; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store"}


def public_url(request: Request) -> str:
    """The address servers reach WebSonic at: WEBSONIC_PUBLIC_URL, else this request's."""
    configured = settings_of(request).public_url
    return (configured or str(request.base_url)).rstrip("/")


def basic_token(request: Request, customer: str) -> str:
    """The token of ``Authorization: Basic CUSTOMER:TOKEN`` ("" when absent or malformed)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return password if user == customer else ""


@router.get("/install.sh")
def installer() -> PlainTextResponse:
    return PlainTextResponse(installer_text(), media_type=SHELL)


@router.get("/install.sh.sig")
def installer_signature(request: Request) -> PlainTextResponse:
    return PlainTextResponse(remote.installer_signature(platform_of(request)).decode())


@router.get("/install/{customer}/{site}")
def one_liner(customer: str, site: str, request: Request, token: str = "") -> PlainTextResponse:
    platform = platform_of(request)
    with platform.transaction() as session:
        found = remote.site_for_token(session, remote.install_token(session, token), customer, site)
        body = remote.served_installer(platform, found, token, public_url(request))
    return PlainTextResponse(body, media_type=SHELL, headers=NO_STORE)


@router.get("/install/{customer}/{site}/plan")
def plan(
    customer: str, site: str, request: Request, release: int | None = None
) -> PlainTextResponse:
    platform = platform_of(request)
    with platform.transaction() as session:
        token = remote.install_token(session, basic_token(request, customer))
        found = remote.site_for_token(session, token, customer, site)
        body = remote.signed_plan(platform, session, found, release, public_url(request))
    return PlainTextResponse(body.decode("utf-8"), headers=NO_STORE)


@router.get("/install/{customer}/{site}/secrets")
def secrets(customer: str, site: str, request: Request) -> PlainTextResponse:
    platform = platform_of(request)
    with platform.transaction() as session:
        token = remote.install_token(session, basic_token(request, customer))
        found = remote.site_for_token(session, token, customer, site)
        body = remote.secrets_file(platform, session, found, token, client_addr(request))
    return PlainTextResponse(body.decode("utf-8"), headers=NO_STORE)
