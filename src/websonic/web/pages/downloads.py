"""The download page of a site: signed archives (resumable), checksums, SBOMs, signatures.

Archives are served from the file of the one cached export of each release (builds/exports.py:
made and verified once; each answer checks only its record and file stamp, and a changed file
is made again), with ``Range`` support (206/416) and the archive's SHA-256 as ``ETag`` so that
``curl -C -`` resumes. Every archive and SBOM download is written to the audit log. A release
that fails verification when its archive is made raises VerificationFailed, which the app
answers with 500 (web/errors.py): it is never sent.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.responses import Response

from websonic.accounts import access
from websonic.builds import exports
from websonic.builds.signing import public_pem
from websonic.web.auth import Viewer, client_addr, page_viewer, platform_of
from websonic.web.public import configured_public_url, public_base
from websonic.web.templating import render

router = APIRouter()
PageViewer = Annotated[Viewer, Depends(page_viewer)]
RELEASE = "/sites/{customer}/{site}/releases/{number}"


@router.get("/sites/{customer}/{site}/downloads")
def downloads(customer: str, site: str, request: Request, viewer: PageViewer) -> Response:
    platform = platform_of(request)
    with platform.transaction() as session:
        found = access.site_for(session, viewer.user, customer, site)
        context = {
            "viewer": viewer,
            "site": found,
            "rows": exports.downloads_of(platform, list(found.releases)),
            "host": urlsplit(public_base(request)).netloc,  # never the request's Host
            "portal": configured_public_url(request),  # None: no one-liner without one
        }
        return render(request, "downloads.html", context)


@router.get(RELEASE + "/image.tar")
def archive(
    customer: str, site: str, number: int, request: Request, viewer: PageViewer
) -> Response:
    platform = platform_of(request)
    with platform.transaction() as session:
        release = access.release_for(session, viewer.user, customer, site, number)
        made = exports.download_archive(
            platform,
            session,
            release,
            actor=access.actor(viewer.user),
            remote_addr=client_addr(request),
            byte_range=request.headers.get("range"),
        )
    return FileResponse(
        made.path,
        media_type="application/x-tar",
        filename=made.filename,
        headers={"ETag": f'"{made.sha256}"'},
    )


@router.get(RELEASE + "/image.tar.sha256")
def archive_checksum(
    customer: str, site: str, number: int, request: Request, viewer: PageViewer
) -> Response:
    platform = platform_of(request)
    with platform.transaction() as session:
        release = access.release_for(session, viewer.user, customer, site, number)
        made = exports.ensure_archive(platform, release)
    return PlainTextResponse(made.checksum_line)


@router.get(RELEASE + "/sbom.json")
def sbom(customer: str, site: str, number: int, request: Request, viewer: PageViewer) -> Response:
    platform = platform_of(request)
    with platform.transaction() as session:
        release = access.release_for(session, viewer.user, customer, site, number)
        body = exports.download_sbom(
            platform,
            session,
            release,
            actor=access.actor(viewer.user),
            remote_addr=client_addr(request),
        )
        name = exports.file_stem(exports.reference_of(release))
    disposition = {"Content-Disposition": f'attachment; filename="{name}.sbom.json"'}
    return Response(body, media_type="application/vnd.cyclonedx+json", headers=disposition)


@router.get(RELEASE + "/signature")
def signature(
    customer: str, site: str, number: int, request: Request, viewer: PageViewer
) -> Response:
    platform = platform_of(request)
    with platform.sessions() as session:
        release = access.release_for(session, viewer.user, customer, site, number)
        bundle = exports.signature_bundle(release, public_pem(platform.signer.public))
    return JSONResponse(bundle)
