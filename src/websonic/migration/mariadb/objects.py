"""Views, routines, triggers and events: read with SHOW CREATE, created on the target after the
data (a trigger created before the load would fire on every copied row).

Each object is created in the ``sql_mode`` (and, for events, the time zone) it was created in
on the source, with its DEFINER kept. Views are created in dependency order by retrying those
that name a view not created yet. When the target database has another name, references
written `` `source_db`. `` are renamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pymysql

from websonic.migration.mariadb.connect import Connection, dict_rows, execute, rows, value
from websonic.migration.mariadb.sql import ident, qualified, string_literal

NO_SUCH_TABLE = 1146
VIEW_NEEDS_VIEW = (NO_SUCH_TABLE, 1356)


@dataclass(frozen=True)
class StoredObject:
    kind: str  # view, procedure, function, trigger, event
    name: str
    create: str
    sql_mode: str = ""
    time_zone: str = ""


ROUTINES_SQL = """SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES
WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME"""
TRIGGERS_SQL = """SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s
ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER"""
EVENTS_SQL = "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"
VIEWS_SQL = "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s"


def read_views(conn: Connection, database: str) -> list[StoredObject]:
    found = []
    for (name,) in rows(conn, VIEWS_SQL, (database,)):
        create = rows(conn, f"SHOW CREATE VIEW {qualified(database, name)}")[0][1]
        found.append(StoredObject("view", name, str(create)))
    return found


def read_routines(conn: Connection, database: str) -> list[StoredObject]:
    found = []
    for kind, name in rows(conn, ROUTINES_SQL, (database,)):
        shown = dict_rows(conn, f"SHOW CREATE {kind} {qualified(database, name)}")[0]
        create = shown.get(f"Create {kind.title()}")
        if create is None:
            raise PermissionError(f"the source user may not read the {kind.lower()} {name}")
        found.append(StoredObject(kind.lower(), name, str(create), str(shown["sql_mode"])))
    return found


def read_triggers(conn: Connection, database: str) -> list[StoredObject]:
    found = []
    for (name,) in rows(conn, TRIGGERS_SQL, (database,)):
        shown = dict_rows(conn, f"SHOW CREATE TRIGGER {qualified(database, name)}")[0]
        found.append(StoredObject("trigger", name, str(shown["SQL Original Statement"]),
                                  str(shown["sql_mode"])))  # fmt: skip
    return found


def read_events(conn: Connection, database: str) -> list[StoredObject]:
    found = []
    for (name,) in rows(conn, EVENTS_SQL, (database,)):
        shown = dict_rows(conn, f"SHOW CREATE EVENT {qualified(database, name)}")[0]
        found.append(StoredObject("event", name, str(shown["Create Event"]),
                                  str(shown["sql_mode"]), str(shown["time_zone"])))  # fmt: skip
    return found


def renamed(text: str, source_db: str, target_db: str) -> str:
    """``text`` with references to the source database pointed at the target database."""
    if source_db == target_db:
        return text
    return text.replace(f"{ident(source_db)}.", f"{ident(target_db)}.")


def create_object(conn: Connection, obj: StoredObject) -> None:
    """(Re)create one object on the target in its own sql_mode and time zone."""
    drop = {"view": "VIEW", "procedure": "PROCEDURE", "function": "FUNCTION",
            "trigger": "TRIGGER", "event": "EVENT"}[obj.kind]  # fmt: skip
    execute(conn, f"DROP {drop} IF EXISTS {ident(obj.name)}")
    with _session(conn, obj.sql_mode, obj.time_zone):
        execute(conn, obj.create)


@contextmanager
def _session(conn: Connection, sql_mode: str, time_zone: str) -> Iterator[None]:
    before = rows(conn, "SELECT @@SESSION.sql_mode, @@SESSION.time_zone")[0]
    if sql_mode:
        execute(conn, f"SET SESSION sql_mode = {string_literal(sql_mode)}")
    if time_zone:
        execute(conn, f"SET SESSION time_zone = {string_literal(time_zone)}")
    try:
        yield
    finally:
        execute(conn, f"SET SESSION sql_mode = {string_literal(str(before[0]))}, "
                      f"time_zone = {string_literal(str(before[1]))}")  # fmt: skip


def create_views(conn: Connection, views: list[StoredObject]) -> None:
    """Create views, retrying those that depend on a view not created yet."""
    pending = list(views)
    while pending:
        failed: list[tuple[StoredObject, Exception]] = []
        for view in pending:
            try:
                create_object(conn, view)
            except pymysql.err.MySQLError as exc:
                if not exc.args or exc.args[0] not in VIEW_NEEDS_VIEW:
                    raise
                failed.append((view, exc))
        if len(failed) == len(pending):
            raise failed[0][1]
        pending = [view for view, _ in failed]


def drop_everything(conn: Connection, database: str, keep: str | None = None) -> None:
    """Empty a database: views, tables (and their triggers), routines, events."""
    execute(conn, "SET SESSION foreign_key_checks = 0")
    try:
        for (name,) in rows(conn, VIEWS_SQL, (database,)):
            execute(conn, f"DROP VIEW IF EXISTS {qualified(database, name)}")
        sql = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
        for (name,) in rows(conn, sql, (database,)):
            if name != keep:
                execute(conn, f"DROP TABLE IF EXISTS {qualified(database, name)}")
        for kind, name in rows(conn, ROUTINES_SQL, (database,)):
            execute(conn, f"DROP {kind} IF EXISTS {qualified(database, name)}")
        for (name,) in rows(conn, EVENTS_SQL, (database,)):
            execute(conn, f"DROP EVENT IF EXISTS {qualified(database, name)}")
    finally:
        execute(conn, "SET SESSION foreign_key_checks = 1")


def count_objects(conn: Connection, database: str, marker: str) -> int:
    sql = """SELECT (SELECT COUNT(*) FROM information_schema.TABLES
                     WHERE TABLE_SCHEMA = %s AND TABLE_NAME <> %s)
                  + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)
                  + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s)"""
    return int(value(conn, sql, (database, marker, database, database)) or 0)
