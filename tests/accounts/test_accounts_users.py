"""Users' passwords and access: changing a password or disabling an account ends sessions,
against a real SQLite state database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from websonic.accounts.models import Role, User
from websonic.accounts.service import (
    WrongCurrentPassword,
    add_customer,
    add_user,
    change_own_password,
    get_user,
    list_users,
    set_disabled,
    set_password,
)
from websonic.accounts.sessions import LoginRefused, authenticate, find_session, open_session
from websonic.audit.models import AuditEvent
from websonic.core.errors import AlreadyExists, InvalidInput, NotFound
from websonic.platform import Platform

PASSWORD = "a-long-enough-password"
NEW = "another-long-password"
TTL = dt.timedelta(minutes=30)


@pytest.fixture
def dana(platform: Platform) -> User:
    with platform.transaction() as session:
        return add_user(session, "dana", PASSWORD, Role.DEVELOPER, customer=None, actor="test")


def cookies(platform: Platform, username: str, count: int) -> list[tuple[str, int]]:
    with platform.transaction() as session:
        user = get_user(session, username)
        return [
            (value, portal.id)
            for value, portal in (open_session(session, user, TTL, None) for _ in range(count))
        ]


def live(platform: Platform, cookie: str) -> bool:
    with platform.transaction() as session:
        return find_session(session, cookie) is not None


@pytest.mark.parametrize(
    ("username", "role", "customer", "password", "message"),
    [
        ("bad name", Role.VIEWER, "acme", PASSWORD, "Invalid username 'bad name'"),
        ("", Role.VIEWER, "acme", PASSWORD, "Invalid username ''"),
        ("-dash", Role.VIEWER, "acme", PASSWORD, "Invalid username '-dash'"),
        ("x" * 65, Role.VIEWER, "acme", PASSWORD, "Invalid username"),
        ("erin", Role.VIEWER, None, PASSWORD, "Role 'viewer' is for a customer's people."),
        ("erin", Role.ADMIN, "acme", PASSWORD, "Role 'admin' is for agency staff"),
        ("erin", Role.VIEWER, "acme", "short", "at least 12 characters"),
        ("erin", Role.VIEWER, "acme", "x" * 1001, "at most 1000 characters"),
    ],
)
def test_add_user_refuses_bad_input(
    platform: Platform,
    username: str,
    role: Role,
    customer: str | None,
    password: str,
    message: str,
) -> None:
    with platform.transaction() as session:
        acme = add_customer(session, "acme", None, actor="test")
        with pytest.raises(InvalidInput, match=message):
            add_user(session, username, password, role, customer=acme if customer else None,
                     actor="test")  # fmt: skip
        assert list_users(session) == [get_user(session, "admin")]


def test_users_are_listed_per_customer_and_found_by_name(platform: Platform, dana: User) -> None:
    with platform.transaction() as session:
        acme = add_customer(session, "acme", None, actor="test")
        add_user(session, "alice@acme.example", PASSWORD, Role.OWNER, customer=acme, actor="test")
        with pytest.raises(AlreadyExists):
            add_user(session, "dana", PASSWORD, Role.ADMIN, customer=None, actor="test")
        assert [u.username for u in list_users(session)] == ["admin", "alice@acme.example", "dana"]
        assert [u.username for u in list_users(session, acme)] == ["alice@acme.example"]
        with pytest.raises(NotFound, match="Unknown user 'nobody'"):
            get_user(session, "nobody")


def test_a_new_password_ends_every_session(platform: Platform, dana: User) -> None:
    (first, _), (second, _) = cookies(platform, "dana", 2)
    with platform.transaction() as session:
        assert set_password(session, get_user(session, "dana"), NEW, actor="test") == 2
    assert not live(platform, first) and not live(platform, second)
    with platform.transaction() as session:
        with pytest.raises(LoginRefused):
            authenticate(session, "dana", PASSWORD)
        assert authenticate(session, "dana", NEW).username == "dana"
        with pytest.raises(InvalidInput, match="at least 12"):
            set_password(session, get_user(session, "dana"), "short", actor="test")


def test_changing_ones_own_password_keeps_the_asking_session(
    platform: Platform, dana: User
) -> None:
    (mine, mine_id), (other, _) = cookies(platform, "dana", 2)
    with platform.transaction() as session:
        user = get_user(session, "dana")
        with pytest.raises(WrongCurrentPassword):
            change_own_password(session, user, "not-the-password", NEW, session_id=mine_id,
                                remote_addr=None)  # fmt: skip
        with pytest.raises(InvalidInput, match="the same as the current"):
            change_own_password(session, user, PASSWORD, PASSWORD, session_id=mine_id,
                                remote_addr=None)  # fmt: skip
    assert live(platform, other)
    with platform.transaction() as session:
        user = get_user(session, "dana")
        ended = change_own_password(
            session, user, PASSWORD, NEW, session_id=mine_id, remote_addr="192.0.2.7"
        )
        assert ended == 1
    assert live(platform, mine) and not live(platform, other)
    with platform.sessions() as session:
        changes = select(AuditEvent).where(AuditEvent.action == "user.password")
        event = session.scalars(changes).one()
        assert (event.actor, event.target, event.remote_addr) == ("user:dana", "dana", "192.0.2.7")
        assert event.detail == {"sessions_ended": 1}
        assert NEW not in str(event.detail) and PASSWORD not in str(event.detail)


def test_disabling_ends_sessions_and_enabling_lets_in_again(platform: Platform, dana: User) -> None:
    [(cookie, _)] = cookies(platform, "dana", 1)
    with platform.transaction() as session:
        assert set_disabled(session, get_user(session, "dana"), True, actor="test") == 1
        assert set_disabled(session, get_user(session, "dana"), True, actor="test") == 0
    assert not live(platform, cookie)
    with platform.transaction() as session:
        with pytest.raises(LoginRefused):
            authenticate(session, "dana", PASSWORD)
        set_disabled(session, get_user(session, "dana"), False, actor="test")
        assert authenticate(session, "dana", PASSWORD).username == "dana"
    with platform.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.target == "dana").order_by(AuditEvent.id)
        )
        assert [a for a in actions if a.startswith("user.")] == [
            "user.add", "user.disable", "user.enable",
        ]  # fmt: skip


def test_the_last_enabled_admin_cannot_be_disabled(platform: Platform) -> None:
    with platform.transaction() as session:
        with pytest.raises(InvalidInput, match="admin is the only enabled admin"):
            set_disabled(session, get_user(session, "admin"), True, actor="test")
        add_user(session, "root2", PASSWORD, Role.ADMIN, customer=None, actor="test")
        set_disabled(session, get_user(session, "admin"), True, actor="test")
        with pytest.raises(InvalidInput, match="root2 is the only enabled admin"):
            set_disabled(session, get_user(session, "root2"), True, actor="test")
