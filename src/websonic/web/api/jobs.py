"""Background jobs: their state and their log, read piece by piece."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from websonic.accounts import access
from websonic.web.api.schemas import JobLogOut, JobOut
from websonic.web.auth import Viewer, api_viewer, platform_of

router = APIRouter(tags=["jobs"])
Caller = Annotated[Viewer, Depends(api_viewer)]


@router.get("/jobs/{job_id}")
def get_job(job_id: int, request: Request, viewer: Caller) -> JobOut:
    with platform_of(request).transaction() as session:
        return JobOut.of(access.job_for(session, viewer.user, job_id))


@router.get("/jobs/{job_id}/log")
def get_job_log(
    job_id: int, request: Request, viewer: Caller, offset: Annotated[int, Query(ge=0)] = 0
) -> JobLogOut:
    with platform_of(request).transaction() as session:
        return JobLogOut.of(access.job_log_for(session, viewer.user, job_id, offset))
