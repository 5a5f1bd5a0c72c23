"""Offline migration: one consistent snapshot of the source copied to the target.

A ``REPEATABLE READ`` transaction exports a snapshot (``pg_export_snapshot()``) and stays open
until the copy is done; pg_dump (pre- and post-data) and every copy worker use it, so the
target is the source as of one instant. The application should not write meanwhile (writes
after the snapshot are not copied: that is what online mode is for).

Resume (the same command after a kill, a crash or Ctrl-C): the old snapshot is gone, so a new
one is exported and ``resume`` decides chunk by chunk what can be kept: only what provably
equals the source in the new snapshot (checksums); the rest is copied again. A target whose
schema was never completed is emptied and started over. The target carries the
``websonic.migration_marker`` table until the very last step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from websonic.migration.engine import Outcome
from websonic.migration.postgres import bulk, resume, schema, sequences
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.bulk import Job
from websonic.migration.postgres.catalog import marker
from websonic.migration.report import Progress


@contextmanager
def exported_snapshot(job: Job) -> Iterator[str]:
    """A snapshot of the source, importable while the block runs."""
    conn = pgconnect.connect(job.source)
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield str(row[0])
    finally:
        conn.close()


def source_identity(job: Job) -> str:
    with pgconnect.connect(job.source) as conn:
        try:
            return schema.source_identity(conn)
        except psycopg.Error:
            return ""


def target_needs_emptying(job: Job) -> bool:
    """Empty the target first: ``--force``, or it holds our own unfinished copy."""
    with pgconnect.connect(job.target) as conn:
        return job.options.force or marker(conn) is not None


def migrate(job: Job) -> Outcome:
    identity = source_identity(job)
    checkpoint = job.checkpoint
    if checkpoint.get("mode") != "offline" or not checkpoint.get("schema"):
        checkpoint.clear()
    job.resumed = bool(checkpoint)
    with exported_snapshot(job) as snapshot:
        copy_from_snapshot(job, snapshot, identity)
    finish(job)
    return job.outcome


def copy_from_snapshot(job: Job, snapshot: str, identity: str) -> None:
    """Schema (unless a resumed run made it), data, post-data: all from ``snapshot``."""
    resuming_post_data = job.checkpoint.get("schema") and job.checkpoint.get("phase") == "indexes"
    if resuming_post_data and not _post_data_resumable(job, snapshot):
        job.run.log("The source changed since the copy: starting over from an empty target.")
        job.checkpoint.clear()
    if not job.checkpoint.get("schema"):
        job.run.save(mode=job.options.mode)
        bulk.prepare_target(job, snapshot, identity, target_needs_emptying(job))
    post = schema.PostData.parse(schema.dump(job.runner, job.source, "post-data", snapshot))
    if job.checkpoint.get("phase") == "copy":
        _copy_data(job, snapshot)
    bulk.build_post_data(job, post)


def _copy_data(job: Job, snapshot: str) -> None:
    todo = bulk.snapshot_tables(job.source, snapshot)
    saved = job.checkpoint.get("chunks")
    plans = bulk.chunks_from_json(saved) if saved else {}
    missing = [t for t in todo if t.qualified not in plans]
    plans |= bulk.plan_chunks(
        job.source, snapshot, missing, job.options.chunk_rows, job.options.jobs
    )
    job.run.save(chunks=bulk.chunks_to_json(plans))
    kept: set[str] = set()
    done = set(job.checkpoint.get("done", []))
    if job.resumed:
        job.run.progress(Progress("copy", "checking what the interrupted run copied"))
        kept = resume.kept_chunks(
            job.source,
            job.target,
            snapshot,
            todo,
            plans,
            done,
            job.options.jobs,
            job.run.stop_requested,
        )
        job.run.log(f"Resumed: {len(kept)} copied chunk(s) match the source and are kept.")
    job.run.save(done=sorted(kept))
    bulk.copy_tables(job, snapshot, todo, plans, kept)
    if job.options.mode == "offline":
        bulk.copy_large_objects(job, snapshot)


def _post_data_resumable(job: Job, snapshot: str) -> bool:
    todo = bulk.snapshot_tables(job.source, snapshot)
    plans = bulk.chunks_from_json(job.checkpoint.get("chunks") or {})
    plans |= bulk.plan_chunks(
        job.source,
        snapshot,
        [t for t in todo if t.qualified not in plans],
        job.options.chunk_rows,
        job.options.jobs,
    )
    return resume.all_match(
        job.source, job.target, snapshot, todo, plans, job.options.jobs, job.run.stop_requested
    )


def finish(job: Job) -> None:
    """Sequences, ANALYZE, and only then the marker removed: the target is complete."""
    started = time.monotonic()
    with pgconnect.connect(job.source) as src, pgconnect.connect(job.target) as tgt:
        sequences.write(tgt, sequences.read(src))
    job.phase("indexes", time.monotonic() - started)
    bulk.analyze(job)
    with pgconnect.connect(job.target) as tgt:
        schema.mark_complete(tgt)
    job.run.save(phase="done")
