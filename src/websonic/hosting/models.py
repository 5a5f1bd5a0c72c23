"""Customer servers and what was deployed on them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from websonic.core.db import Base, utcnow


class Host(Base):
    """A customer's server reached over SSH; its host key is pinned on first contact."""

    __tablename__ = "hosts"
    __table_args__ = (UniqueConstraint("customer_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(63))
    ssh_user: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(default=22)
    key_path: Mapped[str | None] = mapped_column(String(1000))
    host_key: Mapped[str | None] = mapped_column(Text)  # pinned public key line
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # last preflight readings
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer = relationship("Customer")


class DeploymentStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class Deployment(Base):
    """One install, update or rollback of a release of a site on a host, and how it ended."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    previous_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    status: Mapped[DeploymentStatus] = mapped_column(
        Enum(DeploymentStatus, native_enum=False, length=20), default=DeploymentStatus.PENDING
    )
    action: Mapped[str] = mapped_column(String(20), default="deploy")  # deploy | rollback
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    detail: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    seconds: Mapped[float | None]

    site = relationship("Site")
    host = relationship("Host")
    release = relationship("Release", foreign_keys=[release_id])
    previous_release = relationship("Release", foreign_keys=[previous_release_id])
