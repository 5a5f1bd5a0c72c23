"""Tables on the target: created from the source's ``SHOW CREATE TABLE``, indexes after the data.

A table of at least ``DEFER_MIN_ROWS`` rows is created with its primary key only (plus
FULLTEXT/SPATIAL indexes, and the index that holds an AUTO_INCREMENT column, which InnoDB
requires): InnoDB loads rows into the clustered index alone much faster, then builds each
secondary index in one sorted pass (``ALTER TABLE … ADD KEY …``). Foreign keys are always added
after every table is loaded and indexed, with ``foreign_key_checks = 0`` (the data comes from a
consistent source: checking it again would only cost time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from websonic.migration.mariadb.catalog import Table
from websonic.migration.mariadb.connect import Connection, execute, rows
from websonic.migration.mariadb.sql import ident, qualified

DEFER_MIN_ROWS = 10_000
DEFERRABLE = re.compile(r"^  (UNIQUE )?KEY `")
FOREIGN_KEY = re.compile(r"^  CONSTRAINT `(?:[^`]|``)*` FOREIGN KEY ")
FIRST_COLUMN = re.compile(r"KEY `(?:[^`]|``)*` \(`((?:[^`]|``)*)`")


@dataclass(frozen=True)
class TableDdl:
    """A table's CREATE statement without what is added later, and what is added later."""

    name: str
    create: str
    indexes: tuple[str, ...] = ()  # "ADD KEY `k` (`c`)" clauses
    foreign_keys: tuple[str, ...] = ()  # "ADD CONSTRAINT `fk` FOREIGN KEY …" clauses


def split_create(name: str, create: str, *, defer_indexes: bool,
                 auto_increment: str | None = None) -> TableDdl:  # fmt: skip
    """Take the deferred indexes and the foreign keys out of a SHOW CREATE TABLE text (pure)."""
    kept: list[str] = []
    indexes: list[str] = []
    foreign: list[str] = []
    for line in create.split("\n"):
        if FOREIGN_KEY.match(line):
            foreign.append("ADD " + line.strip().rstrip(","))
        elif defer_indexes and DEFERRABLE.match(line) and not _holds(line, auto_increment):
            indexes.append("ADD " + line.strip().rstrip(","))
        else:
            kept.append(line)
    return TableDdl(name, "\n".join(_fix_last_comma(kept)), tuple(indexes), tuple(foreign))


def _holds(line: str, column: str | None) -> bool:
    """Whether the index on this line starts with the AUTO_INCREMENT column."""
    match = FIRST_COLUMN.search(line)
    return column is not None and match is not None and match[1].replace("``", "`") == column


def _fix_last_comma(lines: list[str]) -> list[str]:
    """The definition before the closing ``)`` line must not end with a comma."""
    for i, line in enumerate(lines):
        if i and line.startswith(")"):
            lines[i - 1] = lines[i - 1].rstrip(",")
            break
    return lines


def show_create(conn: Connection, database: str, table: str) -> str:
    return str(rows(conn, f"SHOW CREATE TABLE {qualified(database, table)}")[0][1])


def auto_increment_column(conn: Connection, database: str, table: str) -> str | None:
    sql = ("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
           "AND TABLE_NAME = %s AND EXTRA LIKE '%%auto_increment%%'")  # fmt: skip
    found = rows(conn, sql, (database, table))
    return str(found[0][0]) if found else None


def table_ddl(conn: Connection, database: str, table: Table) -> TableDdl:
    create = show_create(conn, database, table.name)
    column = auto_increment_column(conn, database, table.name)
    defer = table.rows >= DEFER_MIN_ROWS and table.kind == "BASE TABLE"
    return split_create(table.name, create, defer_indexes=defer, auto_increment=column)


def create_table(conn: Connection, ddl: TableDdl) -> None:
    execute(conn, f"DROP TABLE IF EXISTS {ident(ddl.name)}")
    execute(conn, ddl.create)


def add_indexes(conn: Connection, ddl: TableDdl) -> None:
    if ddl.indexes:
        execute(conn, f"ALTER TABLE {ident(ddl.name)} {', '.join(ddl.indexes)}")


def add_foreign_keys(conn: Connection, ddl: TableDdl) -> None:
    if ddl.foreign_keys:
        execute(conn, f"ALTER TABLE {ident(ddl.name)} {', '.join(ddl.foreign_keys)}")


def analyze(conn: Connection, name: str) -> None:
    rows(conn, f"ANALYZE TABLE {ident(name)}")


def database_defaults(conn: Connection, database: str) -> tuple[str, str]:
    sql = ("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
           "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s")  # fmt: skip
    charset, collation = rows(conn, sql, (database,))[0]
    return str(charset), str(collation)


def set_database_defaults(conn: Connection, database: str, defaults: tuple[str, str]) -> None:
    charset, collation = defaults
    execute(conn, f"ALTER DATABASE {ident(database)} CHARACTER SET {charset} "
                  f"COLLATE {collation}")  # fmt: skip


def to_dict(ddl: TableDdl) -> dict[str, Any]:
    return {"name": ddl.name, "create": ddl.create, "indexes": list(ddl.indexes),
            "foreign_keys": list(ddl.foreign_keys)}  # fmt: skip


def from_dict(data: dict[str, Any]) -> TableDdl:
    return TableDdl(str(data["name"]), str(data["create"]), tuple(data.get("indexes", ())),
                    tuple(data.get("foreign_keys", ())))  # fmt: skip
