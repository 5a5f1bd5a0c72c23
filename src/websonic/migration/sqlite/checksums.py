"""Comparing two SQLite databases: exact row counts, checksums by key range, every object.

A table with a primary key is split into ranges of about ``chunk_rows`` rows by its key (the
boundaries are read from the source, in the key's own order and collation) and each range is
checksummed on both sides, so a difference is located. A table without a key (whose rowids a
``VACUUM`` may renumber) is checksummed whole. A checksum is order-independent: the sum of
a 128-bit BLAKE2b of every row written as SQL literals, so ``1``, ``1.0``, ``'1'`` and
``x'31'`` differ.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from websonic.migration.report import Difference, TableCheck, VerifyReport
from websonic.migration.sqlite.catalog import Table, count_rows, objects, pragma, quote_name

PRAGMAS = ("user_version", "application_id")
MODULUS = 1 << 128
LABEL_WIDTH = 40
ROW_NUMBER = "websonic_row_number"
RowsChecked = Callable[[str, int], None]  # (table, rows checked so far in it)


@dataclass(frozen=True)
class KeyRange:
    """Rows of a table whose key is in a range: ``where`` with its ``params``, and a label."""

    label: str
    where: str
    params: tuple[object, ...] = ()


def checksum(conn: sqlite3.Connection, table: Table, part: KeyRange) -> tuple[int, int]:
    """(rows, order-independent checksum) of the rows of ``table`` in ``part``.

    SQLite writes each row as SQL literals (``quote()``: exact for REAL, ``X'…'`` for BLOB,
    ``'…'`` for TEXT) as bytes, so text that is not valid UTF-8 is checked too."""
    literals = " || ',' || ".join(f"quote({quote_name(c)})" for c in table.columns)
    query = f"SELECT CAST({literals} AS BLOB) FROM {table.sql_name} WHERE {part.where}"
    rows = total = 0
    for (text,) in conn.execute(query, part.params):
        total += int.from_bytes(hashlib.blake2b(text, digest_size=16).digest())
        rows += 1
    return rows, total % MODULUS


def key_ranges(conn: sqlite3.Connection, table: Table, chunk_rows: int) -> list[KeyRange]:
    """The ranges a table is checked in (from the source): by key, or the whole table."""
    if not table.key:
        return [KeyRange("whole table", "1")]
    columns = ", ".join(quote_name(c) for c in table.key)
    not_null = " AND ".join(f"{quote_name(c)} IS NOT NULL" for c in table.key)
    numbered = (f"SELECT {columns}, row_number() OVER (ORDER BY {columns}) AS {ROW_NUMBER} "
                f"FROM {table.sql_name} WHERE {not_null}")  # fmt: skip
    query = (f"SELECT {columns} FROM ({numbered}) "
             f"WHERE {ROW_NUMBER} % ? = 1 AND {ROW_NUMBER} > 1")  # fmt: skip
    bounds = [tuple(row) for row in conn.execute(query, (chunk_rows,))]
    ranges = _between(table.key, bounds, not_null)
    if table.nullable_key:
        null = " OR ".join(f"{quote_name(c)} IS NULL" for c in table.key)
        ranges.append(KeyRange(f"{_names(table.key)} IS NULL", null))
    return ranges


def _between(
    key: tuple[str, ...], bounds: list[tuple[object, ...]], not_null: str
) -> list[KeyRange]:
    """Ranges [-inf, b1), [b1, b2), …, [bn, +inf) of the key (a row value when composite)."""
    sql, names = _key_sql(key), _names(key)
    if not bounds:
        return [KeyRange(f"{names} (all)", not_null)]
    marks = ", ".join("?" * len(key))
    marks = f"({marks})" if len(key) > 1 else marks
    edges: list[tuple[object, ...] | None] = [None, *bounds, None]
    ranges = []
    for low, high in itertools.pairwise(edges):
        where: list[str] = []
        params: list[object] = []
        if low is not None:
            where.append(f"{sql} >= {marks}")
            params += low
        if high is not None:
            where.append(f"{sql} < {marks}")
            params += high
        label = f"{names} [{_show(low, '-inf')}, {_show(high, '+inf')})"
        ranges.append(KeyRange(label, " AND ".join(where) or not_null, tuple(params)))
    return ranges


def _key_sql(key: tuple[str, ...]) -> str:
    joined = ", ".join(quote_name(c) for c in key)
    return f"({joined})" if len(key) > 1 else joined


def _names(key: tuple[str, ...]) -> str:
    return key[0] if len(key) == 1 else f"({', '.join(key)})"


def _show(bound: tuple[object, ...] | None, infinity: str) -> str:
    if bound is None:
        return infinity
    text = repr(bound[0]) if len(bound) == 1 else repr(bound)
    return text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"


def check_table(
    source: sqlite3.Connection, target: sqlite3.Connection, table: Table, target_table: Table,
    chunk_rows: int, checked: RowsChecked,
) -> TableCheck:  # fmt: skip
    """Row counts and range checksums of one table present on both sides."""
    result = TableCheck(table.name, count_rows(source, table), count_rows(target, target_table))
    if table.columns != target_table.columns:
        result.mismatched.append("the columns differ")
        return result
    ranges = key_ranges(source, table, chunk_rows)
    result.chunks, done = len(ranges), 0
    for part in ranges:
        mine = checksum(source, table, part)
        if mine != checksum(target, table, part):
            result.mismatched.append(part.label)
        done += mine[0]
        checked(table.name, done)
    return result


def inventory_differences(
    source: sqlite3.Connection, target: sqlite3.Connection
) -> list[Difference]:
    """Tables, indexes, views and triggers (with their SQL) and the application's pragmas."""
    mine, theirs = objects(source), objects(target)
    found = [
        Difference(kind, name, mine.get((kind, name)), theirs.get((kind, name)))
        for kind, name in sorted(mine.keys() | theirs.keys())
        if mine.get((kind, name)) != theirs.get((kind, name))
    ]
    for name in PRAGMAS:
        here, there = pragma(source, name), pragma(target, name)
        if here != there:
            found.append(Difference("pragma", name, here, there))
    return found


def compare(
    source: sqlite3.Connection, target: sqlite3.Connection, source_tables: list[Table],
    target_tables: list[Table], chunk_rows: int, checked: RowsChecked,
) -> VerifyReport:  # fmt: skip
    """The whole comparison (both connections should be inside a snapshot)."""
    report = VerifyReport(differences=inventory_differences(source, target))
    theirs = {t.name: t for t in target_tables if not t.virtual}
    for table in source_tables:
        if table.virtual or table.name not in theirs:
            continue  # a virtual table's data is in its shadow tables; a missing one is listed
        report.tables.append(
            check_table(source, target, table, theirs[table.name], chunk_rows, checked)
        )
    return report
