"""Checksums of table contents that both servers compute the same way (SQL builders, pure).

A row's hash is ``hashtextextended(ROW(col1, col2, …)::text, 0)``: the 64-bit hash of the row's
text form, columns in the source's order (the sessions use the same canonical settings for
dates, floats and bytea: ``connect.canonical``). A chunk's checksum is ``count(*)`` and the exact
``sum`` of its row hashes: independent of row order and of the physical layout, and a duplicated
or missing row changes both. Tables with an integer key are summed per key range in one scan
(``GROUP BY width_bucket(key, bounds)``); other tables as one aggregate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class Sum:
    rows: int
    total: int  # exact sum of 64-bit row hashes

    def __add__(self, other: Sum) -> Sum:
        return Sum(self.rows + other.rows, self.total + other.total)


def row_hash(columns: Sequence[str]) -> sql.Composable:
    fields = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("hashtextextended(ROW({})::text, 0)").format(fields)


def chunk_sums(
    schema: str, table: str, columns: Sequence[str], key: str | None, bounds: Sequence[int]
) -> sql.Composed:
    """``SELECT chunk, count, sum`` per key range (or one row, chunk 0, without bounds)."""
    bucket: sql.Composable = sql.SQL("0")
    if key and bounds:
        bucket = sql.SQL("width_bucket(t.{}, ARRAY[{}]::bigint[])").format(
            sql.Identifier(key), sql.SQL(", ").join(sql.Literal(b) for b in bounds)
        )
    return sql.SQL(
        "SELECT {bucket} AS chunk, count(*), coalesce(sum({hash}::numeric), 0)"
        " FROM ONLY {table} AS t GROUP BY 1"
    ).format(bucket=bucket, hash=row_hash(columns), table=sql.Identifier(schema, table))


def row_count(schema: str, table: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, table))


def parse_sums(rows: Sequence[tuple[object, ...]], chunks: int) -> dict[int, Sum]:
    """Rows of ``chunk_sums`` as chunk -> Sum (``width_bucket`` numbers the open first range 0,
    like the copy's chunks)."""
    found: dict[int, Sum] = {}
    for chunk, count, total in rows:
        index = min(max(int(chunk), 0), chunks - 1)  # type: ignore[call-overload]
        found[index] = found.get(index, Sum(0, 0)) + Sum(int(count), int(total))  # type: ignore[call-overload]
    return found


def mismatched(source: dict[int, Sum], target: dict[int, Sum]) -> list[int]:
    """The chunks whose sums differ (a chunk missing on one side counts as empty)."""
    empty = Sum(0, 0)
    chunks = sorted(set(source) | set(target))
    return [c for c in chunks if source.get(c, empty) != target.get(c, empty)]
