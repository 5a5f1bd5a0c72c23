"""The dashboard (customers, sites, releases), build requests and the live job page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from websonic.accounts import access
from websonic.web.auth import Viewer, client_addr, form_viewer, page_viewer, platform_of
from websonic.web.templating import render

router = APIRouter()
PageViewer = Annotated[Viewer, Depends(page_viewer)]
FormViewer = Annotated[Viewer, Depends(form_viewer)]


@router.get("/")
def dashboard(request: Request, viewer: PageViewer) -> Response:
    with platform_of(request).transaction() as session:
        customers = access.visible_customers(session, viewer.user, with_releases=True)
        context = {
            "viewer": viewer,
            "customers": customers,
            "can_build": access.can_build(viewer.user),
        }
        return render(request, "dashboard.html", context)


@router.post("/sites/{customer}/{site}/build")
def build(
    customer: str,
    site: str,
    request: Request,
    viewer: FormViewer,
    ref: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    with platform_of(request).transaction() as session:
        job = access.request_build_as(
            session, viewer.user, customer, site, ref=ref or None, remote_addr=client_addr(request)
        )
        job_id = job.id
    request.app.state.workers.enqueue(job_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(job_id: int, request: Request, viewer: PageViewer) -> Response:
    with platform_of(request).transaction() as session:
        piece = access.job_log_for(session, viewer.user, job_id)
        return render(request, "job.html", {"viewer": viewer, "job": piece.job, "log": piece})
