"""The bulk copy: one snapshot, the tables, their data, then indexes, keys and objects.

Order: the target is emptied and marked; tables are created from the snapshot's view of the
schema (secondary indexes of big tables and all foreign keys held back, see ``schema``); every
range of every table is copied (largest tables first, ``jobs`` workers); then the held-back
indexes (in parallel), the foreign keys, ``ANALYZE TABLE``, and the views, routines, triggers,
grants (and, offline, events). Each finished range is checkpointed.

Resume rules. A run stopped or killed during the copy has lost its snapshot; the next identical
command opens a new one (position P2) and reads the source's binary log from the old snapshot's
position P1 to P2:

- no binary log, a log file purged since, too much to read, or any DDL/statement on the
  database in between: nothing is kept, the target is emptied and the copy starts over;
- otherwise a table with no row change between P1 and P2 is the same at P2 as at P1: its
  finished ranges are kept and its unfinished ranges are deleted on the target and copied again
  from the new snapshot; a table that changed is dropped, recreated and copied whole.

Every table is then exactly as of P2, which is where online replication starts. A run killed
after the copy (building indexes or creating objects) resumes at that step: those steps are
idempotent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pymysql

from websonic.migration.mariadb import binlog, grants, objects, schema
from websonic.migration.mariadb.catalog import MARKER, Table, read_tables
from websonic.migration.mariadb.chunks import Chunk, split_table
from websonic.migration.mariadb.connect import (
    Connection,
    close,
    connect,
    execute,
    session,
    value,
)
from websonic.migration.mariadb.context import Migration, source_identity
from websonic.migration.mariadb.copy import BATCH_BYTES, Batch, CopyJob, run_workers
from websonic.migration.mariadb.marker import mark
from websonic.migration.mariadb.snapshot import Position, Snapshot, open_snapshot
from websonic.migration.mariadb.sql import qualified
from websonic.migration.report import TableResult

ACCESS_DENIED = (1044, 1045, 1227)
COPIED = ("indexes", "objects")


def bulk_copy(m: Migration, *, with_events: bool) -> Position:
    """Copy everything (resuming what a previous run did); the snapshot's position."""
    if m.checkpoint.get("phase") not in COPIED:
        started = time.monotonic()
        _copy(m)
        m.timed("copy", started)
        m.save(phase="indexes")
    if m.checkpoint.get("phase") == "indexes":
        started = time.monotonic()
        _indexes(m)
        m.timed("indexes", started)
        m.save(phase="objects")
    started = time.monotonic()
    create_objects(m, with_events=with_events)
    m.timed("objects", started)
    return Position.from_json(m.checkpoint.get("snapshot"))


def table_results(m: Migration) -> list[TableResult]:
    tables = m.checkpoint.get("tables", {})
    return [TableResult(name, int(s.get("rows", 0)), int(s.get("bytes", 0)),
                        float(s.get("seconds", 0.0)))
            for name, s in tables.items()]  # fmt: skip


def _copy(m: Migration) -> None:
    snapshot = open_worker_snapshot(m)
    try:
        reader = snapshot.connections[0]
        tables = read_tables(reader, m.source.database)
        with session(m.target) as target:
            changed = _changed_since(m, snapshot.position, tables)
            if changed is None:
                _start_over(m, reader, target, tables, snapshot.position)
            else:
                _resume(m, reader, target, tables, changed, snapshot.position)
        _run_copy(m, snapshot, {t.name: t for t in tables})
    finally:
        snapshot.close()


def open_worker_snapshot(m: Migration) -> Snapshot:
    try:
        return open_snapshot(m.source, m.options.jobs)
    except pymysql.err.OperationalError as exc:
        if m.options.jobs == 1 or not exc.args or exc.args[0] not in ACCESS_DENIED:
            raise
        m.run.log("The source user may not hold commits (RELOAD): copying with one worker.")
        return open_snapshot(m.source, 1)


def _changed_since(m: Migration, position: Position, tables: list[Table]) -> set[str] | None:
    """Tables changed since the previous run's snapshot; None: start over (see module doc)."""
    saved = m.checkpoint.get("tables")
    if not saved:
        return None
    if set(saved) != {t.name for t in tables}:
        m.run.log("The source's tables changed since the interrupted copy: starting over.")
        return None
    with session(m.source) as conn:
        found = binlog.changes(conn, m.source.database, Position.from_json(
            m.checkpoint.get("snapshot")), position)  # fmt: skip
    if found is None:
        m.run.log("The source's binary log cannot tell what changed since the interrupted "
                  "copy: starting over.")  # fmt: skip
        return None
    if found.statements:
        m.run.log(f"Statements ran on the source since the interrupted copy "
                  f"({found.statements[0][:200]}): starting over.")  # fmt: skip
        return None
    return found.tables


def _start_over(m: Migration, reader: Connection, target: Connection, tables: list[Table],
                position: Position) -> None:  # fmt: skip
    objects.drop_everything(target, m.target.database, keep=MARKER)
    mark(target, m.target.database, source_identity(reader, m.source))
    schema.set_database_defaults(
        target, m.target.database, schema.database_defaults(reader, m.source.database)
    )
    states = {t.name: _fresh_table(m, reader, target, t) for t in _largest_first(tables)}
    m.save(phase="copy", snapshot=position.to_json(), tables=states, foreign_keys=False)


def _fresh_table(m: Migration, reader: Connection, target: Connection,
                 table: Table) -> dict[str, Any]:  # fmt: skip
    ddl = schema.table_ddl(reader, m.source.database, table)
    schema.create_table(target, ddl)
    chunks = split_table(reader, m.source.database, table, m.options.chunk_rows)
    return {"ddl": schema.to_dict(ddl), "chunks": [c.to_json() for c in chunks], "done": [],
            "rows": 0, "bytes": 0, "seconds": 0.0, "indexed": False}  # fmt: skip


def _resume(m: Migration, reader: Connection, target: Connection, tables: list[Table],
            changed: set[str], position: Position) -> None:  # fmt: skip
    states = m.checkpoint["tables"]
    for table in tables:
        if table.name in changed:
            m.run.log(f"{table.name} changed since the interrupted copy: copying it again.")
            states[table.name] = _fresh_table(m, reader, target, table)
            continue
        state = states[table.name]
        for chunk in _chunks(table.name, state):
            if chunk.index not in state["done"]:
                where = chunk.where(table.key)
                execute(target, f"DELETE FROM {qualified(m.target.database, table.name)} "
                                f"WHERE {where}")  # fmt: skip
    m.save(phase="copy", snapshot=position.to_json(), tables=states)
    m.run.log(f"Resuming the copy: {len(tables) - len(changed)} of {len(tables)} tables keep "
              "the ranges already copied.")  # fmt: skip


def _chunks(name: str, state: dict[str, Any]) -> list[Chunk]:
    edges = state["chunks"]
    return [Chunk(name, i, low, high) for i, (low, high) in enumerate(edges)]


def _largest_first(tables: Iterable[Table]) -> list[Table]:
    return sorted(tables, key=lambda t: (-t.bytes, t.name))


def _run_copy(m: Migration, snapshot: Snapshot, tables: dict[str, Table]) -> None:
    states = m.checkpoint["tables"]
    pending: queue.Queue[Chunk] = queue.Queue()
    for name in states:
        for chunk in _chunks(name, states[name]):
            if chunk.index not in states[name]["done"]:
                pending.put(chunk)
    m.counters.tables_total = len(states)
    m.counters.tables_done = sum(_finished(s) for s in states.values())
    m.counters.rows = sum(int(s["rows"]) for s in states.values())
    m.counters.bytes_total = sum(t.data_bytes for t in tables.values())
    job = CopyJob(m.source.database, m.target.database, tables, pending,
                  _on_batch(m, states), _on_chunk(m, states), m.run.stop_requested,
                  _batch_bytes(snapshot, m))  # fmt: skip
    m.show("copy", f"{pending.qsize()} ranges to copy")
    run_workers(job, snapshot.connections, m.target)


def _finished(state: dict[str, Any]) -> bool:
    return len(state["done"]) == len(state["chunks"])


def _batch_bytes(snapshot: Snapshot, m: Migration) -> int:
    """Batches stay under half of the smaller max_allowed_packet of both servers."""
    sql = "SELECT @@GLOBAL.max_allowed_packet"
    source_packet = int(value(snapshot.connections[0], sql))
    with session(m.target) as target:
        target_packet = int(value(target, sql))
    limit = max(64 << 10, min(BATCH_BYTES, source_packet // 2, target_packet // 2))
    for conn in snapshot.connections:
        execute(conn, f"SET SESSION group_concat_max_len = {limit}")
    return limit


def _on_batch(m: Migration, states: dict[str, Any]) -> Callable[[Batch], None]:
    started = time.monotonic()

    def record(batch: Batch) -> None:
        with m.lock:
            state = states[batch.chunk.table]
            state["rows"] += batch.rows
            state["bytes"] += len(batch.values)
            state["seconds"] = round(time.monotonic() - started, 3)
        m.count(batch.rows, len(batch.values))
        m.show("copy", force=False)

    return record


def _on_chunk(m: Migration, states: dict[str, Any]) -> Callable[[Chunk], None]:
    def record(chunk: Chunk) -> None:
        with m.lock:
            state = states[chunk.table]
            state["done"].append(chunk.index)
            if _finished(state):
                m.counters.tables_done += 1
            m.run.save()
        m.show("copy", f"{chunk.table} range {chunk.index + 1}/{len(state['chunks'])} copied")

    return record


def _indexes(m: Migration) -> None:
    states = m.checkpoint["tables"]
    todo = [name for name, s in states.items() if not s.get("indexed")]
    m.show("indexes", f"building the indexes of {len(todo)} tables")

    def build(conn: Connection, name: str) -> None:
        schema.add_indexes(conn, schema.from_dict(states[name]["ddl"]))
        schema.analyze(conn, name)
        with m.lock:
            states[name]["indexed"] = True
            m.run.save()
        m.show("indexes", f"{name} indexed")

    in_parallel(m, todo, build)
    if not m.checkpoint.get("foreign_keys"):
        with session(m.target) as conn:
            execute(conn, "SET SESSION foreign_key_checks = 0")
            for name in states:
                schema.add_foreign_keys(conn, schema.from_dict(states[name]["ddl"]))
        m.save(foreign_keys=True)


def in_parallel(m: Migration, names: list[str], work: Callable[[Connection, str], None]) -> None:
    """``work(target connection, name)`` for every name, ``jobs`` at a time."""
    pending: queue.Queue[str] = queue.Queue()
    for name in names:
        pending.put(name)
    failure: list[BaseException] = []

    def worker() -> None:
        conn = None
        try:
            conn = connect(m.target)
            while not failure and not m.run.stop_requested.is_set():
                try:
                    name = pending.get_nowait()
                except queue.Empty:
                    return
                work(conn, name)
        except BaseException as exc:
            failure.append(exc)
        finally:
            if conn is not None:
                close(conn)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(m.options.jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        raise failure[0]
    m.run.check_stop()


def create_objects(m: Migration, *, with_events: bool) -> None:
    """Views, routines, triggers, grants (and events): all recreated, so a retry is safe."""
    m.show("indexes", "creating views, routines, triggers and grants")
    src, dst = m.source.database, m.target.database
    with session(m.source) as source, session(m.target) as target:
        objects.create_views(target, [_renamed(v, src, dst) for v in
                                      objects.read_views(source, src)])  # fmt: skip
        for obj in [*objects.read_routines(source, src), *objects.read_triggers(source, src)]:
            objects.create_object(target, _renamed(obj, src, dst))
        if with_events:
            create_events(source, target, src, dst)
        grants.copy_grants(source, target, src, dst)


def create_events(source: Connection, target: Connection, src: str, dst: str) -> None:
    for event in objects.read_events(source, src):
        objects.create_object(target, _renamed(event, src, dst))


def _renamed(obj: objects.StoredObject, src: str, dst: str) -> objects.StoredObject:
    return objects.StoredObject(obj.kind, obj.name, objects.renamed(obj.create, src, dst),
                                obj.sql_mode, obj.time_zone)  # fmt: skip
