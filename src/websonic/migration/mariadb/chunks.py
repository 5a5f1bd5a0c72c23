"""Key ranges: how a table is split for parallel copies, resumable checkpoints and checksums.

A range is ``[low, high)`` of the table's key, each end a list of SQL literals rendered by the
source (None: open). A single integer key is split arithmetically between MIN and MAX (two index
lookups, as mydumper does); any other key by reading every ``chunk_rows``-th key in order.
A table without a key is one range: the whole table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from websonic.migration.mariadb.catalog import Table
from websonic.migration.mariadb.connect import Connection, rows
from websonic.migration.mariadb.sql import (
    compare_key,
    ident,
    key_literal_expr,
    key_range,
    order_by,
    qualified,
    split_key,
)

Bound = list[str] | None


@dataclass(frozen=True)
class Chunk:
    table: str
    index: int
    low: Bound
    high: Bound

    def where(self, key: Sequence[str]) -> str:
        return key_range(key, self.low, self.high)

    def label(self, key: Sequence[str]) -> str:
        if not key:
            return "whole table"
        low = ",".join(self.low) if self.low else "start"
        high = ",".join(self.high) if self.high else "end"
        return f"{','.join(key)} [{low} .. {high})"

    def to_json(self) -> list[Bound]:
        return [self.low, self.high]


def from_bounds(table: str, bounds: Sequence[str | list[str]]) -> list[Chunk]:
    """Chunks from the ordered inner boundaries (pure)."""
    edges: list[Bound] = [None, *([b] if isinstance(b, str) else list(b) for b in bounds), None]
    return [Chunk(table, i, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def integer_bounds(low: int, high: int, parts: int) -> list[str]:
    """Inner boundaries splitting [low, high] into ``parts`` equal ranges (pure)."""
    if parts <= 1 or high <= low:
        return []
    step = math.ceil((high - low + 1) / parts)
    return [str(b) for b in range(low + step, high + 1, step)]


def split_table(conn: Connection, database: str, table: Table, chunk_rows: int) -> list[Chunk]:
    """The ranges of ``table`` (read from the source, in its snapshot)."""
    if not table.key:
        return [Chunk(table.name, 0, None, None)]
    parts = max(1, math.ceil(table.rows / chunk_rows))
    if table.integer_key:
        name = qualified(database, table.name)
        key = ident(table.key[0])
        low, high = rows(conn, f"SELECT MIN({key}), MAX({key}) FROM {name}")[0]
        if low is None:
            return [Chunk(table.name, 0, None, None)]
        return from_bounds(table.name, integer_bounds(int(low), int(high), parts))
    if parts == 1:
        return [Chunk(table.name, 0, None, None)]
    return from_bounds(table.name, _read_bounds(conn, database, table, chunk_rows))


def _read_bounds(conn: Connection, database: str, table: Table, step: int) -> list[list[str]]:
    bounds: list[list[str]] = []
    while True:
        after = compare_key(table.key, bounds[-1], ">=") if bounds else "1"
        nxt = next_bound(conn, database, table, after, step)
        if nxt is None:
            return bounds
        bounds.append(nxt)


def next_bound(conn: Connection, database: str, table: Table, where: str,
               offset: int) -> list[str] | None:  # fmt: skip
    """The key ``offset`` rows after the first one matching ``where``, in key order."""
    name = qualified(database, table.name)
    sql = (f"SELECT {key_literal_expr(table.key_columns)} FROM {name} WHERE {where} "
           f"ORDER BY {order_by(table.key)} LIMIT 1 OFFSET {int(offset)}")  # fmt: skip
    found = rows(conn, sql)
    return split_key(str(found[0][0])) if found else None
