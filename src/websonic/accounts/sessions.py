"""Logging in and out of the portal: password checks, browser sessions, login throttling.

A browser session is a random cookie value; only its SHA-256 is stored, with a random CSRF
token the portal puts in its forms and the API expects in ``X-CSRF-Token``. Sessions expire
after a time-to-live that is renewed while the session is used, and end at the latest an
absolute lifetime after login, however much they are used; they can be revoked (logout).

Failed logins are throttled per (username, client address) and per client address with
growing delays (:mod:`websonic.accounts.throttle`, in the state database: the limit holds
across restarts and across several web processes sharing one database). Every outcome is
also audited (``login.failure``, ``login.throttled``, ``login.success``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, sessionmaker

from websonic.accounts.models import PortalSession, User
from websonic.accounts.passwords import hash_password, needs_rehash, verify_password
from websonic.accounts.service import WrongCurrentPassword, change_own_password, get_user
from websonic.accounts.throttle import Claim, LoginThrottle, TooManyAttempts
from websonic.audit.service import record
from websonic.core.db import transaction, utcnow
from websonic.core.errors import InvalidInput, WebsonicError

__all__ = ["LoginRefused", "LoginThrottle", "TooManyAttempts", "change_password", "log_in"]

LOGIN_FAILURE = "login.failure"
TARGET_LENGTH = 200


class LoginRefused(WebsonicError):
    """Wrong username or password, or a disabled account (the message never says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__("Wrong username or password.")
        self.reason = reason


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so both cases take as long."""
    return hash_password(secrets.token_urlsafe(18))


def authenticate(session: Session, username: str, password: str) -> User:
    """The enabled user with this password (its hash upgraded if the parameters changed)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_dummy_hash(), password)
        raise LoginRefused("unknown user")
    if not verify_password(user.password_hash, password):
        raise LoginRefused("wrong password")
    if user.disabled:
        raise LoginRefused("disabled")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def hash_cookie(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode("utf-8")).hexdigest()


def open_session(
    session: Session, user: User, ttl: dt.timedelta, remote_addr: str | None
) -> tuple[str, PortalSession]:
    """A new session for ``user``: the cookie value (given out once) and its stored record."""
    cookie_value = secrets.token_urlsafe(32)
    portal = PortalSession(
        token_hash=hash_cookie(cookie_value),
        csrf_token=secrets.token_urlsafe(32),
        user=user,
        expires_at=utcnow() + ttl,
        revoked_at=None,
        remote_addr=remote_addr,
    )
    session.add(portal)
    session.flush()
    return cookie_value, portal


def find_session(
    session: Session,
    cookie_value: str,
    *,
    renew: dt.timedelta | None = None,
    absolute: dt.timedelta | None = None,
) -> PortalSession | None:
    """The live session of this cookie (with its user loaded), or None if expired or revoked.

    With ``renew``, a session used after half its lifetime is extended to ``now + renew``, but
    never past ``absolute`` after it was opened: then it ends, however much it is used.
    """
    portal = session.scalar(
        select(PortalSession)
        .options(joinedload(PortalSession.user).joinedload(User.customer))
        .where(PortalSession.token_hash == hash_cookie(cookie_value))
    )
    now = utcnow()
    if portal is None or portal.revoked_at is not None or portal.expires_at <= now:
        return None
    if portal.user.disabled:
        return None
    end = portal.created_at + absolute if absolute is not None else None
    if end is not None and end <= now:
        return None
    if renew is not None and portal.expires_at - now < renew / 2:
        portal.expires_at = min(now + renew, end) if end is not None else now + renew
    return portal


def revoke_session(session: Session, session_id: int, *, remote_addr: str | None) -> None:
    """Log out: the session's cookie is refused from now on (revoking twice changes nothing)."""
    portal = session.get(PortalSession, session_id, options=[joinedload(PortalSession.user)])
    if portal is None or portal.revoked_at is not None:
        return
    portal.revoked_at = utcnow()
    record(
        session,
        f"user:{portal.user.username}",
        "logout",
        customer_id=portal.user.customer_id,
        target=portal.user.username,
        remote_addr=remote_addr,
    )


def log_in(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    *,
    ttl: dt.timedelta,
    remote_addr: str | None,
    throttle: LoginThrottle,
) -> tuple[str, PortalSession]:
    """Claim the throttle, check the password, open a session; every outcome is audited.

    Takes the session factory: the throttle claim and a failure are each committed on their
    own, before and after the password check.
    """
    target = username[:TARGET_LENGTH]
    claim = _claim(sessions, throttle, username, remote_addr)
    try:
        with transaction(sessions) as session:
            user = authenticate(session, username, password)
            cookie_value, portal = open_session(session, user, ttl, remote_addr)
            throttle.succeeded(session, claim)
            record(
                session,
                f"user:{user.username}",
                "login.success",
                customer_id=user.customer_id,
                target=target,
                remote_addr=remote_addr,
            )
            return cookie_value, portal
    except LoginRefused as exc:
        _record_failure(sessions, LOGIN_FAILURE, target, exc.reason, remote_addr)
        raise


def change_password(
    sessions: sessionmaker[Session],
    username: str,
    current: str,
    new: str,
    *,
    session_id: int,
    remote_addr: str | None,
    throttle: LoginThrottle,
) -> int:
    """A logged-in user's own password change, throttled like a login: a wrong current
    password is a failed login, so a stolen session cannot be used to guess it. How many of
    the user's other sessions ended."""
    target = username[:TARGET_LENGTH]
    claim = _claim(sessions, throttle, username, remote_addr)
    try:
        with transaction(sessions) as session:
            user = get_user(session, username)
            ended = change_own_password(
                session, user, current, new, session_id=session_id, remote_addr=remote_addr
            )
            throttle.succeeded(session, claim)
            return ended
    except WrongCurrentPassword:
        _record_failure(sessions, LOGIN_FAILURE, target, "wrong current password", remote_addr)
        raise
    except InvalidInput:  # the current password was right (it is checked first)
        with transaction(sessions) as session:
            throttle.succeeded(session, claim)
        raise


def _claim(
    sessions: sessionmaker[Session], throttle: LoginThrottle, username: str, remote_addr: str | None
) -> Claim:
    try:
        return throttle.claim(sessions, username, remote_addr)
    except TooManyAttempts:
        target = username[:TARGET_LENGTH]
        _record_failure(sessions, "login.throttled", target, "throttled", remote_addr)
        raise


def _record_failure(
    sessions: sessionmaker[Session], action: str, target: str, reason: str, remote_addr: str | None
) -> None:
    with transaction(sessions) as session:
        record(
            session,
            "anonymous",
            action,
            target=target,
            detail={"reason": reason},
            remote_addr=remote_addr,
        )
