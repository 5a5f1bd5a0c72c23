"""A job's record: what it does, who asked, where it is, and how it ended."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from websonic.core.db import Base, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # "build", "base-build", "deploy", …
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=20), default=JobStatus.QUEUED
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    progress: Mapped[float] = mapped_column(default=0.0)  # 0..1
    step: Mapped[str] = mapped_column(String(200), default="")
    log_path: Mapped[str | None] = mapped_column(String(500))
    worker: Mapped[str | None] = mapped_column(String(200))  # "hostname:pid" while running
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
