"""Logging in and out of the portal: password checks, browser sessions, login throttling.

A browser session is a random cookie value; only its SHA-256 is stored, with a random CSRF
token the portal puts in its forms and the API expects in ``X-CSRF-Token``. Sessions expire
after a time-to-live that is renewed while the session is used, and can be revoked (logout).

Failed logins are throttled per username and per client address. The failures are counted
from the audit log (``login.failure`` events) in the state database, not in memory: the limit
holds across restarts and across several web processes sharing one database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from dataclasses import dataclass
from functools import cache

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, joinedload, sessionmaker

from websonic.accounts.models import PortalSession, User
from websonic.accounts.passwords import hash_password, needs_rehash, verify_password
from websonic.accounts.service import WrongCurrentPassword, change_own_password, get_user
from websonic.audit.models import AuditEvent
from websonic.audit.service import record
from websonic.core.db import transaction, utcnow
from websonic.core.errors import WebsonicError

LOGIN_FAILURE = "login.failure"
TARGET_LENGTH = 200


class LoginRefused(WebsonicError):
    """Wrong username or password, or a disabled account (the message never says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__("Wrong username or password.")
        self.reason = reason


class TooManyAttempts(WebsonicError):
    """Too many failed logins for this username or client address; retry later."""

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(
            "Too many failed login attempts.",
            hint=f"Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
        )
        self.retry_after = retry_after


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
    session: Session, cookie_value: str, *, renew: dt.timedelta | None = None
) -> PortalSession | None:
    """The live session of this cookie (with its user loaded), or None if expired or revoked.

    With ``renew``, a session used after half its lifetime is extended to ``now + renew``.
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
    if renew is not None and portal.expires_at - now < renew / 2:
        portal.expires_at = now + renew
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


@dataclass(frozen=True)
class LoginThrottle:
    """At most ``per_user`` failures per username and ``per_address`` per client address
    within ``window``; further attempts are refused (:class:`TooManyAttempts`) unchecked."""

    per_user: int = 5
    per_address: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)

    def check(self, session: Session, username: str, remote_addr: str | None) -> None:
        now = utcnow()
        self._check_one(session, AuditEvent.target == username[:TARGET_LENGTH], self.per_user, now)
        if remote_addr:
            self._check_one(session, AuditEvent.remote_addr == remote_addr, self.per_address, now)

    def _check_one(
        self, session: Session, which: ColumnElement[bool], limit: int, now: dt.datetime
    ) -> None:
        failures = list(
            session.scalars(
                select(AuditEvent.at)
                .where(AuditEvent.action == LOGIN_FAILURE, AuditEvent.at > now - self.window, which)
                .order_by(AuditEvent.at.desc())
                .limit(limit)
            )
        )
        if len(failures) >= limit:
            oldest = failures[-1]
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=dt.UTC)
            raise TooManyAttempts(max(1, math.ceil((oldest + self.window - now).total_seconds())))


def log_in(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    *,
    ttl: dt.timedelta,
    remote_addr: str | None,
    throttle: LoginThrottle,
) -> tuple[str, PortalSession]:
    """Check the throttle and the password, open a session; every outcome is audited.

    Takes the session factory: a failure is recorded in its own committed transaction.
    """
    target = username[:TARGET_LENGTH]
    try:
        with transaction(sessions) as session:
            throttle.check(session, username, remote_addr)
    except TooManyAttempts:
        _record_failure(sessions, "login.throttled", target, "throttled", remote_addr)
        raise
    try:
        with transaction(sessions) as session:
            user = authenticate(session, username, password)
            cookie_value, portal = open_session(session, user, ttl, remote_addr)
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
    with transaction(sessions) as session:
        throttle.check(session, username, remote_addr)
    try:
        with transaction(sessions) as session:
            user = get_user(session, username)
            return change_own_password(
                session, user, current, new, session_id=session_id, remote_addr=remote_addr
            )
    except WrongCurrentPassword:
        _record_failure(sessions, LOGIN_FAILURE, target, "wrong current password", remote_addr)
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
