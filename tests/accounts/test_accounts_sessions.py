"""Passwords, portal sessions and login throttling, against a real SQLite state database."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from websonic.accounts.models import PortalSession, Role, User
from websonic.accounts.passwords import needs_rehash
from websonic.accounts.service import add_user
from websonic.accounts.sessions import (
    LOGIN_FAILURE,
    LoginRefused,
    LoginThrottle,
    authenticate,
    find_session,
    log_in,
    open_session,
    revoke_session,
)
from websonic.audit.models import AuditEvent
from websonic.core.db import utcnow
from websonic.platform import Platform

PASSWORD = "a-long-enough-password"
TTL = dt.timedelta(minutes=30)


@pytest.fixture
def user(platform: Platform) -> User:
    with platform.transaction() as session:
        return add_user(session, "dana", PASSWORD, Role.DEVELOPER, customer=None, actor="test")


def actions(platform: Platform) -> list[tuple[str, str]]:
    with platform.sessions() as session:
        rows = session.execute(select(AuditEvent.action, AuditEvent.target).order_by(AuditEvent.id))
        return [(action, target) for action, target in rows]


def test_authenticate(platform: Platform, user: User) -> None:
    with platform.transaction() as session:
        assert authenticate(session, "dana", PASSWORD).id == user.id
        for name, password, reason in [
            ("dana", "wrong-password!", "wrong password"),
            ("nobody", PASSWORD, "unknown user"),
        ]:
            with pytest.raises(LoginRefused) as refused:
                authenticate(session, name, password)
            assert refused.value.reason == reason
            assert str(refused.value) == "Wrong username or password."


def test_disabled_user_is_refused(platform: Platform, user: User) -> None:
    with platform.transaction() as session:
        session.get(User, user.id).disabled = True  # type: ignore[union-attr]
    with platform.transaction() as session, pytest.raises(LoginRefused, match="Wrong"):
        authenticate(session, "dana", PASSWORD)


def test_weak_hash_is_upgraded_on_login(platform: Platform, user: User) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with platform.transaction() as session:
        session.get(User, user.id).password_hash = weak  # type: ignore[union-attr]
    with platform.transaction() as session:
        authenticate(session, "dana", PASSWORD)
    with platform.sessions() as session:
        upgraded = session.get(User, user.id).password_hash  # type: ignore[union-attr]
    assert upgraded != weak and not needs_rehash(upgraded)


def test_only_the_hash_of_the_cookie_is_stored(platform: Platform, user: User) -> None:
    with platform.transaction() as session:
        cookie_value, portal = open_session(session, user, TTL, "192.0.2.7")
    assert portal.token_hash == hashlib.sha256(cookie_value.encode()).hexdigest()
    assert len(portal.csrf_token) >= 40 and portal.csrf_token != cookie_value
    with platform.sessions() as session:
        dump = "\n".join(str(row) for row in session.execute(text("SELECT * FROM portal_sessions")))
    assert cookie_value not in dump
    with platform.sessions() as session:
        found = find_session(session, cookie_value)
        assert found is not None and found.user.username == "dana"
        assert find_session(session, cookie_value + "x") is None


def test_expired_and_revoked_sessions_are_not_found(platform: Platform, user: User) -> None:
    with platform.transaction() as session:
        expired, old = open_session(session, user, TTL, None)
        old.expires_at = utcnow() - dt.timedelta(seconds=1)
        revoked, portal = open_session(session, user, TTL, None)
    with platform.transaction() as session:
        revoke_session(session, portal.id, remote_addr="192.0.2.7")
        revoke_session(session, portal.id, remote_addr="192.0.2.7")  # twice: no second event
    with platform.sessions() as session:
        assert find_session(session, expired) is None
        assert find_session(session, revoked) is None
    assert actions(platform).count(("logout", "dana")) == 1


def test_session_is_renewed_after_half_its_lifetime(platform: Platform, user: User) -> None:
    with platform.transaction() as session:
        cookie_value, portal = open_session(session, user, TTL, None)
        portal.expires_at = utcnow() + dt.timedelta(minutes=5)
    with platform.transaction() as session:
        found = find_session(session, cookie_value, renew=TTL)
        assert found is not None and found.expires_at > utcnow() + TTL - dt.timedelta(minutes=1)


def test_finding9_a_session_ends_its_absolute_lifetime_after_login(
    platform: Platform, user: User
) -> None:
    absolute = dt.timedelta(hours=12)
    with platform.transaction() as session:
        cookie_value, portal = open_session(session, user, TTL, None)
        portal.created_at = utcnow() - dt.timedelta(hours=11, minutes=50)
        portal.expires_at = utcnow() + dt.timedelta(minutes=5)  # used: due for renewal
    with platform.transaction() as session:
        found = find_session(session, cookie_value, renew=TTL, absolute=absolute)
        assert found is not None  # renewed, but only up to 12 hours after login
        assert found.expires_at <= found.created_at + absolute
    with platform.transaction() as session:
        session.get(PortalSession, portal.id).created_at -= dt.timedelta(minutes=11)  # type: ignore[union-attr]
    with platform.transaction() as session:
        assert find_session(session, cookie_value, renew=TTL, absolute=absolute) is None


def test_log_in_audits_every_outcome(platform: Platform, user: User) -> None:
    throttle = LoginThrottle()
    with pytest.raises(LoginRefused):
        log_in(
            platform.sessions,
            "dana",
            "wrong-password!",
            ttl=TTL,
            remote_addr="192.0.2.7",
            throttle=throttle,
        )
    cookie_value, _ = log_in(  # from another address: this one waits a second now
        platform.sessions, "dana", PASSWORD, ttl=TTL, remote_addr="192.0.2.8", throttle=throttle
    )
    assert cookie_value
    assert actions(platform)[-2:] == [(LOGIN_FAILURE, "dana"), ("login.success", "dana")]
