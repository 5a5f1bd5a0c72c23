"""The login throttle against a real SQLite state database: atomic claims, growing delays per
(username, client address), and no way for one address to keep a user out of another."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from websonic.accounts import passwords
from websonic.accounts.models import Role, User
from websonic.accounts.passwords import HashingBusy, HashSlots
from websonic.accounts.service import add_user
from websonic.accounts.sessions import LoginRefused, log_in
from websonic.accounts.throttle import (
    ANY_USER,
    Backoff,
    LoginAttempts,
    LoginThrottle,
    TooManyAttempts,
)
from websonic.core.db import utcnow
from websonic.platform import Platform, init_platform, open_platform
from websonic.settings import Settings

PASSWORD = "a-long-enough-password"
TTL = dt.timedelta(minutes=30)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def user(platform: Platform) -> User:
    with platform.transaction() as session:
        return add_user(session, "dana", PASSWORD, Role.DEVELOPER, customer=None, actor="test")


def attempt(platform: Platform, password: str, addr: str, throttle: LoginThrottle) -> str:
    """The outcome of one login: "ok", "refused" or "throttled"."""
    try:
        log_in(platform.sessions, "dana", password, ttl=TTL, remote_addr=addr, throttle=throttle)
    except LoginRefused:
        return "refused"
    except TooManyAttempts:
        return "throttled"
    return "ok"


def key(platform: Platform, username: str, addr: str) -> LoginAttempts | None:
    with platform.sessions() as session:
        return session.scalar(
            select(LoginAttempts).where(
                LoginAttempts.username == username, LoginAttempts.remote_addr == addr
            )
        )


def unblock(platform: Platform) -> None:
    """As if every delay had passed (failures are kept)."""
    with platform.transaction() as session:
        session.execute(update(LoginAttempts).values(blocked_until=utcnow() - dt.timedelta(1)))


def test_backoff_doubles_after_its_free_failures_up_to_its_cap() -> None:
    backoff = Backoff(free=2, base=dt.timedelta(seconds=1), cap=dt.timedelta(seconds=10))
    delays = [backoff.delay(n).total_seconds() for n in range(1, 9)]
    assert delays == [0, 0, 1, 2, 4, 8, 10, 10]
    assert Backoff().delay(10_000) == dt.timedelta(minutes=15)


def test_finding6_parallel_claims_of_one_key_let_exactly_one_through(platform: Platform) -> None:
    throttle = LoginThrottle(per_user=Backoff(base=HOUR))
    barrier = threading.Barrier(30)

    def claim(_: int) -> bool:
        barrier.wait()
        try:
            throttle.claim(platform.sessions, "dana", "192.0.2.7")
        except TooManyAttempts as refused:
            assert refused.retry_after > 0
            return False
        return True

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(claim, range(30)))
    assert outcomes.count(True) == 1
    row = key(platform, "dana", "192.0.2.7")
    assert row is not None and row.failures == 1


@pytest.mark.databases
def test_finding6_parallel_claims_are_atomic_on_postgresql(
    postgres_server_factory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    url = postgres_server_factory().create_database("websonic_state")
    monkeypatch.setenv("WEBSONIC_DATABASE_URL", url)
    pg = Settings()
    assert pg.state_url.startswith("postgresql+psycopg://")
    init_platform(pg)
    platform = open_platform(pg)
    try:
        with platform.transaction() as session:
            add_user(session, "dana", PASSWORD, Role.DEVELOPER, customer=None, actor="test")
        throttle = LoginThrottle(per_user=Backoff(base=HOUR))
        barrier = threading.Barrier(30)

        def wrong(_: int) -> str:
            barrier.wait()
            return attempt(platform, "wrong-password!", "192.0.2.7", throttle)

        with ThreadPoolExecutor(30) as pool:
            outcomes = list(pool.map(wrong, range(30)))
        assert sorted(outcomes) == ["refused"] + ["throttled"] * 29
        assert attempt(platform, PASSWORD, "192.0.2.8", throttle) == "ok"
    finally:
        platform.close()


def test_finding6_parallel_wrong_logins_hash_one_password(
    platform: Platform, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = HashSlots(2)
    monkeypatch.setattr(passwords, "HASHING", slots)
    throttle = LoginThrottle(per_user=Backoff(base=HOUR))
    barrier = threading.Barrier(30)

    def wrong(_: int) -> str:
        barrier.wait()
        return attempt(platform, "wrong-password!", "192.0.2.7", throttle)

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(wrong, range(30)))
    assert sorted(outcomes) == ["refused"] + ["throttled"] * 29
    assert slots.runs == 1


def test_finding6_with_two_free_failures_three_parallel_tries_are_checked(
    platform: Platform, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = HashSlots(2)
    monkeypatch.setattr(passwords, "HASHING", slots)
    throttle = LoginThrottle(per_user=Backoff(free=2, base=HOUR))  # as the default, held longer
    barrier = threading.Barrier(30)

    def wrong(_: int) -> str:
        barrier.wait()
        return attempt(platform, "wrong-password!", "192.0.2.7", throttle)

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(wrong, range(30)))
    assert sorted(outcomes) == ["refused"] * 3 + ["throttled"] * 27
    assert slots.runs == 3 and slots.peak <= 2


def test_finding6_each_failure_from_an_address_waits_longer(platform: Platform, user: User) -> None:
    throttle = LoginThrottle(per_user=Backoff(base=dt.timedelta(minutes=1), cap=HOUR))
    delays = []
    for _ in range(5):
        assert attempt(platform, "wrong-password!", "192.0.2.7", throttle) == "refused"
        assert attempt(platform, PASSWORD, "192.0.2.7", throttle) == "throttled"  # unchecked
        row = key(platform, "dana", "192.0.2.7")
        assert row is not None
        delays.append((row.blocked_until - row.last_at).total_seconds())
        unblock(platform)
    assert delays == [60, 120, 240, 480, 960]
    assert attempt(platform, PASSWORD, "192.0.2.7", throttle) == "ok"
    assert key(platform, "dana", "192.0.2.7") is None  # reset by the success
    assert attempt(platform, "wrong-password!", "192.0.2.7", throttle) == "refused"
    row = key(platform, "dana", "192.0.2.7")
    assert row is not None and row.failures == 1


def test_finding6_a_stranger_cannot_keep_a_user_out(platform: Platform, user: User) -> None:
    throttle = LoginThrottle(per_user=Backoff(base=HOUR))
    outcomes = [attempt(platform, "guess-guess-guess", "198.51.100.1", throttle) for _ in range(10)]
    assert outcomes == ["refused"] + ["throttled"] * 9
    assert attempt(platform, PASSWORD, "198.51.100.1", throttle) == "throttled"
    assert attempt(platform, PASSWORD, "198.51.100.2", throttle) == "ok"


def test_an_address_spraying_usernames_is_slowed_too(platform: Platform, user: User) -> None:
    throttle = LoginThrottle(per_address=Backoff(free=2, base=HOUR))
    for name in ("x", "y", "z"):
        with pytest.raises(LoginRefused):
            log_in(
                platform.sessions, name, "guess-guess", ttl=TTL, remote_addr="a", throttle=throttle
            )
    assert attempt(platform, PASSWORD, "a", throttle) == "throttled"
    assert attempt(platform, PASSWORD, "b", throttle) == "ok"


def test_a_success_gives_back_its_address_claim(platform: Platform, user: User) -> None:
    throttle = LoginThrottle(per_address=Backoff(free=2, base=HOUR))
    for _ in range(5):  # an office logging in all day is never slowed by its own logins
        assert attempt(platform, PASSWORD, "192.0.2.7", throttle) == "ok"
    row = key(platform, ANY_USER, "192.0.2.7")
    assert row is not None and row.failures == 0


def test_failures_older_than_the_window_are_forgotten(platform: Platform, user: User) -> None:
    throttle = LoginThrottle()
    for _ in range(3):
        attempt(platform, "wrong-password!", "192.0.2.7", throttle)
        unblock(platform)
    with platform.transaction() as session:
        session.execute(update(LoginAttempts).values(last_at=utcnow() - 2 * HOUR))
    assert attempt(platform, "wrong-password!", "192.0.2.7", throttle) == "refused"
    row = key(platform, "dana", "192.0.2.7")
    assert row is not None and row.failures == 1


def test_a_hash_waits_for_a_free_slot_then_gives_up() -> None:
    slots = HashSlots(1, wait_seconds=0.01)
    with slots.hold(), pytest.raises(HashingBusy) as busy, slots.hold():
        pass  # pragma: no cover
    assert busy.value.retry_after >= 1
    with slots.hold():
        pass
    assert (slots.runs, slots.peak) == (2, 1)
