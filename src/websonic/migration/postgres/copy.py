"""Table data streamed from the source's snapshot into the target with COPY, chunk by chunk.

Each worker holds one source session inside the exported snapshot (``REPEATABLE READ`` +
``SET TRANSACTION SNAPSHOT``) and one target session. A chunk is one target transaction: a
chunk killed half-way leaves nothing behind. A table copied whole is truncated and filled in the
same transaction with ``COPY … FREEZE`` (no vacuum needed later). Rows travel as binary COPY
between servers of the same major version, as text otherwise, through libpq directly (the
Python loop only hands buffers over).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql

from websonic.core.errors import MigrationFailed
from websonic.migration.engine import Stopped
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.catalog import Table
from websonic.migration.postgres.chunks import Chunk
from websonic.migration.urls import DatabaseUrl

CHECK_ROWS = 4096
REPORT_BYTES = 8 << 20
BytesSink = Callable[[int], None]


def begin_snapshot(conn: psycopg.Connection, snapshot: str) -> None:
    """Make ``conn`` see exactly the exported snapshot until its transaction ends."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


@dataclass
class CopyWorker:
    source: psycopg.Connection
    target: psycopg.Connection
    binary: bool
    stop: threading.Event

    @classmethod
    def open(
        cls,
        source: DatabaseUrl,
        target: DatabaseUrl,
        snapshot: str,
        binary: bool,
        stop: threading.Event,
    ) -> CopyWorker:
        src = pgconnect.connect(source)
        try:
            pgconnect.canonical(src)
            begin_snapshot(src, snapshot)
            tgt = pgconnect.connect(target)
            pgconnect.canonical(tgt)
        except BaseException:
            src.close()
            raise
        return cls(src, tgt, binary, stop)

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def copy(self, table: Table, chunk: Chunk, on_bytes: BytesSink) -> tuple[int, int]:
        """Copy one chunk; (rows, bytes) when its target transaction has committed."""
        whole = chunk.kind == "whole"
        self._exec(self.target, b"BEGIN")
        try:
            if whole:
                self._exec(self.target, _sql(self.target, truncate(table)))
            rows, size = self._stream(table, chunk, freeze=whole, on_bytes=on_bytes)
            self._exec(self.target, b"COMMIT")
        except BaseException:
            if self.target.pgconn.transaction_status != pq.TransactionStatus.UNKNOWN:
                self.target.pgconn.exec_(b"ROLLBACK")
            raise
        return rows, size

    def _stream(
        self, table: Table, chunk: Chunk, *, freeze: bool, on_bytes: BytesSink
    ) -> tuple[int, int]:
        fmt = "binary" if self.binary else "text"
        src, tgt = self.source.pgconn, self.target.pgconn
        src.nonblocking, tgt.nonblocking = 0, 0
        try:
            return self._copy(table, chunk, fmt, freeze, on_bytes)
        finally:
            src.nonblocking, tgt.nonblocking = 1, 1

    def _copy(
        self, table: Table, chunk: Chunk, fmt: str, freeze: bool, on_bytes: BytesSink
    ) -> tuple[int, int]:
        src, tgt = self.source.pgconn, self.target.pgconn
        _expect(src.exec_(_sql(self.source, copy_out(table, chunk, fmt))), pq.ExecStatus.COPY_OUT)
        _expect(tgt.exec_(_sql(self.target, copy_in(table, fmt, freeze))), pq.ExecStatus.COPY_IN)
        size = self._pump(src, tgt, on_bytes)
        _expect(src.get_result(), pq.ExecStatus.COMMAND_OK)
        src.get_result()
        if tgt.put_copy_end() != 1:
            raise MigrationFailed(f"COPY into {table.qualified} failed: {_text(tgt.error_message)}")
        result = tgt.get_result()
        _expect(result, pq.ExecStatus.COMMAND_OK)
        tgt.get_result()
        return int(result.command_tuples or 0) if result else 0, size

    def _pump(self, src: pq.abc.PGconn, tgt: pq.abc.PGconn, on_bytes: BytesSink) -> int:
        """Hand each row from the source to the target (libpq buffers the sends: measured,
        this costs the least CPU of the ways tried); report and check for a stop now and then."""
        get, put = src.get_copy_data, tgt.put_copy_data
        total = unreported = rows = 0
        while True:
            nbytes, data = get(0)
            if nbytes < 0:
                break
            if put(data) != 1:
                raise MigrationFailed(f"COPY into the target failed: {_text(tgt.error_message)}")
            unreported += nbytes
            rows += 1
            if rows % CHECK_ROWS == 0:
                if unreported >= REPORT_BYTES:
                    on_bytes(unreported)
                    total, unreported = total + unreported, 0
                if self.stop.is_set():
                    raise Stopped("Stopped on request; run the same command again to resume.")
        on_bytes(unreported)
        return total + unreported

    def _exec(self, conn: psycopg.Connection, command: bytes) -> None:
        _expect(conn.pgconn.exec_(command), pq.ExecStatus.COMMAND_OK)


def truncate(table: Table) -> sql.Composed:
    return sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(table.schema, table.name))


def chunk_condition(table: Table, chunk: Chunk) -> sql.Composable:
    if chunk.kind == "whole":
        return sql.SQL("true")
    column = sql.Identifier(table.primary_key[0]) if chunk.kind == "key" else sql.SQL("ctid")
    parts: list[sql.Composable] = []
    for op, value in ((">=", chunk.lo), ("<", chunk.hi)):
        if value is not None:
            literal = sql.Literal(value if chunk.kind == "key" else f"({value},0)")
            cast = sql.SQL("") if chunk.kind == "key" else sql.SQL("::tid")
            parts.append(sql.SQL("{} {} {}{}").format(column, sql.SQL(op), literal, cast))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def copy_out(table: Table, chunk: Chunk, fmt: str) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.copied_columns)
    return sql.SQL("COPY (SELECT {} FROM ONLY {} WHERE {}) TO STDOUT (FORMAT {})").format(
        columns,
        sql.Identifier(table.schema, table.name),
        chunk_condition(table, chunk),
        sql.SQL(fmt),
    )


def copy_in(table: Table, fmt: str, freeze: bool) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.copied_columns)
    options = sql.SQL(fmt + (", FREEZE" if freeze else ""))
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
        sql.Identifier(table.schema, table.name), columns, options
    )


def delete_chunk(table: Table, chunk: Chunk) -> sql.Composed:
    return sql.SQL("DELETE FROM ONLY {} WHERE {}").format(
        sql.Identifier(table.schema, table.name), chunk_condition(table, chunk)
    )


def _sql(conn: psycopg.Connection, query: sql.Composable) -> bytes:
    return query.as_bytes(conn)


def _expect(result: pq.abc.PGresult | None, status: pq.ExecStatus) -> None:
    if result is None or result.status != status:
        message = _text(result.error_message) if result is not None else "no result"
        raise MigrationFailed(f"COPY failed: {message}")


def _text(message: bytes) -> str:
    return message.decode(errors="replace").strip()
