"""What the source's binary log says happened to one database between two positions.

``SHOW BINLOG EVENTS`` lists row events behind a ``Table_map`` naming ``db.table``, and DDL as
``Query`` events (``use `db`; ALTER TABLE …``, or a statement naming `` `db`.``/``db.``). This is
how a resumed copy knows which finished tables are still valid (untouched since its snapshot),
and how an online migration notices DDL, which it refuses rather than lose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from websonic.migration.mariadb.connect import Connection, rows
from websonic.migration.mariadb.snapshot import Position

PAGE = 5000
TABLE_MAP = re.compile(r"^table_id: \d+ \((?P<name>.*)\)$")
USE_DB = re.compile(r"^use `(?P<db>(?:[^`]|``)*)`; (?P<statement>.*)$", re.DOTALL)
NOT_DDL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|XA |SAVEPOINT|RELEASE SAVEPOINT)", re.I)


@dataclass
class Changes:
    """What changed in one database: tables with row changes, DDL (or other) statements."""

    tables: set[str] = field(default_factory=set)
    statements: list[str] = field(default_factory=list)
    end: Position = field(default_factory=Position)
    events: int = 0


def classify(event_type: str, info: str, database: str) -> tuple[str, str] | None:
    """("table", name) for a row change of ``database``, ("statement", text) for a statement
    that concerns it, None for anything else (pure)."""
    if event_type == "Table_map":
        match = TABLE_MAP.match(info)
        prefix = f"{database}."
        if match and match["name"].startswith(prefix):
            return "table", match["name"][len(prefix) :]
        return None
    if event_type != "Query" or NOT_DDL.match(info):
        return None
    used = USE_DB.match(info)
    statement = used["statement"] if used else info
    if (used and used["db"].replace("``", "`") == database) or _names(statement, database):
        return "statement", statement.strip()
    return None


def _names(statement: str, database: str) -> bool:
    quoted = f"`{database.replace('`', '``')}`"
    bare = re.compile(rf"(?<![\w`$]){re.escape(database)}\s*\.", re.IGNORECASE)
    return quoted in statement or bool(bare.search(statement))


def changes(conn: Connection, database: str, start: Position, end: Position,
            *, limit: int = 2_000_000) -> Changes | None:  # fmt: skip
    """The changes to ``database`` from ``start`` to ``end`` (None if the log cannot tell:
    files purged, no binlog, or more than ``limit`` events to read)."""
    if not start.known or not end.known:
        return None
    files = [str(r[0]) for r in rows(conn, "SHOW BINARY LOGS")]
    if start.file not in files or end.file not in files:
        return None
    found = Changes(end=end)
    for file in files[files.index(start.file) : files.index(end.file) + 1]:
        position = start.position if file == start.file else 4
        stop = end.position if file == end.file else None
        if not _scan(conn, database, file, position, stop, found, limit):
            return None
    return found


def _scan(conn: Connection, database: str, file: str, position: int, stop: int | None,
          found: Changes, limit: int) -> bool:  # fmt: skip
    while stop is None or position < stop:
        events = rows(conn, f"SHOW BINLOG EVENTS IN %s FROM {int(position)} LIMIT {PAGE}",
                      (file,))  # fmt: skip
        for _log, pos, event_type, _server, end_pos, info in events:
            if stop is not None and int(pos) >= stop:
                return True
            _note(found, classify(str(event_type), str(info or ""), database))
            position = int(end_pos)
        found.events += len(events)
        if found.events > limit:
            return False
        if len(events) < PAGE:
            return True
    return True


def _note(found: Changes, item: tuple[str, str] | None) -> None:
    if item is None:
        return
    kind, text = item
    if kind == "table":
        found.tables.add(text)
    else:
        found.statements.append(text)
