"""What a SQLite file holds: opened read-only, probed, its tables, keys, sizes and objects.

Everything reads through ``sqlite3`` (no external tool). A file is opened read-only
(``mode=ro``) so probing or verifying can never create or change it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from websonic.core.errors import ConnectionFailed, InvalidInput
from websonic.migration.plan import ServerInfo

HEADER = b"SQLite format 3\x00"
#: Tables SQLite keeps for itself that are not data (ANALYZE statistics are rebuilt at will).
SKIPPED_TABLES = ("sqlite_schema", "sqlite_master", "sqlite_temp_schema", "sqlite_temp_master")
BUSY_TIMEOUT = 30.0


def quote_name(name: str) -> str:
    """An identifier quoted for SQL (double quotes, inner ones doubled)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Table:
    """A table to copy and check: its columns, and the key its rows are ordered by."""

    name: str
    columns: tuple[str, ...]  # stored and generated columns, in order
    key: tuple[str, ...]  # the declared primary key; empty: none (checked as a whole)
    without_rowid: bool = False
    nullable_key: bool = False  # a rowid table's non-integer key may hold NULLs (SQLite quirk)
    virtual: bool = False  # CREATE VIRTUAL TABLE: its shadow tables hold the data

    @property
    def sql_name(self) -> str:
        return quote_name(self.name)


def is_sqlite_file(path: Path) -> bool:
    """True for a SQLite database file (an empty file is one: SQLite makes it on first write)."""
    with path.open("rb") as handle:
        head = handle.read(len(HEADER))
    return head in (b"", HEADER)


def describe_missing(path: Path) -> str:
    if not path.parent.is_dir():
        return f"{path} does not exist, nor does its folder {path.parent}"
    return f"{path} does not exist"


def check_file(path: Path, what: str) -> None:
    """Refuse a missing file, a folder, or a file that is not a SQLite database."""
    if path.is_dir():
        raise InvalidInput(f"The {what} {path} is a folder, not a SQLite database file.")
    if not path.exists():
        raise ConnectionFailed(f"The {what} {describe_missing(path)}.",
                               hint="Check the path in the sqlite:/// URL.")  # fmt: skip
    try:
        ok = is_sqlite_file(path)
    except OSError as exc:
        raise ConnectionFailed(f"The {what} {path} cannot be read: {exc.strerror}.") from None
    if not ok:
        raise InvalidInput(
            f"The {what} {path} is not a SQLite database (it does not start with the "
            "'SQLite format 3' header)."
        )


def check_folder(path: Path) -> None:
    """The folder a target file goes into must exist and be writable."""
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInput(f"The target folder {folder} does not exist.",
                           hint=f"Create it first: mkdir -p {folder}")  # fmt: skip
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInput(f"The target folder {folder} is not writable by this user.")


def open_readonly(path: Path, what: str = "database") -> sqlite3.Connection:
    """A read-only connection in autocommit mode (``BEGIN`` starts a snapshot explicitly)."""
    check_file(path, what)
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"The {what} {path} cannot be read as SQLite: {exc}.") from None
    return conn


def open_immutable(path: Path) -> sqlite3.Connection:
    """A file nobody else writes (the copy before its rename): no locks, no -wal/-shm files."""
    uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees the same state of the database, whatever
    other processes write meanwhile (in WAL mode they keep writing; in rollback-journal mode
    they wait for it to end)."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the snapshot now
        yield conn
    finally:
        conn.execute("ROLLBACK")


def pragma(conn: sqlite3.Connection, name: str) -> str:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return "" if row is None else str(row[0])


def writer_version(path: Path) -> str:
    """The SQLite version that last wrote the file (header offset 96), e.g. ``3.40.1``."""
    with path.open("rb") as handle:
        header = handle.read(100)
    if len(header) < 100:
        return ""
    number = int.from_bytes(header[96:100], "big")
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}" if number else ""


def probe(path: Path) -> ServerInfo:
    """Version, size and settings of a file. A file that does not exist yet may be a target:
    ``plan`` refuses a missing source, or a target folder that is missing or not writable."""
    version = tuple(int(p) for p in sqlite3.sqlite_version.split("."))
    text = f"SQLite {sqlite3.sqlite_version}"
    if not path.exists() and not path.is_symlink():  # which one is missing, plan() says
        folder = path.parent.is_dir() and os.access(path.parent, os.W_OK | os.X_OK)
        settings = {"exists": "no", "folder_writable": "yes" if folder else "no"}
        return ServerInfo("sqlite", version, text, 0, settings)
    conn = open_readonly(path)
    try:
        settings = {name: pragma(conn, name) for name in PROBED}
    finally:
        conn.close()
    settings.update(exists="yes", written_by=writer_version(path))
    if settings["written_by"]:
        text += f" (file last written by SQLite {settings['written_by']})"
    return ServerInfo("sqlite", version, text, file_bytes(path), settings)


PROBED = ("quick_check", "journal_mode", "page_size", "page_count", "freelist_count",
          "encoding", "user_version", "application_id", "auto_vacuum")  # fmt: skip


def file_bytes(path: Path) -> int:
    """The database's size on disk, its write-ahead log included."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def is_empty(conn: sqlite3.Connection) -> bool:
    """No table, index, view or trigger, and no user_version set."""
    count = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return count == 0 and pragma(conn, "user_version") == "0"


def tables(conn: sqlite3.Connection) -> list[Table]:
    """Every table of ``main`` that holds data (sqlite_sequence included, statistics not)."""
    rows = conn.execute("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' "
                        "ORDER BY name").fetchall()  # fmt: skip
    found = []
    for name, kind, without_rowid in rows:
        if name in SKIPPED_TABLES or name.startswith("sqlite_stat"):
            continue
        if kind == "virtual":
            found.append(Table(name, (), (), virtual=True))
        elif kind in ("table", "shadow"):
            found.append(_table(conn, name, bool(without_rowid)))
    return found


def _table(conn: sqlite3.Connection, name: str, without_rowid: bool) -> Table:
    info = conn.execute(
        'SELECT name, type, "notnull", pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid',
        (name,),
    ).fetchall()
    columns = tuple(row[0] for row in info if row[4] in (0, 2, 3))  # not virtual-table hidden
    keyed = sorted((row for row in info if row[3] > 0), key=lambda row: row[3])
    key = tuple(row[0] for row in keyed)
    integer_alias = len(keyed) == 1 and keyed[0][1].upper() == "INTEGER"
    nullable = (bool(key) and not without_rowid and not integer_alias
                and any(not row[2] for row in keyed))  # fmt: skip
    return Table(name, columns, key, without_rowid, nullable)


def objects(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """(type, name) -> SQL of every table, index, view and trigger (automatic indexes: '')."""
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master "
                        "WHERE name NOT LIKE 'sqlite_stat%'").fetchall()  # fmt: skip
    return {(kind, name): sql or "" for kind, name, sql in rows}


def object_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {"tables": 0, "indexes": 0, "views": 0, "triggers": 0}
    for kind, _name in objects(conn):
        counts[{"table": "tables", "index": "indexes", "view": "views"}.get(kind, "triggers")] += 1
    return counts


def count_rows(conn: sqlite3.Connection, table: Table) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table.sql_name}").fetchone()[0])


def table_bytes(conn: sqlite3.Connection, rows: dict[str, int]) -> dict[str, int]:
    """Bytes of each table with its indexes: from ``dbstat`` when SQLite has it, otherwise the
    file's used pages shared out by row counts (an estimate)."""
    try:
        sizes = conn.execute("SELECT name, pgsize FROM dbstat WHERE aggregate = 1").fetchall()
    except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
        return _estimated_bytes(conn, rows)
    owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
    result = dict.fromkeys(rows, 0)
    for name, size in sizes:
        table = owner.get(name, name)
        if table in result:
            result[table] += int(size)
    return result


def _estimated_bytes(conn: sqlite3.Connection, rows: dict[str, int]) -> dict[str, int]:
    used = int(pragma(conn, "page_count")) - int(pragma(conn, "freelist_count"))
    total_bytes, total_rows = used * int(pragma(conn, "page_size")), sum(rows.values()) or 1
    return {name: total_bytes * count // total_rows for name, count in rows.items()}
