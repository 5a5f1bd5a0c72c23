"""Failed-login throttling, kept in the state database so that every web process shares it.

Each login (or own-password change) first *claims* two keys: (username, client address) and
(any username, client address). A claim is one atomic statement — an INSERT of a new key, or
a compare-and-set UPDATE of a known one — so of many parallel attempts on one key exactly one
gets through and the others are refused unchecked (:class:`TooManyAttempts`), without hashing
their password. A claim counts as a failure in advance and, past a few free failures, blocks
its key for a delay that doubles with each failure; a successful login clears its (username,
address) key and gives back its address claim. Failures older than ``window`` are forgotten.
So of any number of parallel tries on one key, at most ``free`` + 1 are checked.

Keys are per client address: a stranger's failures never keep a user out from another
address. Behind a TLS reverse proxy, run `websonic serve --forwarded-allow-ips` so that the
address is the client's, not the proxy's.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from websonic.core.db import Base, transaction, utcnow
from websonic.core.errors import WebsonicError

ANY_USER = ""  # the username of a client address's key over every username
NAME_LENGTH = 200
CLAIM_TRIES = 20  # compare-and-set rounds lost to parallel claims before giving up


class TooManyAttempts(WebsonicError):
    """Too many failed logins for this username or client address; retry later."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed login attempts.", hint=f"Try again in {_later(retry_after)}."
        )
        self.retry_after = retry_after


def _later(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds > 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


class LoginAttempts(Base):
    """One throttle key: its failures in a row and until when it is blocked."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    remote_addr: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int]
    blocked_until: Mapped[dt.datetime]
    last_at: Mapped[dt.datetime]


@dataclass(frozen=True)
class Backoff:
    """No delay for the first ``free`` failures, then ``base`` doubling up to ``cap``."""

    free: int = 0
    base: dt.timedelta = dt.timedelta(seconds=1)
    cap: dt.timedelta = dt.timedelta(minutes=15)

    def delay(self, failures: int) -> dt.timedelta:
        over = failures - self.free
        if over <= 0:
            return dt.timedelta(0)
        return min(self.cap, self.base * 2 ** min(over - 1, 40))


@dataclass(frozen=True)
class Claim:
    """The keys an attempt holds (given back or cleared when it succeeds)."""

    username: str
    remote_addr: str


@dataclass(frozen=True)
class LoginThrottle:
    """Growing delays per (username, address), and per address over every username."""

    per_user: Backoff = field(default_factory=lambda: Backoff(free=2))  # a typo or two: no wait
    per_address: Backoff = field(default_factory=lambda: Backoff(free=20))
    window: dt.timedelta = dt.timedelta(hours=1)

    def claim(
        self, sessions: sessionmaker[Session], username: str, remote_addr: str | None
    ) -> Claim:
        """Count an attempt in advance, or refuse it (:class:`TooManyAttempts`)."""
        claim = Claim(username[:NAME_LENGTH], remote_addr or "")
        self._claim_key(sessions, claim.username, claim.remote_addr, self.per_user)
        self._claim_key(sessions, ANY_USER, claim.remote_addr, self.per_address)
        return claim

    def succeeded(self, session: Session, claim: Claim) -> None:
        """In the successful attempt's transaction: clear its key, give back its address claim."""
        session.execute(delete(LoginAttempts).where(*_key(claim.username, claim.remote_addr)))
        session.execute(
            update(LoginAttempts)
            .where(*_key(ANY_USER, claim.remote_addr), LoginAttempts.failures > 0)
            .values(failures=LoginAttempts.failures - 1)
        )

    def _claim_key(
        self, sessions: sessionmaker[Session], username: str, addr: str, backoff: Backoff
    ) -> None:
        for _ in range(CLAIM_TRIES):
            now = utcnow()
            with sessions() as session:
                row = session.execute(
                    select(
                        LoginAttempts.failures, LoginAttempts.blocked_until, LoginAttempts.last_at
                    ).where(*_key(username, addr))
                ).first()
            if row is None:
                if _insert(sessions, username, addr, now + backoff.delay(1), now):
                    return
                continue
            failures, blocked_until, last_at = row
            if blocked_until > now:
                raise TooManyAttempts(_seconds(blocked_until - now))
            counted = 1 if last_at <= now - self.window else failures + 1
            after = now + backoff.delay(counted)
            if _swap(sessions, username, addr, (failures, last_at), (counted, after, now)):
                return
        raise TooManyAttempts(1)


def _key(username: str, addr: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return LoginAttempts.username == username, LoginAttempts.remote_addr == addr


def _insert(
    sessions: sessionmaker[Session], username: str, addr: str, after: dt.datetime, now: dt.datetime
) -> bool:
    """A first claim of a key; False when a parallel attempt made the key first."""
    try:
        with transaction(sessions) as session:
            session.add(
                LoginAttempts(
                    username=username,
                    remote_addr=addr,
                    failures=1,
                    blocked_until=after,
                    last_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def _swap(
    sessions: sessionmaker[Session],
    username: str,
    addr: str,
    seen: tuple[int, dt.datetime],
    new: tuple[int, dt.datetime, dt.datetime],
) -> bool:
    """Compare-and-set: update the key only if no parallel attempt changed it since it was read."""
    with transaction(sessions) as session:
        result = session.execute(
            update(LoginAttempts)
            .where(
                *_key(username, addr),
                LoginAttempts.failures == seen[0],
                LoginAttempts.last_at == seen[1],
            )
            .values(failures=new[0], blocked_until=new[1], last_at=new[2])
            .execution_options(synchronize_session=False)
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
