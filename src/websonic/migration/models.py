"""A migration run: its plan, progress checkpoints and final report."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from websonic.core.db import Base, utcnow


class MigrationStatus(enum.StrEnum):
    PLANNED = "planned"
    APPROVED = "approved"
    COPYING = "copying"
    CATCHING_UP = "catching_up"
    CUTTING_OVER = "cutting_over"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # on request; the same command resumes it
    ROLLED_BACK = "rolled_back"
    ABANDONED = "abandoned"  # left unfinished, what it had made removed

    @property
    def finished(self) -> bool:
        return self in (MigrationStatus.SUCCEEDED, MigrationStatus.ABANDONED)


class Migration(Base):
    """One run of a database migration: URLs kept masked, the engine's checkpoint to resume."""

    __tablename__ = "migrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"))
    mode: Mapped[str] = mapped_column(String(10))  # offline | online
    source: Mapped[str] = mapped_column(String(1000))  # URL with the password masked
    target: Mapped[str] = mapped_column(String(1000))  # URL with the password masked
    status: Mapped[MigrationStatus] = mapped_column(
        Enum(MigrationStatus, native_enum=False, length=20), default=MigrationStatus.PLANNED
    )
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkpoint: Mapped[dict[str, Any]] = mapped_column(default=dict)  # resume state per table
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
