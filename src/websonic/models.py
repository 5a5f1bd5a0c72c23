"""Every table of the state database, for Alembic and for creating a fresh database."""

from websonic.accounts.models import ApiToken, Customer, PortalSession, Role, User
from websonic.accounts.throttle import LoginAttempts
from websonic.audit.models import AuditEvent
from websonic.builds.models import BaseImage, Release
from websonic.core.db import Base
from websonic.hosting.models import Deployment, Host
from websonic.jobs.models import Job, JobStatus
from websonic.migration.models import Migration
from websonic.sites.models import Site, SiteSecret

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "BaseImage",
    "Customer",
    "Deployment",
    "Host",
    "Job",
    "JobStatus",
    "LoginAttempts",
    "Migration",
    "PortalSession",
    "Release",
    "Role",
    "Site",
    "SiteSecret",
    "User",
]
