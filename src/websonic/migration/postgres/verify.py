"""Verification: exact row counts, chunked checksums and the object inventory, compared.

Tables are checked in parallel (``jobs`` workers, each querying the source and the target at
the same time). ``Scope`` says how deep: every chunk's checksum (``db verify``, after an offline
copy, and online against the bulk copy's snapshot before any change is applied), or the cutover
window's budget: exact row counts of every table, checksums only of the tables up to
``checksum_bytes``, with the connections opened before the window (``Verifier.open``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from psycopg import sql

from websonic.migration.engine import ProgressSink
from websonic.migration.postgres import checksum, inventory, sequences
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.catalog import Table, key_range, marker, tables
from websonic.migration.postgres.chunks import Chunk, bounds_of, key_chunks
from websonic.migration.postgres.copy import begin_snapshot
from websonic.migration.postgres.pool import Pool
from websonic.migration.report import Difference, Progress, TableCheck, VerifyReport
from websonic.migration.urls import DatabaseUrl

A = TypeVar("A")
B = TypeVar("B")
MISSING = "missing on the target"


@dataclass(frozen=True)
class Scope:
    checksum_bytes: int | None = None  # None: checksum every table
    sequences: bool = True
    snapshot: str | None = None  # the source as of this exported snapshot
    marker: bool = True  # an unfinished migration's marker on the target is a difference

    def checksums(self, table: Table) -> bool:
        return self.checksum_bytes is None or table.bytes <= self.checksum_bytes


@dataclass
class Checker:
    """One connection to each side (the source's inside the snapshot, if there is one)."""

    source: psycopg.Connection
    target: psycopg.Connection

    def close(self) -> None:
        self.source.close()
        self.target.close()


def open_checker(source: DatabaseUrl, target: DatabaseUrl, snapshot: str | None) -> Checker:
    src = pgconnect.connect(source)
    try:
        pgconnect.canonical(src)
        if snapshot:
            begin_snapshot(src, snapshot)
        tgt = pgconnect.connect(target)
        pgconnect.canonical(tgt)
    except BaseException:
        src.close()
        raise
    return Checker(src, tgt)


def both(on_source: Callable[[], A], on_target: Callable[[], B]) -> tuple[A, B]:
    """Run the two queries at the same time (the target's in a helper thread)."""
    box: dict[str, B] = {}
    failed: list[BaseException] = []

    def target_side() -> None:
        try:
            box["value"] = on_target()
        except BaseException as exc:
            failed.append(exc)

    helper = threading.Thread(target=target_side, daemon=True)
    helper.start()
    try:
        first = on_source()
    finally:
        helper.join()
    if failed:
        raise failed[0]
    return first, box["value"]


def table_chunks(conn: psycopg.Connection, table: Table, chunk_rows: int) -> list[Chunk]:
    """Key ranges of an integer-keyed table (the copy's and the checksums'); else one chunk."""
    if not table.integer_key:
        return [Chunk(table.qualified, 0, "whole")]
    low, high = key_range(conn, table)
    return key_chunks(table.qualified, low, high, table.rows, chunk_rows)


def _fetch(conn: psycopg.Connection, query: sql.Composed) -> list[tuple[object, ...]] | None:
    """The rows, or None if the table does not exist on this side."""
    try:
        return conn.execute(query).fetchall()
    except psycopg.errors.UndefinedTable:
        return None


def _fetch_target(conn: psycopg.Connection, query: sql.Composed) -> list[tuple[object, ...]] | str:
    """The target's rows, or why it cannot be read (missing, a view without data…)."""
    try:
        found = _fetch(conn, query)
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        return str(exc).strip().splitlines()[0]
    return MISSING if found is None else found


def check_table(checker: Checker, table: Table, scope: Scope, chunk_rows: int) -> TableCheck:
    """Compare one table on both sides."""
    if not scope.checksums(table):
        count = checksum.row_count(table.schema, table.name)
        src, tgt = both(
            lambda: _fetch(checker.source, count), lambda: _fetch_target(checker.target, count)
        )
        source_rows = int(src[0][0]) if src else 0  # type: ignore[call-overload]
        if isinstance(tgt, str):
            return TableCheck(table.qualified, source_rows, 0, 1, [tgt])
        return TableCheck(table.qualified, source_rows, int(tgt[0][0]), 1)  # type: ignore[call-overload]
    chunks = table_chunks(checker.source, table, chunk_rows)
    key = table.primary_key[0] if len(chunks) > 1 else None
    query = checksum.chunk_sums(
        table.schema, table.name, [c.name for c in table.columns], key, bounds_of(chunks)
    )
    src, tgt = both(
        lambda: _fetch(checker.source, query), lambda: _fetch_target(checker.target, query)
    )
    source = checksum.parse_sums(src or [], len(chunks))
    if isinstance(tgt, str):
        return TableCheck(table.qualified, _rows(source), 0, len(chunks), [tgt])
    target = checksum.parse_sums(tgt, len(chunks))
    bad = checksum.mismatched(source, target)
    labels = [chunks[i].label(key or "key") for i in bad]
    return TableCheck(table.qualified, _rows(source), _rows(target), len(chunks), labels)


def _rows(sums: dict[int, checksum.Sum]) -> int:
    return sum(s.rows for s in sums.values())


def checked_tables(conn: psycopg.Connection) -> list[Table]:
    return [t for t in tables(conn) if t.kind == "r" or (t.kind == "m" and t.populated)]


@dataclass
class Verifier:
    """A verification whose connections can be opened ahead (before a cutover window): one
    checker per job for the tables, one more for the object inventory."""

    source: DatabaseUrl
    target: DatabaseUrl
    jobs: int
    chunk_rows: int
    progress: ProgressSink
    scope: Scope = field(default_factory=Scope)
    stop: threading.Event = field(default_factory=threading.Event)
    checkers: list[Checker] = field(default_factory=list)
    todo: list[Table] = field(default_factory=list)

    def open(self) -> Verifier:
        try:
            for _ in range(max(1, self.jobs) + 1):
                self.checkers.append(open_checker(self.source, self.target, self.scope.snapshot))
            self.todo = checked_tables(self.checkers[0].source)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for checker in self.checkers:
            checker.close()
        self.checkers.clear()

    def __enter__(self) -> Verifier:
        return self.open()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(self) -> VerifyReport:
        started = time.monotonic()
        report = VerifyReport()
        done: list[TableCheck] = []
        objects_checker, *spare = self.checkers
        failed: list[BaseException] = []

        def finished(_table: Table, check: TableCheck) -> None:
            done.append(check)
            self.progress(Progress("verify", f"checked {check.name}", len(done), len(self.todo)))

        def objects() -> None:
            try:
                report.differences += compare_objects(objects_checker, self.scope)
            except BaseException as exc:
                failed.append(exc)

        helper = threading.Thread(target=objects, daemon=True)
        helper.start()
        pool: Pool[Checker, Table, TableCheck] = Pool(len(spare), spare.pop, self.stop, close=False)
        try:
            pool.run(
                self.todo, lambda c, t: check_table(c, t, self.scope, self.chunk_rows), finished
            )
        finally:
            helper.join()
        if failed:
            raise failed[0]
        report.tables = sorted(done, key=lambda check: check.name)
        report.seconds = time.monotonic() - started
        return report


def compare_objects(checker: Checker, scope: Scope) -> list[Difference]:
    """The object inventory (and the sequence values) of both sides, compared."""
    src, tgt = both(
        lambda: _objects(checker.source, scope), lambda: _objects(checker.target, scope)
    )
    found = inventory.compare(src[0], tgt[0]) + sequences.compare(src[1], tgt[1])
    if scope.marker and marker(checker.target) is not None:
        unfinished = "an unfinished WebSonic migration: the target is not complete"
        found.append(Difference("migration", "websonic.migration_marker", None, unfinished))
    return found


def _objects(
    conn: psycopg.Connection, scope: Scope
) -> tuple[inventory.Inventory, sequences.Values]:
    return inventory.inventory(conn), sequences.read(conn) if scope.sequences else {}


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
    """Compare the two databases now (the source as of ``scope.snapshot`` if given)."""
    verifier = Verifier(
        source, target, jobs, chunk_rows, progress, scope or Scope(), stop or threading.Event()
    )
    with verifier:
        return verifier.run()
