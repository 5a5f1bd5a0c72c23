"""Releases: requesting builds, listing and finding releases."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.builds.models import Release
from websonic.core.errors import NotFound
from websonic.jobs import service as jobs
from websonic.jobs.models import Job
from websonic.sites.models import Site


def request_build(session: Session, site: Site, *, ref: str | None, requested_by: str) -> Job:
    """Queue a build of ``site`` (at ``ref`` for git sources, else the site's ref)."""
    return jobs.submit(
        session,
        "build",
        {"site_id": site.id, "ref": ref},
        requested_by=requested_by,
        customer_id=site.customer_id,
        site_id=site.id,
    )


def list_releases(session: Session, site: Site) -> list[Release]:
    return list(
        session.scalars(select(Release).where(Release.site_id == site.id).order_by(Release.number))
    )


def get_release(session: Session, site: Site, number: int | None = None) -> Release:
    """Release ``number`` of the site, or its newest."""
    query = select(Release).where(Release.site_id == site.id)
    if number is None:
        release = session.scalar(query.order_by(Release.number.desc()).limit(1))
    else:
        release = session.scalar(query.where(Release.number == number))
    if release is None:
        which = f"no release {number}" if number is not None else "no release yet"
        raise NotFound(
            f"{site.ref_name} has {which}.",
            hint=f"List them with: websonic release list {site.ref_name}",
        )
    return release
