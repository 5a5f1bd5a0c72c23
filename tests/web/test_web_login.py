"""Logging in and out of the portal: login required, wrong passwords, throttling, CSRF,
expiry and cookie flags — through the real app and a real SQLite state folder."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI
from sqlalchemy import select, update

from websonic.accounts.models import PortalSession, User
from websonic.accounts.throttle import Backoff, LoginThrottle
from websonic.audit.models import AuditEvent
from websonic.core.db import utcnow
from websonic.web.app import create_app

from web.web_helpers import (
    ADMIN,
    DEVELOPER,
    TestClient,
    World,
    end_login_delays,
    form_token,
    login,
    make_settings,
)

API_READS = [
    "/api/v1/me",
    "/api/v1/customers",
    "/api/v1/customers/acme/sites",
    "/api/v1/sites/acme/brochure",
    "/api/v1/sites/acme/brochure/releases",
    "/api/v1/jobs/1",
    "/api/v1/jobs/1/log",
]


def audit_actions(world: World) -> list[str]:
    with world.platform.sessions() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_pages_redirect_to_login(client: TestClient) -> None:
    for path in ("/", "/jobs/1"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"
    assert client.post("/logout").status_code == 303


def test_api_requires_login(client: TestClient) -> None:
    for path in API_READS:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
    assert client.post("/api/v1/customers", json={"slug": "x"}).status_code == 401
    assert client.post("/api/v1/sites/acme/brochure/builds").status_code == 401


def test_login_then_dashboard_and_api(client: TestClient, world: World) -> None:
    response = login(client, *ADMIN, next_path="/jobs/1")
    assert response.status_code == 303
    assert response.headers["location"] == "/jobs/1"
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith("websonic_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # development settings
    assert client.get("/api/v1/me").json()["username"] == "admin"
    assert client.get("/").status_code == 200
    assert client.get("/login").status_code == 303  # already logged in
    assert audit_actions(world)[-1] == "login.success"


def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: TestClient, world: World
) -> None:
    wrong = login(client, "admin", "not-the-password")
    unknown = login(client, "nobody", "not-the-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong username or password." in response.text
        assert "websonic_session" not in response.headers.get("set-cookie", "")
    assert client.get("/api/v1/me").status_code == 401
    assert audit_actions(world)[-2:] == ["login.failure", "login.failure"]


def test_disabled_user_is_refused_and_loses_its_session(client: TestClient, world: World) -> None:
    assert login(client, *DEVELOPER).status_code == 303
    with world.platform.transaction() as session:
        session.execute(update(User).where(User.username == "dev").values(disabled=True))
    assert client.get("/api/v1/me").status_code == 401
    assert login(client, *DEVELOPER).status_code == 401


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    data = {"username": ADMIN[0], "password": ADMIN[1], "next": "/"}
    assert client.post("/login", data={**data, "csrf_token": "made-up"}).status_code == 403
    client.get("/login")  # sets the cookie, but the form field is missing
    assert client.post("/login", data=data).status_code == 403
    assert client.get("/api/v1/me").status_code == 401


def test_login_redirects_only_within_the_site(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client.cookies.clear()
        response = login(client, *ADMIN, next_path=target)
        assert response.headers["location"] == "/", target


def test_failed_logins_are_throttled_per_username(
    app: FastAPI, client: TestClient, world: World
) -> None:
    app.state.login_throttle = LoginThrottle(per_user=Backoff(base=dt.timedelta(minutes=1)))
    assert login(client, "admin", "wrong-password-guess").status_code == 401
    refused = login(client, *ADMIN)  # even the right password is not checked now
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60  # the first failure: one delay
    assert "Too many failed login attempts." in refused.text
    assert login(client, *DEVELOPER).status_code == 303  # another user is not affected
    assert audit_actions(world).count("login.throttled") == 1
    end_login_delays(world.platform)
    client.cookies.clear()
    assert login(client, *ADMIN).status_code == 303


def test_failed_logins_are_throttled_per_client_address(app: FastAPI, client: TestClient) -> None:
    per_address = Backoff(free=2, base=dt.timedelta(minutes=1))
    app.state.login_throttle = LoginThrottle(per_address=per_address)
    for name in ("a", "b", "c"):
        assert login(client, name, "wrong-password-guess").status_code == 401
    assert login(client, *ADMIN).status_code == 429


def test_logout_revokes_the_session(client: TestClient, app: FastAPI) -> None:
    login(client, *ADMIN)
    cookie_value = client.cookies["websonic_session"]
    assert client.post("/logout", data={}).status_code == 403  # no CSRF token
    assert client.get("/api/v1/me").status_code == 200
    token = form_token(client.get("/").text)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    with TestClient(app, follow_redirects=False) as other:
        other.cookies.set("websonic_session", cookie_value)
        assert other.get("/api/v1/me").status_code == 401
        assert other.get("/").status_code == 303


def test_expired_session_is_refused(client: TestClient, world: World) -> None:
    login(client, *ADMIN)
    with world.platform.transaction() as session:
        session.execute(update(PortalSession).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/").status_code == 303


def test_used_session_is_renewed(client: TestClient, world: World) -> None:
    login(client, *ADMIN)
    soon = utcnow() + dt.timedelta(minutes=1)
    with world.platform.transaction() as session:
        session.execute(update(PortalSession).values(expires_at=soon))
    assert client.get("/api/v1/me").status_code == 200
    with world.platform.sessions() as session:
        expires_at = session.scalar(select(PortalSession.expires_at))
    ttl = dt.timedelta(minutes=world.settings.session_ttl_minutes)
    assert expires_at is not None and expires_at > utcnow() + ttl - dt.timedelta(minutes=1)


def test_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # development


def test_production_cookies_are_secure(world: World) -> None:
    settings = make_settings(world.settings.home, environment="production")
    app = create_app(settings, platform=world.platform, start_workers=False)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        response = login(client, *ADMIN)
        assert response.status_code == 303
        cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
        assert cookies and all("Secure" in cookie for cookie in cookies)
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert client.get("/api/v1/me").status_code == 200
