"""What a database holds, read from information_schema: tables with their columns and keys.

A table's *key* is what copies and checksums walk in order: its primary key, or else a unique
index whose columns are all NOT NULL (as good for this), or nothing (the table is copied and
checksummed whole). The migration's marker table is never part of the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from websonic.migration.mariadb.connect import Connection, dict_rows, rows
from websonic.migration.mariadb.sql import INTEGER, Column

#: The table that marks a target as an unfinished migration (see ``marker``).
MARKER = "_websonic_migration"

TABLES_SQL = """
SELECT TABLE_NAME AS name, TABLE_TYPE AS kind, COALESCE(ENGINE, '') AS engine,
       COALESCE(TABLE_ROWS, 0) AS table_rows, COALESCE(DATA_LENGTH, 0) AS data_bytes,
       COALESCE(INDEX_LENGTH, 0) AS index_bytes, COALESCE(AVG_ROW_LENGTH, 0) AS avg_row,
       AUTO_INCREMENT AS auto_increment
FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE <> 'VIEW'
ORDER BY TABLE_NAME"""
COLUMNS_SQL = """
SELECT TABLE_NAME AS tbl, COLUMN_NAME AS name, LOWER(DATA_TYPE) AS data_type,
       CHARACTER_SET_NAME AS charset, IS_NULLABLE = 'YES' AS nullable,
       (IS_GENERATED = 'ALWAYS' OR EXTRA LIKE '%%GENERATED%%') AS is_generated
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION"""
UNIQUE_SQL = """
SELECT TABLE_NAME AS tbl, INDEX_NAME AS idx, COLUMN_NAME AS col, SUB_PART AS sub_part
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0
ORDER BY TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"""
OBJECT_COUNTS_SQL = """
SELECT 'views', COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s
UNION ALL SELECT 'procedures', COUNT(*) FROM information_schema.ROUTINES
  WHERE ROUTINE_SCHEMA = %s AND ROUTINE_TYPE = 'PROCEDURE'
UNION ALL SELECT 'functions', COUNT(*) FROM information_schema.ROUTINES
  WHERE ROUTINE_SCHEMA = %s AND ROUTINE_TYPE = 'FUNCTION'
UNION ALL SELECT 'triggers', COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s
UNION ALL SELECT 'events', COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"""


@dataclass(frozen=True)
class Table:
    name: str
    kind: str  # BASE TABLE, SYSTEM VERSIONED, SEQUENCE
    engine: str
    rows: int  # the catalog's estimate
    data_bytes: int
    index_bytes: int
    avg_row: int
    auto_increment: int | None
    columns: tuple[Column, ...] = ()
    key: tuple[str, ...] = ()
    key_is_primary: bool = False

    @property
    def bytes(self) -> int:
        return self.data_bytes + self.index_bytes

    @property
    def key_columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[k] for k in self.key)

    @property
    def integer_key(self) -> bool:
        """One integer key column: ranges can be computed instead of read."""
        return len(self.key) == 1 and self.key_columns[0].data_type in INTEGER

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """The columns a copy writes (generated columns are computed by the target)."""
        return tuple(c for c in self.columns if not c.generated)


def read_tables(conn: Connection, database: str) -> list[Table]:
    """Every table of ``database`` (not views, not the marker), with columns and key."""
    columns = _columns(conn, database)
    keys = _keys(conn, database, columns)
    tables = []
    for row in dict_rows(conn, TABLES_SQL, (database,)):
        if row["name"] == MARKER:
            continue
        key, primary = keys.get(row["name"], ((), False))
        tables.append(Table(
            name=row["name"], kind=row["kind"], engine=row["engine"],
            rows=int(row["table_rows"]), data_bytes=int(row["data_bytes"]),
            index_bytes=int(row["index_bytes"]), avg_row=int(row["avg_row"]),
            auto_increment=_int_or_none(row["auto_increment"]),
            columns=tuple(c for c, _ in columns.get(row["name"], [])), key=key,
            key_is_primary=primary,
        ))  # fmt: skip
    return tables


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


ColumnRows = dict[str, list[tuple[Column, bool]]]  # table -> [(column, nullable)]


def _columns(conn: Connection, database: str) -> ColumnRows:
    found: ColumnRows = {}
    for row in dict_rows(conn, COLUMNS_SQL, (database,)):
        column = Column(row["name"], row["data_type"], row["charset"], bool(row["is_generated"]))
        found.setdefault(row["tbl"], []).append((column, bool(row["nullable"])))
    return found


def _keys(
    conn: Connection, database: str, columns: ColumnRows
) -> dict[str, tuple[tuple[str, ...], bool]]:
    """table -> (key columns, is the primary key), from the unique indexes."""
    indexes: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for row in dict_rows(conn, UNIQUE_SQL, (database,)):
        indexes.setdefault((row["tbl"], row["idx"]), []).append((row["col"], row["sub_part"]))
    keys: dict[str, tuple[tuple[str, ...], bool]] = {}
    for (table, index), parts in indexes.items():
        if table in keys:
            continue
        nullable = {c.name for c, null in columns.get(table, []) if null}
        if index == "PRIMARY":
            keys[table] = (tuple(c for c, _ in parts), True)
        elif all(sub is None and c not in nullable for c, sub in parts):
            keys[table] = (tuple(c for c, _ in parts), False)
    return keys


def object_counts(conn: Connection, database: str) -> dict[str, int]:
    return {kind: int(n) for kind, n in rows(conn, OBJECT_COUNTS_SQL, (database,) * 5)}


def view_names(conn: Connection, database: str) -> list[str]:
    sql = "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s"
    return [r[0] for r in rows(conn, sql, (database,))]


def has_marker(conn: Connection, database: str) -> bool:
    sql = ("SELECT COUNT(*) FROM information_schema.TABLES "
           "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s")  # fmt: skip
    return bool(rows(conn, sql, (database, MARKER))[0][0])
