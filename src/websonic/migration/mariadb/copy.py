"""Table data streamed from the source's snapshot into the target, in parallel, by key range.

Each worker pairs a reader (one of the snapshot's connections) with a writer (its own target
connection) and a small queue between them, so both servers work at once. A batch is one
multi-row ``INSERT`` whose ``VALUES`` text the *source server* renders (see ``sql``): WebSonic
moves bytes and decodes nothing. A batch is sized to stay well under both servers'
``max_allowed_packet`` (a batch that comes out larger is split again); its row count is checked
against the INSERT's. A finished range is recorded with the run's checkpoint.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pymysql
import pymysql.cursors

from websonic.core.errors import MigrationFailed
from websonic.migration.engine import Stopped
from websonic.migration.mariadb.catalog import Table
from websonic.migration.mariadb.chunks import Chunk, next_bound
from websonic.migration.mariadb.connect import Connection, close, connect, execute, rows
from websonic.migration.mariadb.sql import (
    compare_key,
    ident,
    key_range,
    qualified,
    row_literal_expr,
)
from websonic.migration.urls import DatabaseUrl

BATCH_BYTES = 4 << 20
LOAD_SESSION = ("SET SESSION foreign_key_checks = 0, unique_checks = 0, "
                "check_constraint_checks = 0")  # fmt: skip


@dataclass(frozen=True)
class Batch:
    chunk: Chunk
    rows: int
    values: bytes  # "(…),(…)"


@dataclass(frozen=True)
class ChunkDone:
    chunk: Chunk


Item = Batch | ChunkDone


@dataclass
class CopyJob:
    """What the workers share: the tables, the chunks left, and the callbacks."""

    source_db: str
    target_db: str
    tables: dict[str, Table]
    pending: queue.Queue[Chunk]
    on_batch: Callable[[Batch], None]
    on_chunk: Callable[[Chunk], None]
    stop: threading.Event
    max_bytes: int = BATCH_BYTES


def run_workers(job: CopyJob, readers: list[Connection], target: DatabaseUrl) -> None:
    """Copy every pending chunk with one reader/writer pair per reader connection."""
    failure: list[BaseException] = []
    threads = [threading.Thread(target=_worker, args=(job, reader, target, failure),
                                name=f"copy-{i}", daemon=True)
               for i, reader in enumerate(readers)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        raise failure[0]
    if job.stop.is_set():
        raise Stopped("Stopped on request; run the same command again to resume.")


def _worker(job: CopyJob, reader: Connection, target: DatabaseUrl,
            failure: list[BaseException]) -> None:  # fmt: skip
    items: queue.Queue[Item | None] = queue.Queue(maxsize=2)
    writer = threading.Thread(target=_write_all, args=(job, target, items, failure), daemon=True)
    writer.start()
    try:
        while not job.stop.is_set() and not failure:
            try:
                chunk = job.pending.get_nowait()
            except queue.Empty:
                break
            for item in read_chunk(reader, job, chunk):
                _put(items, item, job, failure)
    except BaseException as exc:
        failure.append(exc)
        job.stop.set()
    finally:
        _put(items, None, job, failure, final=True)
        writer.join()


def _put(items: queue.Queue[Item | None], item: Item | None, job: CopyJob,
         failure: list[BaseException], final: bool = False) -> None:  # fmt: skip
    while True:
        if failure and not final:
            raise _Abort
        try:
            items.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


#: InnoDB's deadlock: it rolled the statement back whole (autocommit), so it is run again.
#: Parallel writers of neighbouring key ranges of one table can take gap locks in opposite
#: orders on the target.
DEADLOCK = 1213
DEADLOCK_RETRIES = 5


def _is_deadlock(exc: pymysql.err.MySQLError) -> bool:
    return bool(exc.args) and exc.args[0] == DEADLOCK


class _Abort(Exception):
    """Another thread failed: stop reading."""


def _write_all(job: CopyJob, target: DatabaseUrl, items: queue.Queue[Item | None],
               failure: list[BaseException]) -> None:  # fmt: skip
    conn = None
    try:
        conn = connect(target)
        execute(conn, LOAD_SESSION)
        while (item := items.get()) is not None:
            if failure:
                continue
            if isinstance(item, ChunkDone):
                job.on_chunk(item.chunk)
            else:
                insert(conn, job, item)
                job.on_batch(item)
    except BaseException as exc:
        failure.append(exc)
        job.stop.set()
        while items.get() is not None:  # let the reader finish its put()
            pass
    finally:
        if conn is not None:
            close(conn)


def insert(conn: Connection, job: CopyJob, batch: Batch) -> None:
    table = job.tables[batch.chunk.table]
    columns = ", ".join(ident(c.name) for c in table.stored_columns)
    head = f"INSERT INTO {qualified(job.target_db, table.name)} ({columns}) VALUES ".encode()
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            with conn.cursor() as cursor:
                inserted = cursor.execute(head + batch.values)
            break
        except pymysql.err.MySQLError as exc:
            if _is_deadlock(exc) and attempt < DEADLOCK_RETRIES:
                time.sleep(0.05 * (attempt + 1))  # the other writer goes first
                continue
            raise MigrationFailed(f"Writing {table.name} on the target failed: {exc}") from None
    if inserted != batch.rows:
        raise MigrationFailed(f"{table.name}: the target took {inserted} rows of a batch of "
                              f"{batch.rows}.")  # fmt: skip


def read_chunk(conn: Connection, job: CopyJob, chunk: Chunk) -> Iterator[Item]:
    """The batches of one chunk, then ``ChunkDone``."""
    table = job.tables[chunk.table]
    if not table.key:
        yield from _stream_whole(conn, job, table, chunk)
    elif table.integer_key:
        yield from _integer_batches(conn, job, table, chunk)
    else:
        yield from _keyset_batches(conn, job, table, chunk)
    yield ChunkDone(chunk)


def _rows_per_batch(table: Table, max_bytes: int) -> int:
    per_row = max(32, table.avg_row * 2 + 16 * len(table.columns))
    return max(1, min(100_000, max_bytes // per_row))


def _integer_batches(conn: Connection, job: CopyJob, table: Table,
                     chunk: Chunk) -> Iterator[Batch]:  # fmt: skip
    start = _first_key(conn, job, table, chunk.where(table.key))
    end = int(chunk.high[0]) if chunk.high else None
    size = _rows_per_batch(table, job.max_bytes)
    while start is not None and not job.stop.is_set():
        high = start + size if end is None else min(start + size, end)
        batch = fetch(conn, job, table, chunk, key_range(table.key, [str(start)], [str(high)]))
        if batch is None:  # too large for one statement: a smaller range
            size = _smaller(size, table)
            continue
        if batch.rows:
            yield batch
        after = compare_key(table.key, [str(high)], ">=")
        start = _first_key(conn, job, table, f"{after} AND {chunk.where(table.key)}")
        if batch.values and len(batch.values) < job.max_bytes // 4:
            size = min(size * 2, 1 << 40)


def _smaller(size: int, table: Table) -> int:
    if size <= 1:
        raise MigrationFailed(f"A row of {table.name} is larger than max_allowed_packet allows "
                              "in one statement.", hint="Raise max_allowed_packet on both "
                              "servers (SET GLOBAL max_allowed_packet = 1073741824).")  # fmt: skip
    return max(1, size // 2)


def _first_key(conn: Connection, job: CopyJob, table: Table, where: str) -> int | None:
    sql = (f"SELECT MIN({ident(table.key[0])}) FROM {qualified(job.source_db, table.name)} "
           f"WHERE {where}")  # fmt: skip
    found = rows(conn, sql)[0][0]
    return None if found is None else int(found)


def _keyset_batches(conn: Connection, job: CopyJob, table: Table,
                    chunk: Chunk) -> Iterator[Batch]:  # fmt: skip
    size = _rows_per_batch(table, job.max_bytes)
    low = chunk.low
    while not job.stop.is_set():
        start = compare_key(table.key, low, ">=") if low else "1"
        within = f"{start} AND {chunk.where(table.key)}"
        high = next_bound(conn, job.source_db, table, within, size)
        batch = fetch(conn, job, table, chunk, key_range(table.key, low, high or chunk.high))
        if batch is None:
            size = _smaller(size, table)
            continue
        if batch.rows:
            yield batch
        if high is None:
            return
        low = high


def fetch(conn: Connection, job: CopyJob, table: Table, chunk: Chunk,
          where: str) -> Batch | None:  # fmt: skip
    """One batch of rows as INSERT values, or None if it would not fit in one statement."""
    sql = (f"SELECT COUNT(*), CAST(GROUP_CONCAT({row_literal_expr(table.stored_columns)} "
           f"SEPARATOR ',') AS BINARY) FROM {qualified(job.source_db, table.name)} "
           f"WHERE {where}")  # fmt: skip
    count, values = rows(conn, sql)[0]
    too_large = (values is None and count) or (values is not None and len(values) >= job.max_bytes)
    if too_large:  # cut at group_concat_max_len, or NULL past max_allowed_packet
        return None
    return Batch(chunk, int(count), bytes(values or b""))


def _stream_whole(conn: Connection, job: CopyJob, table: Table,
                  chunk: Chunk) -> Iterator[Batch]:  # fmt: skip
    """A table without a key: one pass over it, cut into batches on the client side."""
    sql = (f"SELECT CAST({row_literal_expr(table.stored_columns)} AS BINARY) "
           f"FROM {qualified(job.source_db, table.name)}")  # fmt: skip
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(sql)
        parts: list[bytes] = []
        size = 0
        for (row,) in cursor:
            if parts and size + len(row) + 1 > job.max_bytes // 2:
                yield Batch(chunk, len(parts), b",".join(parts))
                parts, size = [], 0
            parts.append(bytes(row))
            size += len(row) + 1
        if parts:
            yield Batch(chunk, len(parts), b",".join(parts))
