"""Deploying a release to a customer's server over SSH, and rolling back, as recorded jobs.

`websonic deploy` submits a ``deploy`` job (run in the CLI's process, or by `websonic serve`'s
workers when asked through the API). The job checks the server (preflight over SSH with the
pinned host key), makes a signed plan and a short-lived pull token, sends the installer bundle
on ssh's standard input and streams the installer's output into the job's log. The installer
does the blue/green switch and the automatic rollback; its last line (``WEBSONIC-RESULT …``)
tells the outcome, recorded on the deployment row and in the audit log.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts import tokens
from websonic.audit.service import record
from websonic.builds.models import Release
from websonic.builds.service import get_release
from websonic.builds.signing import public_pem
from websonic.core.db import utcnow
from websonic.core.errors import DeployFailed, InvalidInput, NotFound, PermissionDenied
from websonic.hosting import hosts, preflight, spec
from websonic.hosting.domains import normalise_domains
from websonic.hosting.models import Deployment, DeploymentStatus, Host
from websonic.installer import plan as plans
from websonic.installer.bundle import Bundle, make_bundle, runner_script
from websonic.jobs.models import Job, JobStatus
from websonic.jobs.service import INTERRUPTED, JobReporter
from websonic.platform import Platform
from websonic.sites.models import Site
from websonic.sites.service import get_site, secret_values

PULL_TOKEN_LIFETIME = dt.timedelta(hours=1)
UPDATER_TOKEN_LIFETIME = tokens.INSTALL_LIFETIME  # the updater renews it at 14 days
INSTALL_TIMEOUT = 3600.0
RESULT = re.compile(r"^WEBSONIC-RESULT (.*)$")
STATUS_OF = {
    "succeeded": DeploymentStatus.SUCCEEDED,
    "unchanged": DeploymentStatus.SUCCEEDED,
    "rolled_back": DeploymentStatus.ROLLED_BACK,
    "failed": DeploymentStatus.FAILED,
}


@dataclass(frozen=True)
class DeployRequest:
    site: str  # CUSTOMER/SITE
    host: str  # CUSTOMER/NAME
    release: int | None = None  # default: the newest
    rollback: bool = False
    domains: tuple[str, ...] = ()
    tls: str = "internal"
    acme_email: str = ""
    database_mode: str = "container"
    auto_update: bool | None = None  # None: leave the server's updater as it is
    dry_run: bool = False
    health_timeout: int = 120
    drain_seconds: int = 3

    def to_params(self) -> dict[str, Any]:
        return {**self.__dict__, "domains": list(self.domains)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DeployRequest:
        return cls(**{**params, "domains": tuple(params.get("domains") or ())})


@dataclass
class Outcome:
    status: str  # succeeded | unchanged | rolled_back | failed | dry-run
    release: int
    deployment_id: int | None = None
    previous_release: int | None = None
    slot: str = ""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_result(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"}


# --- submitting -------------------------------------------------------------------------------


def submit_deploy(session: Session, request: DeployRequest, *, actor: str) -> Job:
    """Check the request now (unknown site/host, another customer's host) and queue the job."""
    from websonic.jobs import service as jobs

    check_request(request)
    request = replace(request, domains=normalise_domains(request.domains))
    reap_interrupted(session)
    site, host = site_and_host(session, request.site, request.host)
    plans.check_options(request.tls, request.acme_email, request.database_mode)
    target = previous_release(session, site, host) if request.rollback else None
    if request.rollback and target is None:
        raise NotFound(
            f"{request.site} has no earlier release on {request.host} to roll back to.",
            hint=f"See: websonic deployment list {request.site}",
        )
    if request.release is not None:
        get_release(session, site, request.release)
    kind = "rollback" if request.rollback else "deploy"
    return jobs.submit(
        session,
        kind,
        request.to_params(),
        requested_by=actor,
        customer_id=site.customer_id,
        site_id=site.id,
    )


def reap_interrupted(session: Session) -> list[int]:
    """Deployments whose job ended without them (a killed `websonic deploy`): failed."""
    stale = session.execute(
        select(Deployment, Job)
        .join(Job, Deployment.job_id == Job.id)
        .where(Deployment.status == DeploymentStatus.RUNNING, Job.status == JobStatus.FAILED)
    ).all()
    for deployment, job in stale:
        deployment.status, deployment.finished_at = DeploymentStatus.FAILED, utcnow()
        deployment.detail = job.error or INTERRUPTED
    return [deployment.id for deployment, _ in stale]


def site_and_host(session: Session, site_ref: str, host_ref: str) -> tuple[Site, Host]:
    site = get_site(session, site_ref)
    host = hosts.get_host(session, host_ref)
    if host.customer_id != site.customer_id:
        raise PermissionDenied(
            f"{host_ref} is a server of another customer than {site_ref}'s.",
            hint="A site is deployed only to its own customer's servers.",
        )
    return site, host


def previous_release(session: Session, site: Site, host: Host) -> Release | None:
    """The release a rollback returns to: what served before the current one."""
    current = current_deployment(session, site, host)
    if current is None or current.previous_release_id is None:
        return None
    return session.get(Release, current.previous_release_id)


def current_deployment(session: Session, site: Site, host: Host) -> Deployment | None:
    """The last deployment that left a release serving on ``host``."""
    return session.scalar(
        select(Deployment)
        .where(
            Deployment.site_id == site.id,
            Deployment.host_id == host.id,
            Deployment.status == DeploymentStatus.SUCCEEDED,
        )
        .order_by(Deployment.id.desc())
        .limit(1)
    )


# --- the job ----------------------------------------------------------------------------------


def run_deploy_job(platform: Platform, job: Job, reporter: JobReporter) -> dict[str, Any]:
    request = DeployRequest.from_params(dict(job.params))
    outcome = deploy(
        platform, request, actor=job.requested_by or "job", job_id=job.id, reporter=reporter
    )
    return outcome.to_result()


def deploy(
    platform: Platform,
    request: DeployRequest,
    *,
    actor: str,
    job_id: int | None,
    reporter: JobReporter,
) -> Outcome:
    """Preflight, then run the installer on the server; the outcome is recorded either way."""
    started = time.monotonic()
    reporter.progress(0.02, f"checking {request.host} for {request.site}")
    prepared = _prepare(platform, request, actor, job_id, reporter)
    try:
        reporter.progress(0.15, f"installing release {prepared.release} on {request.host}")
        outcome = _run_installer(platform, prepared, reporter)
    except BaseException as exc:
        _finish(platform, prepared, Outcome("failed", prepared.release, errors=[str(exc)]), actor)
        raise
    finally:
        _revoke(platform, prepared.pull_token_id, actor)
    outcome.seconds = round(time.monotonic() - started, 1)
    _finish(platform, prepared, outcome, actor)
    reporter.progress(1.0, f"{outcome.status}: release {outcome.release}", force=True)
    if outcome.status in ("failed", "rolled_back"):
        raise DeployFailed(_failure_message(request, outcome), hint=_hint(outcome))
    return outcome


@dataclass
class _Prepared:
    request: DeployRequest
    site_id: int
    host_id: int
    release: int
    previous: int | None
    deployment_id: int | None
    pull_token_id: str
    script: bytes
    sudo: bool
    host_ref: str


def _prepare(
    platform: Platform,
    request: DeployRequest,
    actor: str,
    job_id: int | None,
    reporter: JobReporter,
) -> _Prepared:
    with platform.transaction() as session:
        site, host = site_and_host(session, request.site, request.host)
        release = _target_release(session, site, host, request)
        _preflight(platform, session, site, host, request, reporter)
        current = current_deployment(session, site, host)
        pull = tokens.create_token(
            session,
            site.customer,
            scope="pull",
            expires_in=PULL_TOKEN_LIFETIME,
            description=f"deploy {request.site} to {request.host}",
            actor=actor,
            site=site,
        )
        bundle = _bundle(platform, session, site, release, request, pull.secret, actor)
        deployment = (
            None
            if request.dry_run
            else _record_start(session, site, host, release, current, job_id, request, actor)
        )
        return _Prepared(
            request=request,
            site_id=site.id,
            host_id=host.id,
            release=release.number,
            previous=_number(session, _previous_id(current, release)),
            deployment_id=deployment.id if deployment else None,
            pull_token_id=pull.token.public_id,
            script=runner_script(bundle, site.ref_name),
            sudo=host.ssh_user != "root",
            host_ref=request.host,
        )


def _target_release(session: Session, site: Site, host: Host, request: DeployRequest) -> Release:
    if request.rollback:
        release = previous_release(session, site, host)
        if release is None:
            raise NotFound(f"{request.site} has no earlier release on {request.host}.")
        return release
    return get_release(session, site, request.release)


def _preflight(
    platform: Platform,
    session: Session,
    site: Site,
    host: Host,
    request: DeployRequest,
    reporter: JobReporter,
) -> None:
    requirements = spec.site_requirements(session, site.ref_name, domains=request.domains)
    report = preflight.check_host(session, platform.runner, ssh_dir(platform), host, requirements)
    for check in report.checks:
        note = f"; {check.note}" if check.note else ""
        reporter.line(f"preflight {check.name}: {check.status} ({check.found}){note}")
    failed = [c for c in report.checks if c.status == "fail"]
    if failed:
        details = "; ".join(f"{c.name}: {c.found}, needs {c.expected}" for c in failed)
        hints = [c.hint for c in failed if c.hint]
        see = f"See: websonic host check {request.host} --site {request.site}."
        raise DeployFailed(
            f"{request.host} does not meet {request.site}'s requirements: {details}.",
            hint=" ".join([*hints, see, "Nothing was changed on the server."]),
        )


def ssh_dir(platform: Platform) -> Any:
    return platform.settings.home / "ssh"


def _bundle(
    platform: Platform,
    session: Session,
    site: Site,
    release: Release,
    request: DeployRequest,
    pull_token: str,
    actor: str,
) -> Bundle:
    settings = platform.settings
    public_url = settings.require_public_url()
    requirements = spec.site_requirements(session, site.ref_name, domains=request.domains)
    plan = plans.make_plan(
        site,
        release,
        requirements,
        public_url=public_url,
        domains=request.domains,
        tls=request.tls,
        acme_email=request.acme_email,
        database_mode=request.database_mode,
    )
    return make_bundle(
        plan,
        sign=platform.signer.sign,
        public_pem=public_pem(platform.signer.public),
        secrets=secret_values(platform.secrets, site),
        pull_user=site.customer.slug,
        pull_token=pull_token,
        ca_pem=settings.public_ca_pem(),
        updater=_updater(session, site, request, public_url, actor),
        args=installer_args(request),
    )


def _updater(
    session: Session, site: Site, request: DeployRequest, public_url: str, actor: str
) -> tuple[str, str] | None:
    """An install token for the server's updater timer, when one is asked for."""
    if not request.auto_update or request.dry_run:
        return None
    description = f"updater of {request.site} on {request.host}"
    # The old token is revoked when the server first uses the new one, never before: a push
    # that fails leaves the server's updater with the token it has.
    current = [
        t
        for t in tokens.list_tokens(session, site.customer)
        if t.description == description and tokens.is_active(t)
    ]
    made = tokens.create_token(
        session,
        site.customer,
        scope="install",
        expires_in=UPDATER_TOKEN_LIFETIME,
        description=description,
        actor=actor,
        site=site,
        replaces=current[-1] if current else None,
    )
    return public_url, made.secret


def installer_args(request: DeployRequest) -> list[str]:
    args = ["--health-timeout", str(request.health_timeout)]
    args += ["--drain-seconds", str(request.drain_seconds)]
    if request.rollback:
        args.append("--rollback")
    if request.dry_run:
        args.append("--dry-run")
    if request.auto_update is not None:
        args.append("--auto-update" if request.auto_update else "--no-auto-update")
    for domain in request.domains:
        args += ["--domain", domain]
    return args


def _record_start(
    session: Session,
    site: Site,
    host: Host,
    release: Release,
    current: Deployment | None,
    job_id: int | None,
    request: DeployRequest,
    actor: str,
) -> Deployment:
    deployment = Deployment(
        site_id=site.id,
        host_id=host.id,
        release_id=release.id,
        previous_release_id=_previous_id(current, release),
        status=DeploymentStatus.RUNNING,
        action="rollback" if request.rollback else "deploy",
        job_id=job_id,
        detail="",
    )
    session.add(deployment)
    session.flush()
    record(
        session,
        actor,
        f"{deployment.action}.start",
        customer_id=site.customer_id,
        target=f"{site.ref_name}:{release.number}@{request.host}",
        detail={"deployment": deployment.id, "release": release.number, "job": job_id},
    )
    return deployment


def _previous_id(current: Deployment | None, release: Release) -> int | None:
    """What served before: the current release, or (same release again) what served before it."""
    if current is None:
        return None
    return current.previous_release_id if current.release_id == release.id else current.release_id


def _number(session: Session, release_id: int | None) -> int | None:
    release = session.get(Release, release_id) if release_id is not None else None
    return release.number if release else None


def _run_installer(platform: Platform, prepared: _Prepared, reporter: JobReporter) -> Outcome:
    outcome = Outcome("failed", prepared.release, prepared.deployment_id, prepared.previous)

    def on_line(_stream: str, line: str) -> None:
        reporter.line(line)
        _read_line(line, outcome, reporter)

    with platform.sessions() as session:
        host = session.get(Host, prepared.host_id)
        assert host is not None
        host.customer  # noqa: B018 - loaded for error messages, before the session closes
        remote = ["sudo", "-n", "sh", "-s"] if prepared.sudo else ["sh", "-s"]
        hosts.run_remote(
            platform.runner.logging_to(None),
            host,
            ssh_dir(platform),
            remote,
            stdin=prepared.script,
            timeout=INSTALL_TIMEOUT,
            on_line=on_line,
        )
    if prepared.request.dry_run and outcome.status != "failed":
        outcome.status = "dry-run"
    return outcome


def _read_line(line: str, outcome: Outcome, reporter: JobReporter) -> None:
    text = line.strip()
    match = RESULT.match(text)
    if match:
        fields = dict(part.split("=", 1) for part in match.group(1).split() if "=" in part)
        outcome.status = fields.get("status", "failed")
        outcome.slot = fields.get("slot", "")
        return
    if text.startswith("websonic: error: "):
        outcome.errors.append(text.removeprefix("websonic: error: "))
    elif text.startswith("websonic: hint: ") and outcome.errors:
        outcome.errors.append(text.removeprefix("websonic: hint: "))
    elif text.startswith("websonic: "):
        reporter.progress(_fraction(text), text.removeprefix("websonic: ")[:120])


_STEPS = (
    ("preflight", 0.2),
    ("registry", 0.25),
    ("installing packages", 0.3),
    ("pulling", 0.4),
    ("database", 0.6),
    ("starting release", 0.7),
    ("waiting", 0.75),
    ("healthy", 0.85),
    ("Caddy now", 0.9),
    ("draining", 0.92),
)


def _fraction(text: str) -> float:
    for marker, fraction in reversed(_STEPS):
        if marker in text:
            return fraction
    return 0.2


def _finish(platform: Platform, prepared: _Prepared, outcome: Outcome, actor: str) -> None:
    if prepared.deployment_id is None:
        return
    with platform.transaction() as session:
        deployment = session.get(Deployment, prepared.deployment_id)
        if deployment is None or deployment.finished_at is not None:
            return
        deployment.status = STATUS_OF.get(outcome.status, DeploymentStatus.FAILED)
        deployment.finished_at = utcnow()
        deployment.seconds = outcome.seconds
        deployment.detail = "\n".join(outcome.errors)[:4000] or outcome.status
        site = session.get(Site, prepared.site_id)
        record(
            session,
            actor,
            f"{deployment.action}.{deployment.status.value}",
            customer_id=site.customer_id if site else None,
            target=f"{prepared.request.site}:{prepared.release}@{prepared.host_ref}",
            detail={
                "deployment": deployment.id,
                "status": outcome.status,
                "seconds": outcome.seconds,
                "slot": outcome.slot,
            },
        )


def _revoke(platform: Platform, public_id: str, actor: str) -> None:
    with platform.transaction() as session:
        tokens.revoke_token(session, public_id, actor=actor)


def _failure_message(request: DeployRequest, outcome: Outcome) -> str:
    first = outcome.errors[0] if outcome.errors else "the installer failed (see the job's log)"
    if outcome.status == "rolled_back":
        where = f"{request.site} on {request.host}"
        return f"Release {outcome.release} of {where} was rolled back: {first}"
    return f"Deploying {request.site} to {request.host} failed: {first}"


def _hint(outcome: Outcome) -> str:
    return " ".join(outcome.errors[1:]) or "See the server's log in /var/log/websonic/."


# --- reading ----------------------------------------------------------------------------------


def list_deployments(
    session: Session, site_ref: str, host_ref: str | None = None
) -> list[Deployment]:
    reap_interrupted(session)
    site = get_site(session, site_ref)
    query = select(Deployment).where(Deployment.site_id == site.id)
    if host_ref is not None:
        query = query.where(Deployment.host_id == hosts.get_host(session, host_ref).id)
    return list(session.scalars(query.order_by(Deployment.id)))


def check_request(request: DeployRequest) -> None:
    if request.health_timeout < 5 or request.drain_seconds < 0:
        raise InvalidInput("--health-timeout must be >= 5 s and --drain-seconds >= 0.")
