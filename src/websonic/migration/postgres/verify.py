"""Verification: exact row counts, chunked checksums and the object inventory, compared.

Tables are checked in parallel (``jobs`` workers per side, source and target at the same time).
``Scope`` says how deep: ``full`` (every chunk's checksum: ``db verify``, offline, and online
against the bulk copy's snapshot before the changes are applied), or the cutover window's
budget: exact row counts of every table, checksums only of the tables up to ``checksum_bytes``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg

from websonic.migration.engine import ProgressSink
from websonic.migration.postgres import checksum, inventory, sequences
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.catalog import Table, key_range, tables
from websonic.migration.postgres.chunks import Chunk, bounds_of, key_chunks
from websonic.migration.postgres.copy import begin_snapshot
from websonic.migration.postgres.pool import Pool
from websonic.migration.report import Progress, TableCheck, VerifyReport
from websonic.migration.urls import DatabaseUrl


@dataclass(frozen=True)
class Scope:
    checksum_bytes: int | None = None  # None: checksum every table
    sequences: bool = True
    snapshot: str | None = None  # the source as of this exported snapshot

    def checksums(self, table: Table) -> bool:
        return self.checksum_bytes is None or table.bytes <= self.checksum_bytes


@dataclass
class Checker:
    source: psycopg.Connection
    target: psycopg.Connection

    def close(self) -> None:
        self.source.close()
        self.target.close()


def open_checker(source: DatabaseUrl, target: DatabaseUrl, snapshot: str | None) -> Checker:
    src = pgconnect.connect(source)
    pgconnect.canonical(src)
    if snapshot:
        begin_snapshot(src, snapshot)
    else:
        src.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    tgt = pgconnect.connect(target)
    pgconnect.canonical(tgt)
    return Checker(src, tgt)


def table_chunks(conn: psycopg.Connection, table: Table, chunk_rows: int) -> list[Chunk]:
    """Key ranges of an integer-keyed table (the copy's and the checksums'); else one chunk."""
    if not table.integer_key:
        return [Chunk(table.qualified, 0, "whole")]
    low, high = key_range(conn, table)
    return key_chunks(table.qualified, low, high, table.rows, chunk_rows)


def check_table(checker: Checker, table: Table, scope: Scope, chunk_rows: int) -> TableCheck:
    """Compare one table on both sides (the source in the checker's snapshot)."""
    if not scope.checksums(table):
        return _counts(checker, table)
    chunks = table_chunks(checker.source, table, chunk_rows)
    key = table.primary_key[0] if len(chunks) > 1 else None
    query = checksum.chunk_sums(
        table.schema, table.name, [c.name for c in table.columns], key, bounds_of(chunks)
    )
    source = checksum.parse_sums(checker.source.execute(query).fetchall(), len(chunks))
    try:
        target = checksum.parse_sums(checker.target.execute(query).fetchall(), len(chunks))
    except psycopg.errors.UndefinedTable:
        return TableCheck(table.qualified, _rows(source), 0, len(chunks), ["missing on the target"])
    bad = checksum.mismatched(source, target)
    column = table.primary_key[0] if key else "key"
    return TableCheck(
        table.qualified,
        _rows(source),
        _rows(target),
        len(chunks),
        [chunks[i].label(column) for i in bad],
    )


def _rows(sums: dict[int, checksum.Sum]) -> int:
    return sum(s.rows for s in sums.values())


def _counts(checker: Checker, table: Table) -> TableCheck:
    query = checksum.row_count(table.schema, table.name)
    source = checker.source.execute(query).fetchone()
    try:
        target = checker.target.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        return TableCheck(
            table.qualified, int(source[0]) if source else 0, 0, 1, ["missing on the target"]
        )
    return TableCheck(
        table.qualified, int(source[0]) if source else 0, int(target[0]) if target else 0, 1
    )


def checked_tables(conn: psycopg.Connection) -> list[Table]:
    return [t for t in tables(conn) if t.kind == "r" or (t.kind == "m" and t.populated)]


def verify(
    source: DatabaseUrl,
    target: DatabaseUrl,
    *,
    jobs: int,
    chunk_rows: int,
    progress: ProgressSink,
    scope: Scope | None = None,
    stop: threading.Event | None = None,
) -> VerifyReport:
    scope = scope or Scope()
    started = time.monotonic()
    report = VerifyReport()
    first = open_checker(source, target, scope.snapshot)
    try:
        todo = checked_tables(first.source)
        _compare_objects(first, scope, report)
    finally:
        first.close()
    done: list[TableCheck] = []

    def finished(_table: Table, check: TableCheck) -> None:
        done.append(check)
        progress(Progress("verify", f"checked {check.name}", len(done), len(todo)))

    pool: Pool[Checker, Table, TableCheck] = Pool(
        jobs, lambda: open_checker(source, target, scope.snapshot), stop or threading.Event()
    )
    pool.run(todo, lambda checker, table: check_table(checker, table, scope, chunk_rows), finished)
    report.tables = sorted(done, key=lambda check: check.name)
    report.seconds = time.monotonic() - started
    return report


def _compare_objects(checker: Checker, scope: Scope, report: VerifyReport) -> None:
    report.differences += inventory.compare(
        inventory.inventory(checker.source), inventory.inventory(checker.target)
    )
    if scope.sequences:
        report.differences += sequences.compare(
            sequences.read(checker.source), sequences.read(checker.target)
        )
