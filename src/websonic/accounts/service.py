"""Customers and users: adding, finding, listing; users' passwords and access.

Changing a user's password or disabling the account ends every session the user has open
(``except_session`` keeps the one that asked, when users change their own password).
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import Customer, PortalSession, Role, User
from websonic.accounts.passwords import MIN_LENGTH, hash_password, verify_password
from websonic.audit.service import record
from websonic.core.db import utcnow
from websonic.core.errors import AlreadyExists, InvalidInput, NotFound
from websonic.core.naming import check_slug

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MAX_PASSWORD_LENGTH = 1000


class WrongCurrentPassword(InvalidInput):
    """A user changing their own password gave a wrong current one."""

    def __init__(self) -> None:
        super().__init__("The current password is wrong.")


def add_customer(session: Session, slug: str, name: str | None, *, actor: str) -> Customer:
    check_slug(slug, "customer slug")
    if session.scalar(select(Customer).where(Customer.slug == slug)):
        raise AlreadyExists(f"Customer {slug!r} already exists.")
    customer = Customer(slug=slug, name=(name or slug).strip())
    session.add(customer)
    session.flush()
    record(
        session,
        actor,
        "customer.add",
        customer_id=customer.id,
        target=slug,
        detail={"name": customer.name},
    )
    return customer


def get_customer(session: Session, slug: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.slug == slug))
    if customer is None:
        raise NotFound(
            f"Unknown customer {slug!r}.", hint="List customers with: websonic customer list"
        )
    return customer


def list_customers(session: Session) -> list[Customer]:
    return list(session.scalars(select(Customer).order_by(Customer.slug)))


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise InvalidInput(
            f"Invalid username {username!r}.",
            hint="Use 1 to 64 letters, digits and . _ @ + - (starting with a letter or digit).",
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"The password must have at least {MIN_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    return password


def add_user(
    session: Session,
    username: str,
    password: str,
    role: Role,
    *,
    customer: Customer | None,
    actor: str,
) -> User:
    check_username(username)
    if role.is_agency != (customer is None):
        raise InvalidInput(
            f"Role {role.value!r} is for "
            + ("agency staff (no customer)." if role.is_agency else "a customer's people."),
            hint="Give --customer SLUG for owner, editor and viewer; none for admin and developer.",
        )
    check_password(password)
    if session.scalar(select(User).where(User.username == username)):
        raise AlreadyExists(f"User {username!r} already exists.")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        customer_id=customer.id if customer else None,
    )
    session.add(user)
    session.flush()
    record(
        session,
        actor,
        "user.add",
        customer_id=user.customer_id,
        target=username,
        detail={"role": role.value},
    )
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"Unknown user {username!r}.", hint="List users with: websonic user list")
    return user


def list_users(session: Session, customer: Customer | None = None) -> list[User]:
    query = select(User).order_by(User.username)
    if customer is not None:
        query = query.where(User.customer_id == customer.id)
    return list(session.scalars(query))


def set_password(
    session: Session,
    user: User,
    password: str,
    *,
    actor: str,
    except_session: int | None = None,
    remote_addr: str | None = None,
) -> int:
    """Give ``user`` a new password and end their other sessions; how many were ended."""
    user.password_hash = hash_password(check_password(password))
    ended = end_sessions(session, user, except_session=except_session)
    record(
        session,
        actor,
        "user.password",
        customer_id=user.customer_id,
        target=user.username,
        detail={"sessions_ended": ended},
        remote_addr=remote_addr,
    )
    return ended


def change_own_password(
    session: Session,
    user: User,
    current: str,
    new: str,
    *,
    session_id: int,
    remote_addr: str | None,
) -> int:
    """A logged-in user's own change: the current password first, the asking session kept."""
    if not verify_password(user.password_hash, current):
        raise WrongCurrentPassword()
    if current == new:
        raise InvalidInput("The new password is the same as the current one.")
    return set_password(
        session,
        user,
        new,
        actor=f"user:{user.username}",
        except_session=session_id,
        remote_addr=remote_addr,
    )


def set_disabled(session: Session, user: User, disabled: bool, *, actor: str) -> int:
    """Disable (ending every session) or enable an account; sessions ended. The last enabled
    admin cannot be disabled: nobody could manage the platform from the portal any more."""
    if disabled and user.role == Role.ADMIN and not user.disabled:
        others = session.scalars(
            select(User.id).where(User.role == Role.ADMIN, ~User.disabled, User.id != user.id)
        ).first()
        if others is None:
            raise InvalidInput(
                f"{user.username} is the only enabled admin.",
                hint="Add or enable another admin first (websonic user add NAME --role admin).",
            )
    changed = user.disabled != disabled
    user.disabled = disabled
    ended = end_sessions(session, user) if disabled else 0
    if changed:
        action = "user.disable" if disabled else "user.enable"
        detail = {"sessions_ended": ended}
        record(session, actor, action, customer_id=user.customer_id, target=user.username,
               detail=detail)  # fmt: skip
    return ended


def end_sessions(session: Session, user: User, *, except_session: int | None = None) -> int:
    """Revoke the user's live portal sessions (but ``except_session``); how many."""
    now = utcnow()
    query = select(PortalSession).where(
        PortalSession.user_id == user.id,
        PortalSession.revoked_at.is_(None),
        PortalSession.expires_at > now,
    )
    if except_session is not None:
        query = query.where(PortalSession.id != except_session)
    live = list(session.scalars(query))
    for portal in live:
        portal.revoked_at = now
    return len(live)
