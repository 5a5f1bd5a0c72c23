"""The installer's endpoints: what a customer's server fetches to install a site by itself.

    GET  /install.sh, /install.sh.sig                 the installer and the agency's signature
    GET  /install/{customer}/{site}                   the installer with the portal's values
                                                      (Bearer CODE: a one-time install code)
    POST /install/{customer}/{site}/token             the server's install token, for the code
                                                      (Bearer CODE, used up), or a renewal of
                                                      the token (Basic CUSTOMER:TOKEN)
    GET  /install/{customer}/{site}/plan[?release=N]  the signed plan   (Basic CUSTOMER:TOKEN)
    GET  /install/{customer}/{site}/secrets           the site's secrets (Basic CUSTOMER:TOKEN)

No secret ever travels in a URL (access logs and proxies record URLs): codes and tokens come
in the ``Authorization`` header, and a request with ``?token=`` is refused. Codes and tokens
are bound to one site. Every address given out (the portal in the installer, the registry in
the plan) is WEBSONIC_PUBLIC_URL, never one taken from the request; without it these
endpoints refuse to answer.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from websonic.accounts.tokens import TokenRefused
from websonic.installer import remote
from websonic.installer.script import installer_text
from websonic.web.auth import client_addr, platform_of
from websonic.web.public import public_url

router = APIRouter()
SHELL = "text/x-shellscript; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store"}
NOT_IN_URLS = TokenRefused(
    "Tokens and codes are never accepted in a URL (access logs and proxies keep URLs).",
    hint="Use the one-liner of the download page: curl -fsSL -H 'Authorization: Bearer CODE' …",
)


def credentials(request: Request, scheme: str) -> str:
    """The credentials of ``Authorization: SCHEME …`` ("" when absent); refuses a URL that
    carries a token (it is in the access log already: revoke it)."""
    if "token" in request.query_params or "code" in request.query_params:
        raise NOT_IN_URLS
    given, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if given.lower() == scheme else ""


def basic_token(request: Request, customer: str) -> str:
    """The token of ``Authorization: Basic CUSTOMER:TOKEN`` ("" when absent or malformed)."""
    value = credentials(request, "basic")
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
def one_liner(customer: str, site: str, request: Request) -> PlainTextResponse:
    """The one-liner: the code is checked (not used up: the installer exchanges it)."""
    platform, code = platform_of(request), credentials(request, "bearer")
    portal = public_url(request)
    with platform.transaction() as session:
        found = remote.site_for_code(session, code, customer, site)
        body = remote.served_installer(platform, found, code, portal)
    return PlainTextResponse(body, media_type=SHELL, headers=NO_STORE)


@router.post("/install/{customer}/{site}/token")
def install_token(
    customer: str, site: str, request: Request, dry_run: bool = False
) -> PlainTextResponse:
    """A new install token of the site: for a one-time code (Bearer; with ``dry_run``, one
    that expires with the code), or to renew the token presented (Basic), which stays valid
    until the new one is first used."""
    platform, code = platform_of(request), credentials(request, "bearer")
    with platform.transaction() as session:
        if code:
            made = remote.exchange_code(session, code, customer, site, dry_run=dry_run)
        else:
            made = remote.renew_token(session, basic_token(request, customer), customer, site)
    return PlainTextResponse(made + "\n", headers=NO_STORE)


@router.get("/install/{customer}/{site}/plan")
def plan(
    customer: str, site: str, request: Request, release: int | None = None
) -> PlainTextResponse:
    platform, portal = platform_of(request), public_url(request)
    with platform.transaction() as session:
        token = remote.install_token(session, basic_token(request, customer))
        found = remote.site_for_token(session, token, customer, site)
        body = remote.signed_plan(platform, session, found, release, portal)
    return PlainTextResponse(body.decode("utf-8"), headers=NO_STORE)


@router.get("/install/{customer}/{site}/secrets")
def secrets(customer: str, site: str, request: Request) -> PlainTextResponse:
    platform = platform_of(request)
    with platform.transaction() as session:
        token = remote.install_token(session, basic_token(request, customer))
        found = remote.site_for_token(session, token, customer, site)
        body = remote.secrets_file(platform, session, found, token, client_addr(request))
    return PlainTextResponse(body.decode("utf-8"), headers=NO_STORE)
