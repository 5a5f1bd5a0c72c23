"""What the API returns and accepts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from websonic.accounts.access import JobLog
from websonic.accounts.models import Customer, User
from websonic.builds.models import Release
from websonic.jobs.models import Job
from websonic.sites.models import Site
from websonic.sites.source import shown


class MeOut(BaseModel):
    username: str
    role: str
    customer: str | None = Field(description="The customer's slug; none for agency staff.")
    csrf_token: str = Field(description="Send it as X-CSRF-Token with POST, PUT and DELETE.")

    @classmethod
    def of(cls, user: User, csrf_token: str) -> MeOut:
        customer = user.customer.slug if user.customer else None
        return cls(
            username=user.username, role=user.role.value, customer=customer, csrf_token=csrf_token
        )


class CustomerIn(BaseModel):
    slug: str = Field(examples=["acme"])
    name: str | None = Field(default=None, examples=["ACME Corporation"])


class CustomerOut(BaseModel):
    slug: str
    name: str
    created_at: dt.datetime

    @classmethod
    def of(cls, customer: Customer) -> CustomerOut:
        return cls(slug=customer.slug, name=customer.name, created_at=customer.created_at)


class SiteOut(BaseModel):
    customer: str
    slug: str
    kind: str
    source: str
    ref: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, site: Site) -> SiteOut:
        return cls(
            customer=site.customer.slug,
            slug=site.slug,
            kind=site.kind,
            source=shown(site.source),  # a git URL's password as ***
            ref=site.ref,
            created_at=site.created_at,
        )


class ReleaseOut(BaseModel):
    number: int
    digest: str
    size: int
    signed: bool
    signing_key_id: str
    source_ref: str
    source_revision: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, release: Release) -> ReleaseOut:
        return cls(
            number=release.number,
            digest=release.digest,
            size=release.size,
            signed=bool(release.signature),
            signing_key_id=release.signing_key_id,
            source_ref=shown(release.source_ref),
            source_revision=release.source_revision,
            created_at=release.created_at,
        )


class BuildIn(BaseModel):
    ref: str | None = Field(default=None, description="Git ref to build; default: the site's.")


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    finished: bool
    progress: float = Field(ge=0, le=1)
    step: str
    error: str | None
    result: dict[str, Any]
    requested_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status.value,
            finished=job.status.finished,
            progress=job.progress,
            step=job.step,
            error=job.error,
            result=job.result or {},
            requested_by=job.requested_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobLogOut(BaseModel):
    """A piece of a job's log; ask again from ``next_offset`` until ``finished``."""

    offset: int
    next_offset: int
    text: str
    finished: bool = Field(description="The job has ended and its whole log has been read.")
    status: str
    progress: float
    step: str
    error: str | None

    @classmethod
    def of(cls, piece: JobLog) -> JobLogOut:
        job = piece.job
        return cls(
            offset=piece.offset,
            next_offset=piece.next_offset,
            text=piece.text,
            finished=piece.finished,
            status=job.status.value,
            progress=job.progress,
            step=job.step,
            error=job.error,
        )
