"""Job handlers of the builds domain (run by the workers or in the CLI's process)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from websonic.audit.service import record
from websonic.builds import base as bases
from websonic.builds.models import BaseImage
from websonic.builds.pipeline import build_release
from websonic.jobs.models import Job
from websonic.jobs.service import JobReporter
from websonic.platform import Platform


def run_build(platform: Platform, job: Job, reporter: JobReporter) -> dict[str, Any]:
    release = build_release(
        platform,
        int(job.params["site_id"]),
        ref=job.params.get("ref"),
        job_id=job.id,
        actor=job.requested_by or "job",
        log=reporter.line,
        progress=reporter.progress,
    )
    return {"release": release.number, "digest": release.digest, "size": release.size}


def run_base_build(platform: Platform, job: Job, reporter: JobReporter) -> dict[str, Any]:
    """Build the base image of each kind in ``params["kinds"]``, recording each by digest."""
    kinds = list(job.params.get("kinds") or bases.ALL_KINDS)
    built = {}
    for index, kind in enumerate(kinds):
        reporter.progress(index / len(kinds), f"building the {kind} base image")
        base = build_base_image(
            platform,
            kind,
            on_line=lambda _s, line: reporter.line(line),
            actor=job.requested_by or "job",
        )
        built[kind] = base.digest
    reporter.progress(1.0, "base images ready", force=True)
    return {"bases": built}


def build_base_image(platform: Platform, kind: str, *, on_line: Any, actor: str) -> BaseImage:
    settings = platform.settings
    result = bases.build_base(
        bases.spec_for(kind, settings),
        runner=platform.runner,
        cache_dir=settings.effective_base_cache_dir,
        max_age_seconds=settings.base_max_age_hours * 3600,
        on_line=on_line,
    )
    with platform.transaction() as session:
        current = session.scalar(
            select(BaseImage).where(BaseImage.kind == kind).order_by(BaseImage.id.desc()).limit(1)
        )
        if current is not None and current.digest == result.digest:
            return current
        base = BaseImage(
            kind=kind,
            suite=settings.debian_suite,
            image=result.image,
            digest=result.digest,
            packages=[list(p) for p in result.packages],
            size=result.size,
        )
        session.add(base)
        record(session, actor, "base.build", target=kind, detail={"digest": result.digest})
    return base
