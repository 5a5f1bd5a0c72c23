"""Verification: exact row counts and checksums by key range, and every object, compared.

The ranges come from the source (see ``chunks``); each is checksummed on both servers (see
``sql``: SUM of a 64-bit prefix of SHA-256 per row, NULL distinct from '' and binary-safe) and
the row counts are the sums of the ranges' exact counts. A table without a key is checksummed
whole (the SUM is order-independent and counts duplicate rows). The object inventory is compared
kind by kind (see ``inventory``); an unfinished migration's marker on the target is a difference
of its own. Connections may be handed in already inside a snapshot (the online cutover does so
to compare both servers at one GTID position); otherwise each side is read as it is.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pymysql

from websonic.migration.mariadb.catalog import MARKER, Table, has_marker, read_tables
from websonic.migration.mariadb.chunks import Chunk, split_table
from websonic.migration.mariadb.connect import Connection, rows
from websonic.migration.mariadb.inventory import Inventory, compare, read_inventory
from websonic.migration.mariadb.sql import checksum_query
from websonic.migration.report import Difference, Progress, TableCheck, VerifyReport

ProgressSink = Callable[[Progress], None]
AUTO_INCREMENT = re.compile(r" auto_increment=\S+")


@dataclass
class Sides:
    """Connections to both databases: ``sources[i]`` and ``targets[i]`` make one worker."""

    sources: list[Connection]
    targets: list[Connection]
    source_db: str
    target_db: str


def verify(sides: Sides, chunk_rows: int, progress: ProgressSink, *,
           expect_marker: bool = False, relaxed: bool = False,
           counters: bool = True, grants: bool = True) -> VerifyReport:  # fmt: skip
    """Compare the data and the objects of both databases.

    ``relaxed`` (before an online cutover): events (created in the window) and AUTO_INCREMENT
    counters (aligned in the window) are not compared yet. ``counters=False`` (after the switch):
    AUTO_INCREMENT counters are not compared — the application writes on the target by then;
    they were checked in the window (above every key, and at least the source's).
    ``grants=False`` (after the switch): the grants on the database are not compared — the
    switch revoked the source's write privileges; they were compared at the position before the
    window, and a GRANT or REVOKE on the database up to the freeze stops the run (as DDL).
    """
    started = time.monotonic()
    source, target = sides.sources[0], sides.targets[0]
    inventories = [read_inventory(source, sides.source_db), read_inventory(target, sides.target_db)]
    if relaxed:
        inventories = [relax(i) for i in inventories]
    elif not counters:
        inventories = [without_counters(i) for i in inventories]
    if not grants:
        inventories = [{k: v for k, v in i.items() if k[0] != "grant"} for i in inventories]
    differences = compare(*inventories)
    if not expect_marker and has_marker(target, sides.target_db):
        differences.append(Difference("migration", MARKER, None, "an unfinished migration "
                                      "(run the same migrate command to finish it)"))  # fmt: skip
    target_tables = {t.name for t in read_tables(target, sides.target_db)}
    tables = [t for t in read_tables(source, sides.source_db) if t.name in target_tables]
    checks = check_tables(sides, tables, chunk_rows, progress)
    return VerifyReport(checks, differences, time.monotonic() - started)


def without_counters(inventory: Inventory) -> Inventory:
    return {key: AUTO_INCREMENT.sub("", text) for key, text in inventory.items()}


def relax(inventory: Inventory) -> Inventory:
    return {key: AUTO_INCREMENT.sub("", text) for key, text in inventory.items()
            if key[0] != "event"}  # fmt: skip


@dataclass
class _Task:
    table: Table
    chunk: Chunk


def check_tables(sides: Sides, tables: list[Table], chunk_rows: int,
                 progress: ProgressSink) -> list[TableCheck]:  # fmt: skip
    checks = {t.name: TableCheck(t.name, 0, 0, 0) for t in tables}
    tasks: queue.Queue[_Task] = queue.Queue()
    for table in sorted(tables, key=lambda t: -t.bytes):
        for chunk in split_table(sides.sources[0], sides.source_db, table, chunk_rows):
            tasks.put(_Task(table, chunk))
            checks[table.name].chunks += 1
    lock = threading.Lock()
    failure: list[BaseException] = []
    total = tasks.qsize()
    done = [0]

    def work(source: Connection, target: Connection) -> None:
        try:
            while not failure:
                try:
                    task = tasks.get_nowait()
                except queue.Empty:
                    return
                result = _check(source, target, sides, task)
                with lock:
                    _record(checks[task.table.name], task, result)
                    done[0] += 1
                    progress(Progress("verify", f"checksums {done[0]}/{total}",
                                      tables_total=len(tables)))  # fmt: skip
        except BaseException as exc:
            failure.append(exc)

    threads = [threading.Thread(target=work, args=pair, daemon=True)
               for pair in zip(sides.sources, sides.targets, strict=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        raise failure[0]
    return [checks[t.name] for t in sorted(tables, key=lambda t: t.name)]


Counted = tuple[int, str, int, str]  # source rows, source sum, target rows, target sum


def _check(source: Connection, target: Connection, sides: Sides, task: _Task) -> Counted:
    where = task.chunk.where(task.table.key)
    columns = task.table.columns
    left = rows(source, checksum_query(sides.source_db, task.table.name, columns, where))[0]
    try:
        right = rows(target, checksum_query(sides.target_db, task.table.name, columns, where))[0]
    except pymysql.err.MySQLError:  # other columns there: the inventory says which
        return int(left[0]), str(left[1]), -1, "unreadable"
    return int(left[0]), str(left[1]), int(right[0]), str(right[1])


def _record(check: TableCheck, task: _Task, result: Counted) -> None:
    source_rows, source_sum, target_rows, target_sum = result
    check.source_rows += source_rows
    check.target_rows += target_rows
    if (source_rows, source_sum) != (target_rows, target_sum):
        check.mismatched.append(task.chunk.label(task.table.key))
