"""How a table is split for the parallel copy and the chunked checksums (pure).

- A table with an integer primary key is split into key ranges of about ``chunk_rows`` rows
  (``key >= lo AND key < hi``; the first range is open below, the last open above, so rows
  outside the planned bounds are never missed). The same ranges serve the copy, the resume
  check and the verification (``width_bucket`` over the inner bounds numbers them 0..n-1).
- A large table without an integer key is copied in ``ctid`` block ranges (physical: they serve
  the copy only; its checksum is one order-independent aggregate over the whole table).
- A small table is one chunk ("whole").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

BLOCK_SIZE = 8192
Kind = Literal["whole", "key", "ctid"]


@dataclass(frozen=True)
class Chunk:
    table: str  # schema.table
    index: int
    kind: Kind
    lo: int | None = None  # inclusive; None: open
    hi: int | None = None  # exclusive; None: open

    @property
    def id(self) -> str:
        return f"{self.table}#{self.index}"

    def label(self, key: str = "key") -> str:
        if self.kind == "whole":
            return "all rows"
        column = key if self.kind == "key" else "block"
        lo = "" if self.lo is None else str(self.lo)
        hi = "" if self.hi is None else str(self.hi - 1)
        return f"{column} {lo}..{hi}"


def chunk_count(rows: int, chunk_rows: int) -> int:
    return max(1, math.ceil(rows / max(1, chunk_rows)))


def key_chunks(
    table: str, low: int | None, high: int | None, rows: int, chunk_rows: int
) -> list[Chunk]:
    """Integer-key ranges from the key's min/max (None: the table is empty)."""
    count = chunk_count(rows, chunk_rows)
    if low is None or high is None or count == 1 or high - low < count:
        return [Chunk(table, 0, "whole")]
    bounds = inner_bounds(low, high, count)
    edges: list[int | None] = [None, *bounds, None]
    return [Chunk(table, i, "key", edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def inner_bounds(low: int, high: int, count: int) -> list[int]:
    """The ``count - 1`` bounds between ``count`` equal ranges of ``low..high``."""
    step = (high - low + 1) / count
    return sorted({low + math.ceil(step * i) for i in range(1, count)})


def block_chunks(table: str, table_bytes: int, rows: int, chunk_rows: int) -> list[Chunk]:
    """ctid block ranges over the table's pages (the last range open: the table may grow)."""
    count = chunk_count(rows, chunk_rows)
    pages = table_bytes // BLOCK_SIZE
    if count == 1 or pages < count:
        return [Chunk(table, 0, "whole")]
    bounds = inner_bounds(0, pages - 1, count)
    edges: list[int | None] = [None, *bounds, None]
    return [Chunk(table, i, "ctid", edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def bounds_of(chunks: list[Chunk]) -> list[int]:
    """The inner bounds of key chunks (what ``width_bucket`` needs)."""
    return [c.lo for c in chunks[1:] if c.lo is not None]
