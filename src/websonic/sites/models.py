"""A site is one customer website: where its source is and what its manifest says."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from websonic.core.db import Base, utcnow


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("customer_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    slug: Mapped[str] = mapped_column(String(63))
    source: Mapped[str] = mapped_column(String(2000))  # folder path or git URL
    ref: Mapped[str | None] = mapped_column(String(200))  # git ref, None for folders
    epoch: Mapped[int | None] = mapped_column(BigInteger)  # folders: the recorded build epoch
    kind: Mapped[str] = mapped_column(String(20))
    manifest: Mapped[dict[str, Any]]  # the validated websonic.toml, secrets left out
    manifest_detected: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer = relationship("Customer", back_populates="sites")
    releases = relationship("Release", back_populates="site", order_by="Release.number")
    secrets = relationship("SiteSecret", cascade="all, delete-orphan")

    @property
    def ref_name(self) -> str:
        return f"{self.customer.slug}/{self.slug}"


class SiteSecret(Base):
    """A secret env value of a site, encrypted with the state folder's secrets key."""

    __tablename__ = "site_secrets"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
