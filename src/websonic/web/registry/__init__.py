"""The image registry's routes (``/v2/…`` and the token endpoint): parse, call, render.

The work is in ``websonic.registry``; see docs/registry.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from websonic.registry import names
from websonic.registry.callers import Caller, Challenge, anonymous
from websonic.registry.errors import UNSUPPORTED, RegistryError
from websonic.registry.names import Endpoint
from websonic.registry.service import Registry, open_registry
from websonic.registry.tokens import SERVICE
from websonic.web.auth import SESSION_COOKIE, client_addr, platform_of
from websonic.web.registry.responses import (
    blob_response,
    error_response,
    json_response,
    manifest_response,
    page_response,
)

router = APIRouter(include_in_schema=False)
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def registry_of(request: Request) -> Registry:
    """The app's registry, made on first use (its integrity cache lives as long as the app)."""
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        platform = platform_of(request)
        settings = platform.settings
        registry = open_registry(platform.transaction, settings.oci_dir, settings.keys_dir)
        request.app.state.registry = registry
    return registry


def caller_of(request: Request, registry: Registry) -> Caller:
    """Who is asking, from ``Authorization``: Basic (customer + API token) or Bearer (JWT)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    remote = client_addr(request)
    if not scheme:
        return anonymous(remote)
    if scheme.lower() == "bearer":
        return registry.bearer_caller(value.strip(), remote)
    if scheme.lower() == "basic":
        username, password = basic_credentials(value)
        return registry.basic_caller(username, password, remote)
    raise Challenge(message="unsupported authorization scheme")


def basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Challenge(message="malformed basic credentials") from exc
    username, colon, password = decoded.partition(":")
    if not colon:
        raise Challenge(message="malformed basic credentials")
    return username, password


def answer(request: Request, work: Callable[[Registry, Caller], Response]) -> Response:
    registry = registry_of(request)
    try:
        return work(registry, caller_of(request, registry))
    except RegistryError as exc:
        return error_response(request, exc)


def int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() else None


@router.get("/v2/")
@router.get("/v2", include_in_schema=False)
def base(request: Request) -> Response:
    """spec: Determining support; 401 with the Bearer challenge until authenticated."""

    def ping(registry: Registry, caller: Caller) -> Response:
        registry.ping(caller)
        return json_response({})

    return answer(request, ping)


@router.get("/v2/token")
@router.get("/token")
def token(request: Request) -> Response:
    """The distribution token endpoint: Basic (customer + pull token) or a portal session."""
    registry = registry_of(request)
    try:
        if request.query_params.get("service", SERVICE) != SERVICE:
            raise RegistryError(400, UNSUPPORTED, message="unknown service")
        caller = caller_of(request, registry)
        cookie = request.cookies.get(SESSION_COOKIE)
        if caller.principal is None and cookie:
            caller = registry.session_caller(cookie, client_addr(request))
        issued = registry.issue_token(caller, request.query_params.getlist("scope"))
    except RegistryError as exc:
        return error_response(request, exc, basic=True)
    return json_response(issued.body())


@router.get("/v2/_catalog")
def catalog(request: Request) -> Response:
    """spec: Listing repositories (only those the caller may pull)."""

    def listing(registry: Registry, caller: Caller) -> Response:
        page = registry.catalog(caller, int_param(request, "n"), request.query_params.get("last"))
        return page_response(request, "repositories", page, {})

    return answer(request, listing)


@router.api_route("/v2/{path:path}", methods=["GET", "HEAD"])
def content(request: Request, path: str) -> Response:
    """Manifests, blobs and tag lists of ``<customer>/<site>`` repositories."""

    def serve(registry: Registry, caller: Caller) -> Response:
        route = names.parse_route(path)
        download = request.method == "GET"
        if route.endpoint is Endpoint.MANIFEST:
            accept = request.headers.getlist("accept")
            found = registry.manifest(
                caller, route.name, route.reference, accept, download=download
            )
            return manifest_response(request, found)
        if route.endpoint is Endpoint.BLOB:
            blob = registry.blob(caller, route.name, route.reference)
            return blob_response(request, blob)
        last = request.query_params.get("last")
        page = registry.tags(caller, route.name, int_param(request, "n"), last)
        return page_response(request, "tags", page, {"name": route.name})

    return answer(request, serve)


@router.api_route("/v2/{path:path}", methods=WRITE_METHODS)
def read_only(request: Request, path: str) -> Response:
    """This registry is pull-only: pushes and deletes are an unsupported operation."""
    exc = RegistryError(405, UNSUPPORTED, message="this registry is read-only (pull only)")
    return error_response(request, exc)
