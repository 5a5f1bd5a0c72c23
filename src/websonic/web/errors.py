"""Domain errors as HTTP answers: problem+json in the API, an error page in the portal."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from websonic.accounts.passwords import HashingBusy
from websonic.accounts.sessions import LoginRefused, TooManyAttempts
from websonic.accounts.tokens import TokenRefused
from websonic.core.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    NotInitialised,
    PermissionDenied,
    VerificationFailed,
    WebsonicError,
)
from websonic.web.auth import AuthRequired, CsrfRejected
from websonic.web.templating import render

STATUS_OF: list[tuple[type[WebsonicError], int]] = [
    (NotFound, 404),
    (InvalidInput, 422),
    (AlreadyExists, 409),
    (PermissionDenied, 403),
    (LoginRefused, 401),
    (TokenRefused, 401),
    (TooManyAttempts, 429),
    (HashingBusy, 503),
    (NotInitialised, 503),
    (VerificationFailed, 500),  # the server's own copy failed its checks: never sent
]
TITLES = {
    400: "Bad request",
    401: "Not logged in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Already exists",
    422: "Invalid input",
    429: "Too many requests",
    503: "Unavailable",
}


def status_of(exc: WebsonicError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), 400)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    hint: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem in the API, the error page elsewhere."""
    title = TITLES.get(status, "Error")
    if not is_api(request):
        context = {"status": status, "title": title, "detail": detail, "hint": hint}
        return render(request, "error.html", context, status_code=status, headers=headers)
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if hint:
        body["hint"] = hint
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


async def on_websonic_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WebsonicError)
    headers = None
    if isinstance(exc, TooManyAttempts | HashingBusy):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(request, status_of(exc), exc.message, hint=exc.hint, headers=headers)


async def on_auth_required(request: Request, exc: Exception) -> Response:
    if not is_api(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    challenge = {"WWW-Authenticate": 'Cookie realm="websonic"'}
    return problem(request, 401, "Log in first.", headers=challenge)


async def on_csrf_rejected(request: Request, exc: Exception) -> Response:
    return problem(
        request, 403, "Missing or wrong CSRF token.", hint="Reload the page and try again."
    )


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    return problem(request, exc.status_code, detail, headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(WebsonicError, on_websonic_error)
    app.add_exception_handler(AuthRequired, on_auth_required)
    app.add_exception_handler(CsrfRejected, on_csrf_rejected)
    app.add_exception_handler(HTTPException, on_http_error)
