"""Who is asking: the portal session cookie, and CSRF checks for changes.

The API takes the session cookie plus an ``X-CSRF-Token`` header on unsafe methods; portal
forms carry the same token in a ``csrf_token`` field. (Bearer API tokens come with the token
issue.)
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Form, Request

from websonic.accounts.models import User
from websonic.accounts.sessions import find_session
from websonic.platform import Platform
from websonic.settings import Settings

SESSION_COOKIE = "websonic_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
VIEWER_KEY = "websonic.viewer"  # in the request's scope


class AuthRequired(Exception):
    """No live session: the API answers 401, the portal redirects to /login."""


class CsrfRejected(Exception):
    """An unsafe request without the session's CSRF token: 403."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in user of a request (detached from any database session)."""

    user: User
    session_id: int
    csrf_token: str


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def settings_of(request: Request) -> Settings:
    """The web app's settings (cookie policy, session lifetime)."""
    settings: Settings = request.app.state.settings
    return settings


def client_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def session_viewer(request: Request) -> Viewer | None:
    """The request's logged-in user, looked up once per request (the route policy's gate asks
    first, then the route's own dependency)."""
    if VIEWER_KEY not in request.scope:
        request.scope[VIEWER_KEY] = _find_viewer(request)
    viewer: Viewer | None = request.scope[VIEWER_KEY]
    return viewer


def _find_viewer(request: Request) -> Viewer | None:
    cookie_value = request.cookies.get(SESSION_COOKIE)
    if not cookie_value:
        return None
    settings = settings_of(request)
    ttl = dt.timedelta(minutes=settings.session_ttl_minutes)
    absolute = dt.timedelta(hours=settings.session_absolute_hours)
    with platform_of(request).transaction() as session:
        portal = find_session(session, cookie_value, renew=ttl, absolute=absolute)
        return Viewer(portal.user, portal.id, portal.csrf_token) if portal else None


def check_csrf(viewer: Viewer, token: str | None) -> None:
    if not token or not secrets.compare_digest(token.encode(), viewer.csrf_token.encode()):
        raise CsrfRejected()


def api_viewer(request: Request) -> Viewer:
    """The API's caller; unsafe methods must carry the session's CSRF token in a header."""
    viewer = session_viewer(request)
    if viewer is None:
        raise AuthRequired()
    if request.method not in SAFE_METHODS:
        check_csrf(viewer, request.headers.get(CSRF_HEADER))
    return viewer


def page_viewer(request: Request) -> Viewer:
    viewer = session_viewer(request)
    if viewer is None:
        raise AuthRequired()
    return viewer


def form_viewer(request: Request, csrf_token: Annotated[str, Form()] = "") -> Viewer:
    """The portal user posting a form, which must carry the session's CSRF token."""
    viewer = page_viewer(request)
    check_csrf(viewer, csrf_token)
    return viewer
