"""A site, its releases, and requests to build a new one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from websonic.accounts import access
from websonic.web.api.schemas import BuildIn, JobOut, ReleaseOut, SiteOut
from websonic.web.auth import Viewer, api_viewer, client_addr, platform_of

router = APIRouter(tags=["sites"])
Caller = Annotated[Viewer, Depends(api_viewer)]


@router.get("/sites/{customer}/{site}")
def get_site(customer: str, site: str, request: Request, viewer: Caller) -> SiteOut:
    with platform_of(request).transaction() as session:
        return SiteOut.of(access.site_for(session, viewer.user, customer, site))


@router.get("/sites/{customer}/{site}/releases")
def list_releases(customer: str, site: str, request: Request, viewer: Caller) -> list[ReleaseOut]:
    with platform_of(request).transaction() as session:
        releases = access.releases_for(session, viewer.user, customer, site)
        return [ReleaseOut.of(r) for r in releases]


@router.post("/sites/{customer}/{site}/builds", status_code=202)
def request_build(
    customer: str,
    site: str,
    request: Request,
    response: Response,
    viewer: Caller,
    body: Annotated[BuildIn | None, Body()] = None,
) -> JobOut:
    """Queue a build; follow it at the job's URL (``Location``) and its ``/log``."""
    with platform_of(request).transaction() as session:
        job = access.request_build_as(
            session,
            viewer.user,
            customer,
            site,
            ref=body.ref if body else None,
            remote_addr=client_addr(request),
        )
        out = JobOut.of(job)
    request.app.state.workers.enqueue(out.id)
    response.headers["Location"] = f"/api/v1/jobs/{out.id}"
    return out
