"""The bulk copy from one exported snapshot, shared by offline and online mode.

Order: roles the database uses, the target emptied (only with ``--force`` or when it holds our
own unfinished copy) and marked incomplete, pre-data (``pg_dump --snapshot``), table data in
parallel chunks (largest tables first), large objects (offline), post-data in parallel waves.
Each finished chunk and post-data entry is saved in the run's checkpoint.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from websonic.core.runner import Runner
from websonic.migration.engine import Outcome, RunContext
from websonic.migration.plan import MigrateOptions
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres import roles, schema
from websonic.migration.postgres.catalog import Table, key_range, tables
from websonic.migration.postgres.chunks import Chunk, block_chunks, key_chunks
from websonic.migration.postgres.copy import CopyWorker, begin_snapshot
from websonic.migration.postgres.pool import Pool
from websonic.migration.report import Phase, Progress, TableResult
from websonic.migration.urls import DatabaseUrl

LO_CHUNK = 1 << 20
CHUNKS_PER_JOB = 4
PROGRESS_EVERY = 0.25


@dataclass
class Job:
    """One migration: where from and to, how, and its run (checkpoint, progress, stop)."""

    runner: Runner
    source: DatabaseUrl
    target: DatabaseUrl
    options: MigrateOptions
    run: RunContext
    binary: bool
    outcome: Outcome = field(default_factory=Outcome)
    resumed: bool = False  # the checkpoint had a schema made by an earlier, interrupted run

    @property
    def checkpoint(self) -> dict[str, Any]:
        return self.run.checkpoint

    def phase(self, name: Phase, seconds: float) -> None:
        self.outcome.phases[name] = round(self.outcome.phases.get(name, 0.0) + seconds, 3)


# --- schema -----------------------------------------------------------------------------------


def prepare_target(job: Job, snapshot: str, identity: str, empty: bool) -> None:
    """Roles, an empty target marked incomplete, then the pre-data schema from the snapshot."""
    started = time.monotonic()
    job.run.progress(Progress("schema", "roles and schema"))
    with pgconnect.connect(job.source) as src, pgconnect.connect(job.target) as tgt:
        created = roles.create_roles(src, tgt)
        if created:
            job.run.log(f"Roles created on the target: {', '.join(created)}")
        if empty:
            schema.empty_database(tgt)
        schema.mark_incomplete(tgt, job.run.run_id, identity)
    script = schema.dump(job.runner, job.source, "pre-data", snapshot)
    schema.apply_pre_data(job.runner, job.target, script)
    job.run.save(schema=True, phase="copy", done=[], post=[], lo=False)
    job.phase("schema", time.monotonic() - started)


# --- chunks -----------------------------------------------------------------------------------


def snapshot_tables(source: DatabaseUrl, snapshot: str) -> list[Table]:
    with pgconnect.connect(source) as conn:
        begin_snapshot(conn, snapshot)
        return [t for t in tables(conn) if t.kind == "r"]


def plan_chunks(
    source: DatabaseUrl, snapshot: str, todo: list[Table], chunk_rows: int, jobs: int
) -> dict[str, list[Chunk]]:
    """Each table's copy chunks: ranges of ``chunk_rows`` rows, but no more than
    ``CHUNKS_PER_JOB`` per job (fewer, longer scans copy faster; a killed run redoes more)."""
    plans: dict[str, list[Chunk]] = {}
    with pgconnect.connect(source) as conn:
        begin_snapshot(conn, snapshot)
        for table in todo:
            rows = max(chunk_rows, math.ceil(table.rows / (CHUNKS_PER_JOB * max(1, jobs))))
            plans[table.qualified] = _chunks(conn, table, rows)
    return plans


def _chunks(conn: psycopg.Connection, table: Table, chunk_rows: int) -> list[Chunk]:
    if table.rows <= chunk_rows:
        return [Chunk(table.qualified, 0, "whole")]
    if table.integer_key:
        low, high = key_range(conn, table)
        return key_chunks(table.qualified, low, high, table.rows, chunk_rows)
    return block_chunks(table.qualified, table.bytes, table.rows, chunk_rows)


def chunks_to_json(plans: dict[str, list[Chunk]]) -> dict[str, list[list[Any]]]:
    return {name: [[c.kind, c.lo, c.hi] for c in chunks] for name, chunks in plans.items()}


def chunks_from_json(data: dict[str, list[list[Any]]]) -> dict[str, list[Chunk]]:
    return {
        name: [Chunk(name, i, kind, lo, hi) for i, (kind, lo, hi) in enumerate(rows)]
        for name, rows in data.items()
    }


# --- data -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Progress of the copy, shared by the workers (updated under the pool's lock)."""

    job: Job
    tables_total: int
    bytes_total: int
    chunks_left: dict[str, int]
    rows: int = 0
    bytes: int = 0
    tables_done: int = 0
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_bytes(self, count: int) -> None:
        with self.lock:
            self.bytes += count
            self.show()

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.job.run.progress(
                Progress(
                    "copy",
                    "",
                    self.tables_done,
                    self.tables_total,
                    self.rows,
                    self.bytes,
                    self.bytes_total,
                )
            )


def copy_tables(
    job: Job, snapshot: str, todo: list[Table], plans: dict[str, list[Chunk]], kept: set[str]
) -> None:
    """Copy every chunk not kept, largest tables first; each one saved when committed."""
    started = time.monotonic()
    by_name = {t.qualified: t for t in todo}
    work = [c for t in todo for c in plans[t.qualified] if c.id not in kept]
    left = {t.qualified: sum(1 for c in plans[t.qualified] if c.id not in kept) for t in todo}
    tally = Tally(job, len(todo), sum(t.bytes for t in todo), left)
    tally.tables_done = sum(1 for n in left.values() if n == 0)
    results = {t.qualified: TableResult(t.qualified) for t in todo}
    done: list[str] = list(job.checkpoint.get("done", []))

    def copy(worker: CopyWorker, chunk: Chunk) -> tuple[int, int, float]:
        begun = time.monotonic()
        rows, size = worker.copy(by_name[chunk.table], chunk, tally.add_bytes)
        return rows, size, time.monotonic() - begun

    def finished(chunk: Chunk, result: tuple[int, int, float]) -> None:
        rows, size, seconds = result
        entry = results[chunk.table]
        entry.rows, entry.bytes, entry.seconds = (
            entry.rows + rows,
            entry.bytes + size,
            entry.seconds + seconds,
        )
        done.append(chunk.id)
        job.run.save(done=done)
        with tally.lock:
            tally.rows += rows
            tally.chunks_left[chunk.table] -= 1
            tally.tables_done += tally.chunks_left[chunk.table] == 0
            tally.show(force=True)

    pool: Pool[CopyWorker, Chunk, tuple[int, int, float]] = Pool(
        job.options.jobs,
        lambda: CopyWorker.open(
            job.source, job.target, snapshot, job.binary, job.run.stop_requested
        ),
        job.run.stop_requested,
    )
    pool.run(work, copy, finished)
    job.outcome.tables = sorted(results.values(), key=lambda r: -r.bytes)
    job.phase("copy", time.monotonic() - started)


def copy_large_objects(job: Job, snapshot: str) -> None:
    """Large objects' contents (offline mode; pre-data created them with owner and grants)."""
    if job.checkpoint.get("lo"):
        return
    with pgconnect.connect(job.source) as src, pgconnect.connect(job.target) as tgt:
        begin_snapshot(src, snapshot)
        oids = [oid for (oid,) in src.execute("SELECT oid FROM pg_largeobject_metadata")]
        with tgt.transaction():
            for oid in oids:
                _copy_large_object(src, tgt, int(oid))
    job.run.save(lo=True)


def _copy_large_object(src: psycopg.Connection, tgt: psycopg.Connection, oid: int) -> None:
    tgt.execute("SELECT lo_truncate(lo_open(%s, 131072), 0)", (oid,))
    offset = 0
    while True:
        row = src.execute("SELECT lo_get(%s, %s, %s)", (oid, offset, LO_CHUNK)).fetchone()
        data = bytes(row[0]) if row and row[0] is not None else b""
        if not data:
            return
        tgt.execute("SELECT lo_put(%s, %s, %s)", (oid, offset, data))
        offset += len(data)


# --- post-data --------------------------------------------------------------------------------


class TargetWorker:
    def __init__(self, target: DatabaseUrl) -> None:
        self.conn = pgconnect.connect(target)
        self.conn.execute("SET maintenance_work_mem = '256MB'")

    def close(self) -> None:
        self.conn.close()


def build_post_data(job: Job, post: schema.PostData) -> None:
    """Indexes, constraints, triggers… in waves, each wave's entries in parallel."""
    started = time.monotonic()
    done: list[int] = list(job.checkpoint.get("post", []))
    resumed = bool(done) or job.resumed
    job.run.save(phase="indexes")
    waves, in_order = post.order()
    total = len(post.entries)

    def finished(index: int, _result: None) -> None:
        done.append(index)
        job.run.save(post=done)
        job.run.progress(
            Progress(
                "indexes",
                post.entries[index].kind.lower() + " " + post.entries[index].name,
                len(done),
                total,
            )
        )

    for jobs, todo in [*((job.options.jobs, wave) for wave in waves), (1, in_order)]:
        left = [i for i in todo if i not in done]  # jobs 1: in dump order, on one session
        if left:
            pool: Pool[TargetWorker, int, None] = Pool(
                jobs, lambda: TargetWorker(job.target), job.run.stop_requested
            )
            pool.run(left, lambda w, i: schema.build_entry(w.conn, post, i, resumed), finished)
    job.phase("indexes", time.monotonic() - started)


def analyze(job: Job) -> None:
    started = time.monotonic()
    job.run.progress(Progress("indexes", "ANALYZE"))
    with pgconnect.connect(job.target) as tgt:
        tgt.execute("ANALYZE")
    job.phase("indexes", time.monotonic() - started)
