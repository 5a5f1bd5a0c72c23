"""Authorization in one place: who may see and do what, and lookups scoped to a user.

Agency roles (admin, developer) see every customer; customer roles (owner, editor, viewer) see
only their own customer. Another customer's customer, site or job is reported as *not found*,
exactly like one that does not exist, so that its existence does not leak. Seeing something but
not being allowed to act on it is :class:`PermissionDenied`.

The web face calls the ``*_for`` / ``*_as`` functions here: each checks access, then calls the
domain service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from websonic.accounts.models import Customer, Role, User
from websonic.accounts.service import add_customer
from websonic.audit.service import record
from websonic.builds import service as builds
from websonic.builds.models import Release
from websonic.core.errors import NotFound, PermissionDenied
from websonic.jobs import service as jobs
from websonic.jobs.models import Job
from websonic.sites.models import Site

BUILDERS = frozenset({Role.ADMIN, Role.DEVELOPER})
CUSTOMER_MANAGERS = frozenset({Role.ADMIN})


def actor(user: User) -> str:
    return f"user:{user.username}"


def is_agency(user: User) -> bool:
    return user.role.is_agency


def can_see(user: User, customer_id: int | None) -> bool:
    """Agency staff see everything; a customer's people see what belongs to their customer."""
    return is_agency(user) or (customer_id is not None and customer_id == user.customer_id)


def can_build(user: User) -> bool:
    return user.role in BUILDERS


def can_manage_customers(user: User) -> bool:
    return user.role in CUSTOMER_MANAGERS


def _unknown_customer(slug: str) -> NotFound:
    return NotFound(f"Unknown customer {slug!r}.")


def _unknown_site(customer_slug: str, site_slug: str) -> NotFound:
    return NotFound(f"Unknown site '{customer_slug}/{site_slug}'.")


def require_customer(user: User, customer: Customer) -> Customer:
    if not can_see(user, customer.id):
        raise _unknown_customer(customer.slug)
    return customer


def require_site(user: User, site: Site) -> Site:
    if not can_see(user, site.customer_id):
        raise _unknown_site(site.customer.slug, site.slug)
    return site


def require_job(user: User, job: Job) -> Job:
    if not can_see(user, job.customer_id):
        raise NotFound(f"Unknown job {job.id}.")
    return job


def require_builder(user: User) -> None:
    if not can_build(user):
        raise PermissionDenied("Only the agency's admins and developers may build releases.")


def require_customer_manager(user: User) -> None:
    if not can_manage_customers(user):
        raise PermissionDenied("Only the agency's admins may add customers.")


# Lookups scoped to a user ------------------------------------------------------------------


def visible_customers(
    session: Session, user: User, *, with_releases: bool = False
) -> list[Customer]:
    """The customers ``user`` may see, by slug; optionally with their sites and releases loaded."""
    query = select(Customer).order_by(Customer.slug)
    if not is_agency(user):
        query = query.where(Customer.id == user.customer_id)
    if with_releases:
        query = query.options(selectinload(Customer.sites).selectinload(Site.releases))
    return list(session.scalars(query))


def customer_for(session: Session, user: User, slug: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.slug == slug))
    if customer is None:
        raise _unknown_customer(slug)
    return require_customer(user, customer)


def sites_for(session: Session, user: User, customer_slug: str) -> list[Site]:
    customer = customer_for(session, user, customer_slug)
    query = select(Site).where(Site.customer_id == customer.id).order_by(Site.slug)
    return list(session.scalars(query))


def site_for(session: Session, user: User, customer_slug: str, site_slug: str) -> Site:
    customer = customer_for(session, user, customer_slug)
    site = session.scalar(
        select(Site).where(Site.customer_id == customer.id, Site.slug == site_slug)
    )
    if site is None:
        raise _unknown_site(customer.slug, site_slug)
    return site


def releases_for(session: Session, user: User, customer_slug: str, site_slug: str) -> list[Release]:
    return builds.list_releases(session, site_for(session, user, customer_slug, site_slug))


def release_for(
    session: Session, user: User, customer_slug: str, site_slug: str, number: int
) -> Release:
    """Release ``number`` of a site ``user`` may see (their own customer's, for customers)."""
    return builds.get_release(session, site_for(session, user, customer_slug, site_slug), number)


def job_for(session: Session, user: User, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Unknown job {job_id}.")
    return require_job(user, job)


@dataclass(frozen=True)
class JobLog:
    """A piece of a job's log: ``text`` from byte ``offset`` up to ``next_offset``.

    ``finished`` is true only when the job has ended and the log has been read to its end.
    """

    job: Job
    offset: int
    text: str
    next_offset: int
    finished: bool


def job_log_for(session: Session, user: User, job_id: int, offset: int = 0) -> JobLog:
    job = job_for(session, user, job_id)
    ended = job.status.finished  # read before the log: a finished job's log is complete
    text, next_offset = jobs.read_log(job, offset)
    at_end = not text or _log_size(job) <= next_offset
    return JobLog(job, offset, text, next_offset, ended and at_end)


def _log_size(job: Job) -> int:
    path = Path(job.log_path) if job.log_path else None
    return path.stat().st_size if path and path.is_file() else 0


# Acting as a user ----------------------------------------------------------------------------


def request_build_as(
    session: Session,
    user: User,
    customer_slug: str,
    site_slug: str,
    *,
    ref: str | None = None,
    remote_addr: str | None = None,
) -> Job:
    """Queue a build of the site for ``user``; enqueue the job once the transaction commits."""
    site = site_for(session, user, customer_slug, site_slug)
    require_builder(user)
    job = builds.request_build(session, site, ref=ref, requested_by=actor(user))
    record(
        session,
        actor(user),
        "build.request",
        customer_id=site.customer_id,
        target=f"{customer_slug}/{site_slug}",
        detail={"job": job.id, "ref": ref},
        remote_addr=remote_addr,
    )
    return job


def add_customer_as(session: Session, user: User, slug: str, name: str | None) -> Customer:
    require_customer_manager(user)
    return add_customer(session, slug, name, actor=actor(user))
