"""`websonic db migrate` and `db verify`: one database to another, planned, resumable, verified.

The order is always the same: parse and check both URLs, open SSH tunnels where asked, probe both
servers (clear errors for a wrong password or an unreachable server), plan (what will be copied,
every blocker) — and stop there on ``--dry-run`` or a blocker, before anything changes — then
run the engine with the run's checkpoint, verify, and record how it ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from websonic.core.errors import InvalidInput, MigrationFailed
from websonic.migration import runs
from websonic.migration.engine import Engine, Outcome, ProgressSink, RunContext, Stopped, engine_for
from websonic.migration.models import MigrationStatus
from websonic.migration.plan import MigrateOptions, Plan
from websonic.migration.report import MigrateReport, VerifyReport
from websonic.migration.tunnel import reachable
from websonic.migration.urls import DatabaseUrl, parse_database_url
from websonic.platform import Platform

Log = Callable[[str], None]


@dataclass(frozen=True)
class Endpoints:
    """Both databases as the user gave them, and as they are reached (through tunnels)."""

    source: DatabaseUrl
    target: DatabaseUrl
    source_reached: DatabaseUrl
    target_reached: DatabaseUrl


def parse_pair(source_text: str, target_text: str) -> tuple[DatabaseUrl, DatabaseUrl]:
    source = parse_database_url(source_text, what="source URL (--from)")
    target = parse_database_url(target_text, what="target URL (--to)")
    if source.engine != target.engine:
        raise InvalidInput(
            f"The source is {source.engine} and the target {target.engine}: WebSonic migrates "
            "between servers of the same engine (PostgreSQL, MariaDB/MySQL or SQLite)."
        )
    if source.masked() == target.masked():
        raise InvalidInput("The source and the target are the same database.")
    return source, target


@contextmanager
def connected(platform: Platform, source_text: str, target_text: str) -> Iterator[Endpoints]:
    source, target = parse_pair(source_text, target_text)
    ssh_dir = platform.settings.home / "ssh"
    with ExitStack() as stack:
        src = stack.enter_context(reachable(source, platform.runner, platform.sessions, ssh_dir))
        dst = stack.enter_context(reachable(target, platform.runner, platform.sessions, ssh_dir))
        yield Endpoints(source, target, src, dst)


def plan_migration(engine: Engine, ends: Endpoints, options: MigrateOptions) -> Plan:
    engine.probe(ends.source_reached)
    engine.probe(ends.target_reached)
    plan = engine.plan(ends.source_reached, ends.target_reached, options)
    plan.source, plan.target = ends.source.masked(), ends.target.masked()
    return plan


def migrate_database(
    platform: Platform,
    source_text: str,
    target_text: str,
    options: MigrateOptions,
    *,
    progress: ProgressSink,
    log: Log,
    actor: str,
    stop: threading.Event | None = None,
) -> MigrateReport:
    """Plan, then (unless a dry run) migrate and verify; the report says how it ended."""
    with connected(platform, source_text, target_text) as ends:
        engine = engine_for(ends.source.engine)
        plan = plan_migration(engine, ends, options)
        if options.dry_run:
            return planned(plan)
        refuse_blocked(plan)
        run = RunContext(None, {}, progress, lambda _checkpoint: None, log)
        if stop is not None:
            run.stop_requested = stop
        return _run(platform, engine, ends, plan, options, run, actor)


def planned(plan: Plan) -> MigrateReport:
    return MigrateReport(
        None, plan.engine, plan.mode, plan.source, plan.target, "planned", plan=plan
    )


def refuse_blocked(plan: Plan) -> None:
    if not plan.fatal:
        return
    lines = [f"- {b.message}" + (f" ({b.hint})" if b.hint else "") for b in plan.fatal]
    raise MigrationFailed(
        f"The migration cannot start ({len(lines)} blocker(s)); nothing was changed:\n"
        + "\n".join(lines),
        hint="See the plan with --dry-run.",
    )


def _run(
    platform: Platform, engine: Engine, ends: Endpoints, plan: Plan, options: MigrateOptions,
    run: RunContext, actor: str,
) -> MigrateReport:  # fmt: skip
    sessions = platform.sessions
    run_id, checkpoint = runs.start(sessions, plan, actor=actor)
    run.run_id, run.checkpoint = run_id, checkpoint
    run.persist = lambda saved: runs.save_checkpoint(sessions, run_id, saved)
    progress = run.progress
    report = MigrateReport(run_id, plan.engine, plan.mode, plan.source, plan.target, "failed",
                           resumed=bool(checkpoint), plan=plan)  # fmt: skip
    started = time.monotonic()
    try:
        outcome = engine.migrate(ends.source_reached, ends.target_reached, options, run)
        _fill(report, outcome, engine, ends, options, progress)
    except Stopped as exc:
        report.status, report.errors = "stopped", [str(exc)]
        runs.finish(sessions, run_id, MigrationStatus.STOPPED, _json(report, started), actor=actor)
        return report
    except Exception as exc:
        report.errors = [str(exc)]
        runs.finish(sessions, run_id, MigrationStatus.FAILED, _json(report, started), actor=actor)
        raise
    status = MigrationStatus.SUCCEEDED if report.ok else MigrationStatus.FAILED
    runs.finish(sessions, run_id, status, _json(report, started), actor=actor)
    return report


def _fill(
    report: MigrateReport, outcome: Outcome, engine: Engine, ends: Endpoints,
    options: MigrateOptions, progress: ProgressSink,
) -> None:  # fmt: skip
    report.tables, report.phases = outcome.tables, outcome.phases
    report.write_downtime_seconds = outcome.write_downtime_seconds
    report.notes = list(outcome.notes)
    report.verify = outcome.verify
    if report.verify is None and options.verify:
        report.verify = engine.verify(ends.source_reached, ends.target_reached, options, progress)
    if report.verify is not None:
        report.verify = report.verify.expecting(options.target_accounts)
    report.status = "succeeded" if report.verify is None or report.verify.ok else "failed"
    if report.verify is not None and not report.verify.ok:
        report.errors.append("The target does not match the source (see the verification).")


def _json(report: MigrateReport, started: float) -> dict[str, Any]:
    report.seconds = round(time.monotonic() - started, 3)
    return report.to_json()


def verify_databases(
    platform: Platform, source_text: str, target_text: str, *, progress: ProgressSink
) -> VerifyReport:
    """Compare two databases: row counts, chunked checksums, the object inventory."""
    with connected(platform, source_text, target_text) as ends:
        engine = engine_for(ends.source.engine)
        engine.probe(ends.source_reached)
        engine.probe(ends.target_reached)
        return engine.verify(ends.source_reached, ends.target_reached, MigrateOptions(), progress)


def abandon_run(platform: Platform, run_id: int, source_text: str, target_text: str,
                *, actor: str) -> None:  # fmt: skip
    """Remove what an unfinished run left (slots, subscriptions, replication, markers)."""
    with platform.sessions() as session:
        run = runs.get_run(session, run_id)
        checkpoint = dict(run.checkpoint or {})
        expected = (run.source, run.target)
    with connected(platform, source_text, target_text) as ends:
        if (ends.source.masked(), ends.target.masked()) != expected:
            raise InvalidInput(f"Run {run_id} is between {expected[0]} and {expected[1]}.")
        engine_for(ends.source.engine).abandon(ends.source_reached, ends.target_reached, checkpoint)
    runs.finish(platform.sessions, run_id, MigrationStatus.ABANDONED, {}, actor=actor)
