"""The cutover: the migrated database frozen for as short a time as possible, the target
switched to.

Before the window (the source still takes writes): the schemas are compared and every table is
checksummed at one GTID position G — the source in a snapshot at G, the target's replication
paused exactly at G (``START SLAVE UNTIL master_gtid_pos``) while its snapshot opens, then
resumed. A mismatch stops here, before anything is frozen.

In the window (the write downtime):

1. freeze: a session of WebSonic's own (the *freezer*) takes ``LOCK TABLES … READ`` on every
   base table of the database. A write to one of them waits (every account: table locks are not
   a privilege that SUPER or READ ONLY ADMIN bypasses) while reads go on; a transaction that
   already wrote one holds the table, so while the lock request waits, the sessions using the
   database (``PROCESSLIST.DB``) are killed: their open transactions roll back (not
   acknowledged, not lost). Nothing else of the server is touched — other databases keep taking
   writes — and the freeze ends with the freezer's session whatever happens to WebSonic (its
   ``wait_timeout`` bounds even a lost network), so a dead run cannot leave it frozen;
2. the source's ``@@gtid_binlog_pos`` F; ``MASTER_GTID_WAIT(F)`` on the target, bounded by
   ``cutover_timeout``; replication healthy; no DDL in the binlog since the last check;
3. AUTO_INCREMENT: the target's counters raised to the source's, and ``> MAX(column)`` checked;
4. events created (not before: the target's scheduler would have run them while replicating);
5. replication stopped; snapshots of both sides opened for the verification after the switch;
6. ``--on-switch`` runs (through the runner, ``sh -c``). Downtime = freeze -> on_switch done.

Any failure before the switch releases the locks and resumes replication: the application keeps
its source, nothing was revoked, the run can be retried. After the switch, while the locks still
hold, the database is closed to the application's writes (``closing``: its accounts' write
privileges on it revoked, recorded as the GRANTs that undo it), the sessions using it are killed
(they keep the database privileges of their ``USE``, and their writes waiting on the locks were
sent before the application moved), then the locks are released; ``RESET SLAVE ALL``, a check
that nothing was written to the database on the source after F (an account the revoke cannot
stop) and the full verification of the target as it was at F against the source's snapshot at F.
"""

from __future__ import annotations

import math
import re
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import pymysql

from websonic.core.errors import MigrationFailed
from websonic.core.runner import Command, Runner
from websonic.migration.mariadb import binlog, closing
from websonic.migration.mariadb.bulk import create_events
from websonic.migration.mariadb.connect import Connection, close, execute, rows, session, value
from websonic.migration.mariadb.context import Migration
from websonic.migration.mariadb.online import refuse_ddl, replica_status
from websonic.migration.mariadb.snapshot import Position, current_position
from websonic.migration.mariadb.sql import ident, qualified, string_literal

SKIP_COMMANDS = ("Binlog Dump", "Binlog Dump GTID", "Daemon", "Killed")
SESSIONS_SQL = "SELECT ID, COMMAND FROM information_schema.PROCESSLIST WHERE DB = %s"
WAITING_SQL = """SELECT ID, USER, INFO FROM information_schema.PROCESSLIST
WHERE STATE LIKE 'Waiting for table%'"""
BASE_TABLES_SQL = """SELECT TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"""
LOCK_WAIT_TIMEOUT = 1205
LOCK_POLL_SECONDS = 0.05
#: seconds the freezer's session outlives a silent WebSonic beyond the window's own bounds
ON_SWITCH_MARGIN = 60
AUTO_INCREMENT_SQL = """SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND AUTO_INCREMENT IS NOT NULL"""


@dataclass
class Frozen:
    """The database while frozen: the freezer session holding its table locks."""

    freezer: Connection
    started: float
    position: Position = field(default_factory=Position)
    revoked: list[str] = field(default_factory=list)  # our REVOKEs after the switch


def freeze(m: Migration, control: Connection, freezer: Connection, spare: set[int]) -> Frozen:
    """Every table of the database locked for reads only by ``freezer``; the sessions using the
    database killed while the lock waits for their transactions. ``control`` reads the position.
    """
    tables = base_tables(control, m.source.database)
    bound = max(1, math.ceil(m.options.cutover_timeout))
    idle = bound * 3 + ON_SWITCH_MARGIN
    execute(freezer, f"SET SESSION lock_wait_timeout = {bound}, wait_timeout = {idle}")
    spare = spare | {int(control.thread_id()), int(freezer.thread_id())}
    started = time.monotonic()
    if tables:
        lock_ending_sessions(m, control, freezer, lock_tables_sql(m.source.database, tables), spare)
    return Frozen(freezer, started, current_position(control))


def base_tables(conn: Connection, database: str) -> list[str]:
    return [str(r[0]) for r in rows(conn, BASE_TABLES_SQL, (database,))]


def lock_tables_sql(database: str, tables: list[str]) -> str:
    """``LOCK TABLES `db`.`t1` READ, …`` (pure)."""
    return "LOCK TABLES " + ", ".join(f"{qualified(database, t)} READ" for t in tables)


def lock_ending_sessions(
    m: Migration, control: Connection, freezer: Connection, sql: str, spare: set[int]
) -> None:
    """Run ``sql`` on the freezer; while it waits, kill the sessions using the database."""
    failure: list[BaseException] = []

    def lock() -> None:
        try:
            execute(freezer, sql)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    locker = threading.Thread(target=lock, name="websonic-freeze", daemon=True)
    locker.start()
    while locker.is_alive():
        locker.join(LOCK_POLL_SECONDS)
        if locker.is_alive():
            kill_sessions(control, m.source.database, spare)
    if failure:
        raise freeze_failed(m, failure[0])


def freeze_failed(m: Migration, exc: BaseException) -> BaseException:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and exc.args[0] == LOCK_WAIT_TIMEOUT:
        return MigrationFailed(
            f"The tables of {m.source.database!r} could not be locked within "
            f"{m.options.cutover_timeout:.0f} s (cutover_timeout): a session using another "
            "database holds a transaction open on one of them. Nothing was frozen.",
            hint="Run the same command again when that transaction has ended.",
        )
    return exc


def kill_sessions(conn: Connection, database: str, spare: set[int]) -> list[int]:
    """End every session whose current database is ``database`` (except ``spare``)."""
    killed = []
    for row in rows(conn, SESSIONS_SQL, (database,)):
        ident_, command = int(row[0]), str(row[1])
        if ident_ in spare or command in SKIP_COMMANDS:
            continue
        with suppress(pymysql.err.MySQLError):  # it may have ended by itself in between
            execute(conn, f"KILL CONNECTION {ident_}")
            killed.append(ident_)
    return killed


def release(m: Migration, control: Connection, frozen: Frozen, spare: set[int]) -> None:
    """After the switch: the database closed to the application's writes and the writes still
    waiting on the locks ended — both while the locks hold —, then the locks released."""
    ours = {int(control.thread_id()), int(frozen.freezer.thread_id())}
    frozen.revoked = close_database(m, control, spare | ours)
    unfreeze(frozen.freezer)


def close_database(m: Migration, control: Connection, spare: set[int]) -> list[str]:
    """Revoke the write privileges on the database (the GRANTs that undo it saved as
    ``closed``), then end the sessions using it (they keep the database privileges of their
    ``USE``) and the closed accounts' writes to it still waiting on a table lock."""
    database = m.source.database
    grants = closing.write_grants(control, database)
    left_open = closing.open_writers(control, database)
    done = list(m.checkpoint.get("closed") or [])
    try:
        revoked = closing.close(control, grants, done)
    finally:
        m.save(closed=done, left_open=left_open)
    kill_sessions(control, database, spare)
    kill_waiting_writes(control, database, closing.users(grants), spare)
    return revoked


def kill_waiting_writes(conn: Connection, database: str, users: set[str],
                        spare: set[int]) -> list[int]:  # fmt: skip
    """End the sessions of ``users`` (using another database) whose statement names
    ``database`` and waits on a table lock: their privileges were checked before the revoke."""
    names = re.compile(rf"(?<![\w$])`?{re.escape(database)}`?\s*\.", re.IGNORECASE)
    killed = []
    for ident_, user, info in rows(conn, WAITING_SQL):
        if int(ident_) in spare or str(user) not in users or not names.search(str(info or "")):
            continue
        with suppress(pymysql.err.MySQLError):  # it may have ended by itself in between
            execute(conn, f"KILL CONNECTION {int(ident_)}")
            killed.append(int(ident_))
    return killed


def unfreeze(freezer: Connection) -> None:
    """The locks released, and the freezer's session ended (its locks would end with it)."""
    with suppress(pymysql.err.MySQLError):  # gone already: so are its locks
        execute(freezer, "UNLOCK TABLES")
    close(freezer)


def restore_read_only(m: Migration) -> None:
    """A run frozen by an older WebSonic (``SET GLOBAL read_only``): read_only set back."""
    frozen = m.checkpoint.get("frozen")
    if not frozen:
        return
    with session(m.source) as conn:
        execute(conn, read_only_sql(frozen))
    m.save(frozen=None)


def read_only_sql(frozen: dict[str, Any]) -> str:
    before = "1" if str(frozen.get("read_only")).upper() in ("1", "ON") else "0"
    return f"SET GLOBAL read_only = {before}"


def drain(m: Migration, frozen: Frozen, target: Connection, name: str, deadline: float) -> None:
    """Wait until the target applied everything the source logged up to the freeze."""
    gtid = frozen.position.gtid
    remaining = max(0.1, deadline - time.monotonic())
    result = value(target, "SELECT MASTER_GTID_WAIT(%s, %s)", (gtid, remaining))
    if result is None or int(result) != 0:
        raise MigrationFailed(f"The target did not reach the source's position {gtid} within "
                              f"{m.options.cutover_timeout:.0f} s (cutover_timeout).")  # fmt: skip
    status = replica_status(target, name) or {}
    if status.get("Last_SQL_Errno") or status.get("Slave_SQL_Running") != "Yes":
        raise MigrationFailed(f"Replication is not healthy at the cutover: "
                              f"{status.get('Last_SQL_Error') or 'not running'}")  # fmt: skip


def check_no_ddl(m: Migration, source: Connection, end: Position) -> None:
    start = Position.from_json(m.checkpoint.get("scanned") or m.checkpoint.get("snapshot"))
    refuse_ddl(m, source, start, end)


def align_auto_increments(m: Migration, source: Connection, target: Connection,
                          columns: dict[str, str]) -> None:  # fmt: skip
    """Target counters at least the source's, and above every value already used."""
    wanted = {str(t): int(n) for t, n in rows(source, AUTO_INCREMENT_SQL, (m.source.database,))}
    have = {str(t): int(n) for t, n in rows(target, AUTO_INCREMENT_SQL, (m.target.database,))}
    for table, counter in wanted.items():
        if counter > have.get(table, 0):
            execute(target, f"ALTER TABLE {qualified(m.target.database, table)} "
                            f"AUTO_INCREMENT = {counter}")  # fmt: skip
            have[table] = counter
    for table, column in columns.items():
        highest = value(target, f"SELECT MAX({ident(column)}) FROM "
                                f"{qualified(m.target.database, table)}")  # fmt: skip
        if highest is not None and int(highest) >= have.get(table, 0):
            raise MigrationFailed(f"{table}: AUTO_INCREMENT {have.get(table)} is not above the "
                                  f"highest {column} ({highest}) on the target.")  # fmt: skip


def auto_increment_columns(conn: Connection, database: str) -> dict[str, str]:
    sql = ("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
           "WHERE TABLE_SCHEMA = %s AND EXTRA LIKE '%%auto_increment%%'")  # fmt: skip
    return {str(t): str(c) for t, c in rows(conn, sql, (database,))}


def switch(m: Migration, runner: Runner) -> None:
    """Run the user's --on-switch command; its failure keeps the application on the source."""
    if not m.options.on_switch:
        return
    command = Command(("sh", "-c", m.options.on_switch), secrets=m.source.secrets())
    result = runner.run(command, check=False, timeout=max(10.0, m.options.cutover_timeout))
    if not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise MigrationFailed(f"--on-switch failed (exit {result.returncode}): "
                              + " / ".join(tail))  # fmt: skip


def writes_after_freeze(m: Migration, source: Connection, frozen: Frozen) -> list[str]:
    """What reached the database on the source after the freeze (after the switch: an account
    that closing the database cannot stop), our own REVOKEs left out."""
    end = current_position(source)
    found = binlog.changes(source, m.source.database, frozen.position, end)
    if found is None:
        return []
    return sorted(found.tables) + [s for s in found.statements if s not in frozen.revoked]


def stop_replica(target: Connection, name: str) -> None:
    execute(target, f"STOP SLAVE {string_literal(name)}")


def resume_replica(target: Connection, name: str) -> None:
    status = replica_status(target, name)
    if status is not None and status.get("Slave_SQL_Running") != "Yes":
        execute(target, f"START SLAVE {string_literal(name)}")


def events_and_checks(m: Migration, source: Connection, target: Connection,
                      columns: dict[str, str]) -> None:  # fmt: skip
    align_auto_increments(m, source, target, columns)
    create_events(source, target, m.source.database, m.target.database)
