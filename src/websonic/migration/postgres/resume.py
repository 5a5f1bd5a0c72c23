"""What a resumed bulk copy keeps (the decision, honestly made).

The snapshot of the killed run is gone, and the source may have been written to since. So a
resumed run exports a NEW snapshot and keeps a copied chunk only if its checksum on the target
equals the same chunk's checksum on the source in the new snapshot: what is kept is then
exactly what the new copy would have written, and the result is consistent as of the new
snapshot. Everything else is removed and copied again from the new snapshot:

- a table with integer-key chunks: each copied chunk is compared (one scan per side, all
  chunks at once); a chunk that differs, or rows of a chunk the run had not recorded (killed
  between COMMIT and the checkpoint), are deleted by key range and copied again;
- a table copied whole or in ctid ranges: kept only if it was copied completely and its
  whole-table checksum matches; otherwise truncated and copied again;
- a table not started: truncated (it may hold a chunk committed just before the kill).

Once post-data (indexes, constraints) has started, the tables must all match as they are; if
any differs the run starts over from an empty target (constraints make partial repair unsafe).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from websonic.migration.postgres import checksum
from websonic.migration.postgres.catalog import Table
from websonic.migration.postgres.chunks import Chunk, bounds_of
from websonic.migration.postgres.copy import delete_chunk, truncate
from websonic.migration.postgres.pool import Pool
from websonic.migration.postgres.verify import Checker, open_checker
from websonic.migration.urls import DatabaseUrl


@dataclass(frozen=True)
class Decision:
    kept: list[str]  # chunk ids
    repaired: list[str]  # chunk ids deleted / tables truncated


def decide(
    table: Table,
    chunks: list[Chunk],
    done: set[str],
    source: dict[int, checksum.Sum] | None,
    target: dict[int, checksum.Sum] | None,
) -> tuple[list[Chunk], list[Chunk], bool]:
    """(chunks kept, chunks to delete on the target first, truncate the table first)."""
    finished = [c for c in chunks if c.id in done]
    if not finished:
        return [], [], True
    if chunks[0].kind != "key":
        complete = len(finished) == len(chunks)
        if complete and source is not None and source == target:
            return chunks, [], False
        return [], [], True
    assert source is not None and target is not None
    bad = set(checksum.mismatched(source, target))
    kept = [c for c in finished if c.index not in bad]
    kept_ids = {c.id for c in kept}
    stale = [c for c in chunks if c.id not in kept_ids and c.index in target]
    return kept, stale, False


def _sums(
    checker: Checker, table: Table, chunks: list[Chunk]
) -> tuple[dict[int, checksum.Sum], dict[int, checksum.Sum]]:
    key = table.primary_key[0] if chunks[0].kind == "key" else None
    query = checksum.chunk_sums(
        table.schema,
        table.name,
        [c.name for c in table.columns],
        key,
        bounds_of(chunks) if key else [],
    )
    source = checksum.parse_sums(checker.source.execute(query).fetchall(), len(chunks))
    target = checksum.parse_sums(checker.target.execute(query).fetchall(), len(chunks))
    return source, target


def keep(checker: Checker, table: Table, chunks: list[Chunk], done: set[str]) -> list[str]:
    """Compare, repair the target, and return the ids of the chunks kept."""
    started = any(c.id in done for c in chunks)
    complete = all(c.id in done for c in chunks)
    source = target = None
    if started and (chunks[0].kind == "key" or complete):
        source, target = _sums(checker, table, chunks)
    kept, stale, wipe = decide(table, chunks, done, source, target)
    if wipe:
        checker.target.execute(truncate(table))
    for chunk in stale:
        checker.target.execute(delete_chunk(table, chunk))
    return [c.id for c in kept]


def kept_chunks(
    source: DatabaseUrl,
    target: DatabaseUrl,
    snapshot: str,
    todo: list[Table],
    plans: dict[str, list[Chunk]],
    done: set[str],
    jobs: int,
    stop: threading.Event,
) -> set[str]:
    kept: set[str] = set()
    pool: Pool[Checker, Table, list[str]] = Pool(
        jobs, lambda: open_checker(source, target, snapshot), stop
    )
    pool.run(
        todo,
        lambda checker, table: keep(checker, table, plans[table.qualified], done),
        lambda _table, ids: kept.update(ids),
    )
    return kept


def all_match(
    source: DatabaseUrl,
    target: DatabaseUrl,
    snapshot: str,
    todo: list[Table],
    plans: dict[str, list[Chunk]],
    jobs: int,
    stop: threading.Event,
) -> bool:
    """Whether every table on the target equals the source in the new snapshot."""
    results: list[bool] = []

    def same(checker: Checker, table: Table) -> bool:
        source_sums, target_sums = _sums(checker, table, plans[table.qualified])
        return source_sums == target_sums

    pool: Pool[Checker, Table, bool] = Pool(
        jobs, lambda: open_checker(source, target, snapshot), stop
    )
    pool.run(todo, same, lambda _table, ok: results.append(ok))
    return all(results)
