"""Customers and users: adding, finding, listing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import Customer, Role, User
from websonic.accounts.passwords import MIN_LENGTH, hash_password
from websonic.audit.service import record
from websonic.core.errors import AlreadyExists, InvalidInput, NotFound
from websonic.core.naming import check_slug


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


def add_user(
    session: Session,
    username: str,
    password: str,
    role: Role,
    *,
    customer: Customer | None,
    actor: str,
) -> User:
    if role.is_agency != (customer is None):
        raise InvalidInput(
            f"Role {role.value!r} is for "
            + ("agency staff (no customer)." if role.is_agency else "a customer's people.")
        )
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"The password must have at least {MIN_LENGTH} characters.")
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
