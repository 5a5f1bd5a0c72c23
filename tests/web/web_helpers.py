"""Helpers for the web tests: the seeded world (two customers, their people, sites and a
release) and logging in through the portal form as a browser does."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import update
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x prefers `httpx2` for its TestClient and warns when it finds only `httpx`.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from websonic.accounts.models import Role
from websonic.accounts.service import add_customer, add_user
from websonic.accounts.throttle import LoginAttempts
from websonic.builds.models import Release
from websonic.core.db import utcnow
from websonic.platform import Platform
from websonic.settings import Settings
from websonic.sites.service import add_site, get_site

ADMIN = ("admin", "admin-password-for-tests")
DEVELOPER = ("dev", "developer-password-1")
ACME_OWNER = ("alice", "acme-owner-password")
GLOBEX_VIEWER = ("gary", "globex-viewer-password")


@dataclass
class World:
    settings: Settings
    platform: Platform


def make_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "environment": "development",
        "admin_password": ADMIN[1],
        "workers": 1,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def static_source(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "websonic.toml").write_text('[site]\nkind = "static"\n')
    (folder / "index.html").write_text("<h1>hello</h1>\n")
    return folder


def seed(platform: Platform, tmp_path: Path) -> None:
    with platform.transaction() as session:
        acme = add_customer(session, "acme", "ACME Corp", actor="test")
        globex = add_customer(session, "globex", "Globex", actor="test")
        add_user(session, *DEVELOPER, Role.DEVELOPER, customer=None, actor="test")
        add_user(session, *ACME_OWNER, Role.OWNER, customer=acme, actor="test")
        add_user(session, *GLOBEX_VIEWER, Role.VIEWER, customer=globex, actor="test")
        for ref in ("acme/brochure", "globex/shop"):
            add_site(
                session,
                platform.runner,
                ref,
                str(static_source(tmp_path / "sources" / ref)),
                actor="test",
            )
    with platform.transaction() as session:
        site = get_site(session, "acme/brochure")
        session.add(
            Release(
                site_id=site.id,
                number=1,
                digest="sha256:" + "ab" * 32,
                config_digest="sha256:" + "cd" * 32,
                size=3 * 1024 * 1024,
                layers=[],
                base_digest=None,
                tool_versions={},
                source_ref=site.source,
                source_revision=None,
                source_epoch=0,
                signature="c2lnbmF0dXJl",
                signed_payload="{}",
                signing_key_id="test-key",
                sbom_digest="sha256:" + "ef" * 32,
            )
        )


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def login(
    client: httpx.Client | TestClient, username: str, password: str, next_path: str = "/"
) -> httpx.Response:
    """Log in through the portal form, as a browser does (GET the form, POST it)."""
    page = client.get("/login")
    assert page.status_code == 200
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": form_token(page.text),
            "next": next_path,
        },
    )


def csrf_of(client: httpx.Client | TestClient) -> str:
    response = client.get("/api/v1/me")
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def end_login_delays(platform: Platform) -> None:
    """As if every failed login's delay had passed (the failures still count)."""
    with platform.transaction() as session:
        session.execute(update(LoginAttempts).values(blocked_until=utcnow()))
