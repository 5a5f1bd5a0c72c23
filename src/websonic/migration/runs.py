"""The record of each migration run, so that a stopped or killed run resumes or is cleaned up.

A run is identified by its engine, mode and masked source and target URLs: the same command
given again finds the unfinished run and resumes it from the engine's checkpoint. Passwords are
never stored (the URLs are masked); the user gives them again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from websonic.audit.service import record
from websonic.core.db import transaction, utcnow
from websonic.core.errors import NotFound
from websonic.migration.models import Migration, MigrationStatus
from websonic.migration.plan import Mode, Plan

UNFINISHED = (
    MigrationStatus.PLANNED,
    MigrationStatus.COPYING,
    MigrationStatus.CATCHING_UP,
    MigrationStatus.CUTTING_OVER,
    MigrationStatus.VERIFYING,
    MigrationStatus.FAILED,
    MigrationStatus.STOPPED,
)


def unfinished(session: Session, source: str, target: str, mode: Mode) -> Migration | None:
    """The newest unfinished run between these (masked) URLs in this mode, if any."""
    return session.scalar(
        select(Migration)
        .where(
            Migration.source == source,
            Migration.target == target,
            Migration.mode == mode,
            Migration.status.in_(UNFINISHED),
        )
        .order_by(Migration.id.desc())
        .limit(1)
    )


def start(
    sessions: sessionmaker[Session], plan: Plan, *, actor: str, site_id: int | None = None
) -> tuple[int, dict[str, Any]]:
    """Resume the unfinished run of this plan, or start one: (run id, its checkpoint)."""
    with transaction(sessions) as session:
        run = unfinished(session, plan.source, plan.target, plan.mode)
        if run is None:
            run = Migration(mode=plan.mode, source=plan.source, target=plan.target, site_id=site_id)
            session.add(run)
        run.status, run.plan, run.finished_at = MigrationStatus.COPYING, plan.to_json(), None
        session.flush()
        action = "migration.resume" if run.checkpoint else "migration.start"
        record(session, actor, action, target=f"run {run.id}", detail=_detail(run))
        return run.id, dict(run.checkpoint or {})


def save_checkpoint(
    sessions: sessionmaker[Session], run_id: int, checkpoint: dict[str, Any]
) -> None:
    with transaction(sessions) as session:
        run = _get(session, run_id)
        run.checkpoint = checkpoint
        phase = checkpoint.get("phase")
        if phase in STATUS_OF_PHASE:
            run.status = STATUS_OF_PHASE[phase]


STATUS_OF_PHASE = {
    "schema": MigrationStatus.COPYING,
    "copy": MigrationStatus.COPYING,
    "indexes": MigrationStatus.COPYING,
    "catch-up": MigrationStatus.CATCHING_UP,
    "cutover": MigrationStatus.CUTTING_OVER,
    "verify": MigrationStatus.VERIFYING,
}


def finish(
    sessions: sessionmaker[Session],
    run_id: int,
    status: MigrationStatus,
    report: dict[str, Any],
    *,
    actor: str,
) -> None:
    with transaction(sessions) as session:
        run = _get(session, run_id)
        run.status, run.report = status, report
        if status.finished:
            run.finished_at, run.checkpoint = utcnow(), {}
        record(session, actor, f"migration.{status.value}", target=f"run {run.id}",
               detail=_detail(run))  # fmt: skip


def list_runs(session: Session, limit: int = 50) -> list[Migration]:
    return list(session.scalars(select(Migration).order_by(Migration.id.desc()).limit(limit)))


def get_run(session: Session, run_id: int) -> Migration:
    return _get(session, run_id)


def _get(session: Session, run_id: int) -> Migration:
    run = session.get(Migration, run_id)
    if run is None:
        raise NotFound(f"Unknown migration run {run_id}.", hint="List them: websonic db runs")
    return run


def _detail(run: Migration) -> dict[str, Any]:
    return {"mode": run.mode, "source": run.source, "target": run.target}
