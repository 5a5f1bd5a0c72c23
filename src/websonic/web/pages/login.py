"""Logging in and out.

The login form is protected against cross-site posting by a double-submit token: GET /login
sets it in a cookie and in the form, and POST /login requires both to match.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from websonic.accounts.passwords import HashingBusy
from websonic.accounts.sessions import LoginRefused, TooManyAttempts, log_in, revoke_session
from websonic.web.auth import (
    SESSION_COOKIE,
    Viewer,
    client_addr,
    form_viewer,
    platform_of,
    settings_of,
)
from websonic.web.auth import session_viewer as current_viewer
from websonic.web.security import delete_cookie, set_cookie
from websonic.web.templating import render

router = APIRouter()
LOGIN_CSRF_COOKIE = "websonic_login_csrf"


def safe_next(target: str | None) -> str:
    """Only paths on this site: never ``//host`` or ``https://…`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_form(
    request: Request,
    next_path: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    context = {"csrf_token": token, "next": safe_next(next_path), "error": error, "viewer": None}
    response = render(request, "login.html", context, status_code=status_code, headers=headers)
    set_cookie(response, settings_of(request), LOGIN_CSRF_COOKIE, token, path="/login")
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if current_viewer(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return login_form(request, next)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), csrf_token.encode()):
        return login_form(
            request, next, error="The form expired; please try again.", status_code=403
        )
    settings = settings_of(request)
    ttl = min(  # renewals never pass the absolute lifetime either (web.auth)
        dt.timedelta(minutes=settings.session_ttl_minutes),
        dt.timedelta(hours=settings.session_absolute_hours),
    )
    try:
        cookie_value, _ = log_in(
            platform_of(request).sessions,
            username,
            password,
            ttl=ttl,
            remote_addr=client_addr(request),
            throttle=request.app.state.login_throttle,
        )
    except (TooManyAttempts, HashingBusy) as exc:
        return login_form(
            request,
            next,
            error=f"{exc.message} {exc.hint}",
            status_code=429 if isinstance(exc, TooManyAttempts) else 503,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except LoginRefused as exc:
        return login_form(request, next, error=exc.message, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, settings, SESSION_COOKIE, cookie_value)
    delete_cookie(response, settings, LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, viewer: Annotated[Viewer, Depends(form_viewer)]) -> Response:
    with platform_of(request).transaction() as session:
        revoke_session(session, viewer.session_id, remote_addr=client_addr(request))
    response = RedirectResponse("/login", status_code=303)
    delete_cookie(response, settings_of(request), SESSION_COOKIE)
    return response
