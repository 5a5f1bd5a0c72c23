"""Accounts: the agency's staff and each customer's people, with their roles."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from websonic.core.db import Base, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"  # agency: everything
    DEVELOPER = "developer"  # agency: build, deploy, migrate; no account management
    OWNER = "owner"  # customer: administers their own sites and people
    EDITOR = "editor"  # customer: changes their sites' content and settings
    VIEWER = "viewer"  # customer: reads and downloads

    @property
    def is_agency(self) -> bool:
        return self in (Role.ADMIN, Role.DEVELOPER)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    sites = relationship("Site", back_populates="customer", order_by="Site.slug")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer = relationship("Customer")


class PortalSession(Base):
    """A logged-in browser. Only the hash of the cookie value is stored."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    remote_addr: Mapped[str | None] = mapped_column(String(64))

    user = relationship("User")


class ApiToken(Base):
    """A customer's (or the agency's) token for the registry and API; the secret is hashed."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("public_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The one site the token is for (install tokens and codes always; pull tokens may be).
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    #: The token this one rotates out: revoked when this one is first used (never before).
    replaces: Mapped[str | None] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(100), default="pull")
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
