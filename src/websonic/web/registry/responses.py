"""Registry answers as HTTP: the spec's error JSON with its headers, manifests, streamed blobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response, StreamingResponse

from websonic.registry.callers import Challenge
from websonic.registry.errors import RegistryError
from websonic.registry.manifests import Manifest
from websonic.registry.ranges import Unsatisfiable, parse_range
from websonic.registry.service import OpenBlob, Page
from websonic.registry.tokens import SERVICE
from websonic.web.public import public_base

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
CHUNK = 1 << 20


def realm(request: Request) -> str:
    """The token endpoint, at WebSonic's public address: never one a request's Host chose."""
    return public_base(request) + "/v2/token"


def challenge_header(request: Request, exc: Challenge) -> str:
    parts = [f'realm="{realm(request)}"', f'service="{SERVICE}"']
    if exc.scope:
        parts.append(f'scope="{exc.scope}"')
    if exc.error:
        parts.append(f'error="{exc.error}"')
    return "Bearer " + ",".join(parts)


def error_response(request: Request, exc: RegistryError, *, basic: bool = False) -> Response:
    headers = dict(API_VERSION)
    if isinstance(exc, Challenge):
        headers["WWW-Authenticate"] = (
            f'Basic realm="{SERVICE}"' if basic else challenge_header(request, exc)
        )
    if request.method == "HEAD":
        return Response(status_code=exc.status, headers=headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def json_response(body: object, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, headers={**API_VERSION, **(headers or {})})


def page_response(request: Request, key: str, page: Page, extra: dict[str, object]) -> Response:
    headers = {}
    if page.next_last is not None:
        n = len(page.items)
        target = request.url.replace_query_params(n=n, last=page.next_last)
        headers["Link"] = f'<{target.path}?{target.query}>; rel="next"'
    return json_response({**extra, key: page.items}, headers)


def manifest_response(request: Request, manifest: Manifest) -> Response:
    headers = {
        **API_VERSION,
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.content)),
    }
    body = b"" if request.method == "HEAD" else manifest.content
    return Response(body, media_type=manifest.media_type, headers=headers)


def blob_response(request: Request, blob: OpenBlob) -> Response:
    """200 or 206 streamed from the open file (closed at the end); 416 if unsatisfiable."""
    etag = f'"{blob.digest}"'
    headers = {
        **API_VERSION,
        "Docker-Content-Digest": blob.digest,
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }
    if_range = request.headers.get("if-range")
    range_header = request.headers.get("range") if if_range in (None, etag) else None
    try:
        byte_range = parse_range(range_header, blob.size)
    except Unsatisfiable:
        blob.handle.close()
        headers["Content-Range"] = f"bytes */{blob.size}"
        return Response(status_code=416, headers=headers)
    start, length, status = 0, blob.size, 200
    if byte_range is not None:
        start, length, status = byte_range.start, byte_range.length, 206
        headers["Content-Range"] = byte_range.content_range(blob.size)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        blob.handle.close()
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        stream(blob.handle, start, length),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


async def stream(handle: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes from ``start``, a chunk at a time, read off the event loop."""
    try:
        await anyio.to_thread.run_sync(handle.seek, start)
        remaining = length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(handle.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()
