"""Online migration: the bulk copy from a replication slot's snapshot, then native logical
replication until the target has caught up, then a short cutover (``cutover``).

1. The DDL guard, a publication for the tables, then ``CREATE_REPLICATION_SLOT … LOGICAL
   pgoutput (SNAPSHOT 'export')`` on a replication connection: the slot starts exactly at the
   snapshot, which drives pg_dump and every copy worker (the connection stays open, idle, until
   the copy and its verification are done).
2. The bulk copy (``bulk``; large objects are refused by the plan), post-data, and (with
   verification on) the full chunked checksum of the target against the same snapshot.
3. ``CREATE SUBSCRIPTION … (create_slot = false, slot_name = …, copy_data = false, enabled =
   false)`` on the target, then ``ENABLE``: changes since the snapshot stream in.
4. Catch-up: the lag (``pg_current_wal_lsn() - confirmed_flush_lsn``) is reported until it is
   at most ``max_lag_bytes``; then the cutover; then the subscription, slot, publication, DDL
   guard and marker are removed.

Resume: killed during the bulk copy, the copy starts over (the old slot, publication and
subscription are dropped first: a forgotten slot would keep WAL forever). Killed while catching
up, the subscription keeps applying on its own; the same command finds them and goes on to the
cutover. Killed inside the cutover window, the source is unfrozen first, then it is retried.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from websonic.core.errors import MigrationFailed
from websonic.migration.engine import Outcome
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres import cutover, guard, offline, replication, schema
from websonic.migration.postgres.bulk import Job
from websonic.migration.postgres.catalog import tables
from websonic.migration.postgres.verify import Scope, verify
from websonic.migration.report import Difference, Progress, TableCheck, VerifyReport
from websonic.migration.urls import DatabaseUrl

POLL_SECONDS = 0.5
STALLED_SECONDS = 60.0


def names_of(checkpoint: dict[str, Any], run_id: int | None) -> replication.Names:
    saved = checkpoint.get("names")
    return replication.Names(*saved) if saved else replication.Names.of_run(run_id)


Step = Literal["copy", "clean-up", "reattach", "start-over"]


def next_step(checkpoint: dict[str, Any]) -> Step:
    """What a run does given its checkpoint (a fresh run has none)."""
    if not checkpoint:
        return "copy"
    if checkpoint.get("mode") != "online":
        return "start-over"
    if checkpoint.get("switched"):
        return "clean-up"  # the application runs on the target: only the cleanup is left
    if checkpoint.get("phase") in ("catch-up", "cutover"):
        return "reattach"  # the subscription kept applying (the source unfrozen first)
    return "start-over"  # killed during the bulk copy: its snapshot is gone


def migrate(job: Job) -> Outcome:
    checkpoint = job.checkpoint
    names = names_of(checkpoint, job.run.run_id)
    step = next_step(checkpoint)
    if step == "clean-up":
        job.outcome.verify = window_report(checkpoint.get("window"))
        _clean_up(job, names)
        return job.outcome
    if step == "reattach" and _still_replicating(job, names):
        job.run.log("Resumed: the subscription kept applying; going on to the cutover.")
        return _catch_up_and_switch(job, names)
    if checkpoint:
        job.run.log("Starting the copy over (the interrupted run's snapshot is gone).")
        abandon(job.source, job.target, {**checkpoint, "keep_target": True})
        checkpoint.clear()
    names = replication.Names.of_run(job.run.run_id)
    job.run.save(mode="online", names=[names.slot, names.publication, names.subscription])
    _copy(job, names)
    return _catch_up_and_switch(job, names)


def _copy(job: Job, names: replication.Names) -> None:
    identity = offline.source_identity(job)
    try:
        _guard(job)  # before the snapshot: no schema change can slip in between
        with pgconnect.connect(job.source) as src:
            pgconnect.bypass_guard(src)
            replication.create_publication(src, names.publication, tables(src))
        with replication.exporting_slot(job.source, names.slot) as slot:
            job.run.save(slot_lsn=slot.lsn)
            offline.copy_from_snapshot(job, slot.snapshot, identity)
            _check_bulk(job, slot.snapshot)
        with pgconnect.connect(job.target) as tgt:
            replication.create_subscription(tgt, job.source, names)
            replication.enable(tgt, names)
    except BaseException:
        _undo_copy(job)
        raise
    job.run.save(phase="catch-up")


def _undo_copy(job: Job) -> None:
    """A failed or stopped bulk copy leaves no slot, publication or guard behind (the copy
    starts over anyway); if even that fails, ``db abandon`` or the next run removes them."""
    try:
        abandon(job.source, job.target, {**job.checkpoint, "keep_target": True})
    except Exception as exc:
        job.run.log(
            f"Could not remove the replication slot and the DDL guard now ({exc}); "
            "the next run or `websonic db abandon` removes them."
        )
        return
    job.checkpoint.clear()


def _guard(job: Job) -> None:
    with pgconnect.connect(job.source) as src:
        pgconnect.bypass_guard(src)
        if not guard.install(src):
            job.run.log("No DDL guard (not a superuser): schema changes are caught at the cutover.")


def _check_bulk(job: Job, snapshot: str) -> None:
    """The full checksum of the copy against its snapshot, before any change is applied."""
    if not job.options.verify:
        return
    started = time.monotonic()
    report = verify(
        job.source,
        job.target,
        jobs=job.options.jobs,
        chunk_rows=job.options.chunk_rows,
        progress=job.run.progress,
        scope=Scope(sequences=False, snapshot=snapshot, marker=False),
    ).expecting(job.options.target_accounts)
    job.phase("verify", time.monotonic() - started)
    if not report.ok:
        job.outcome.verify = report
        raise MigrationFailed(
            "The bulk copy does not match its snapshot of the source: " + _summary(report)
        )


def _summary(report: Any) -> str:
    bad = [t.name for t in report.tables if not t.ok] + [
        f"{d.kind} {d.name}" for d in report.differences
    ]
    return ", ".join(bad[:10])


def window_report(saved: dict[str, Any] | None) -> VerifyReport | None:
    """The cutover window's verification as the checkpoint kept it (for a resumed clean-up)."""
    if not saved:
        return None
    tables = [
        TableCheck(
            t["name"], t["source_rows"], t["target_rows"], t["chunks"], list(t["mismatched"])
        )
        for t in saved.get("tables", [])
    ]
    differences = [Difference(**d) for d in saved.get("differences", [])]
    return VerifyReport(tables, differences, float(saved.get("seconds", 0.0)))


def _still_replicating(job: Job, names: replication.Names) -> bool:
    with pgconnect.connect(job.source) as src, pgconnect.connect(job.target) as tgt:
        pgconnect.bypass_guard(src)
        if job.checkpoint.get("frozen"):
            cutover.read_only(src, False)
            job.run.save(frozen=False)
        slot = src.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (names.slot,)
        ).fetchone()
        sub = tgt.execute(
            "SELECT 1 FROM pg_subscription WHERE subname = %s", (names.subscription,)
        ).fetchone()
    return bool(slot and sub)


def _catch_up_and_switch(job: Job, names: replication.Names) -> Outcome:
    _catch_up(job, names)
    downtime, report = cutover.cutover(job, names)
    job.outcome.verify = report
    if downtime < 0:
        job.run.save(phase="catch-up")
        return job.outcome
    job.outcome.write_downtime_seconds = round(downtime, 3)
    if not job.options.on_switch:
        job.outcome.notes.append(
            "No --on-switch command was given: point the application at "
            "the target now (the source takes no more writes)."
        )
    job.phase("cutover", downtime)
    _clean_up(job, names)
    return job.outcome


def _catch_up(job: Job, names: replication.Names) -> None:
    started = time.monotonic()
    best, best_at = None, time.monotonic()
    with pgconnect.connect(job.source) as src:
        while True:
            job.run.check_stop()
            lag, active = replication.lag_and_activity(src, names.slot)
            job.run.progress(Progress("catch-up", "applying changes", lag_bytes=lag))
            # Caught up only while the subscription's worker is streaming: a worker not started
            # yet (PostgreSQL spaces worker starts) would make the drain wait inside the window.
            if lag <= job.options.max_lag_bytes and active:
                break
            if best is None or lag < best:
                best, best_at = lag, time.monotonic()
            elif time.monotonic() - best_at > STALLED_SECONDS:
                raise MigrationFailed(
                    f"The target has not caught up for {STALLED_SECONDS:.0f} s "
                    f"(lag {lag} bytes): see the target server's log.",
                    hint="The replication keeps running; run the same command again to retry.",
                )
            time.sleep(POLL_SECONDS)
    job.phase("catch-up", time.monotonic() - started)


def _clean_up(job: Job, names: replication.Names) -> None:
    """Subscription, then slot, publication and DDL guard; the target's marker goes last."""
    started = time.monotonic()
    job.run.progress(Progress("cleanup", "removing the subscription, slot and publication"))
    with pgconnect.connect(job.target) as tgt:
        replication.drop_subscription(tgt, names)
    with pgconnect.connect(job.source) as src:
        pgconnect.bypass_guard(src)
        replication.drop_source_side(src, names)
        guard.remove(src)
        database = src.info.dbname
    with pgconnect.connect(job.target) as tgt:
        schema.mark_complete(tgt)
    job.run.save(phase="done")
    job.outcome.notes.append(cutover.undo_hint(database))
    job.phase("cleanup", time.monotonic() - started)


def abandon(source: DatabaseUrl, target: DatabaseUrl, checkpoint: dict[str, Any]) -> None:
    """Remove what a run left: subscription, slot, publication, DDL guard, a frozen source,
    and the target's unfinished copy (emptied, marker included) unless it was switched to."""
    names = names_of(checkpoint, None)
    with pgconnect.connect(target) as tgt:
        replication.drop_subscription(tgt, names)
    with pgconnect.connect(source) as src:
        pgconnect.bypass_guard(src)
        replication.drop_source_side(src, names)
        guard.remove(src)
        if checkpoint.get("frozen") and not checkpoint.get("switched"):
            cutover.read_only(src, False)
    with pgconnect.connect(target) as tgt:
        unfinished = schema.has_marker(tgt)
        if unfinished and not checkpoint.get("switched") and not checkpoint.get("keep_target"):
            schema.empty_database(tgt)
        elif checkpoint.get("switched"):
            schema.mark_complete(tgt)
