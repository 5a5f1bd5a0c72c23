"""The cutover: the source frozen for as short a time as possible, the target switched to.

Before the window (the source still takes writes): the schemas are compared and every table is
checksummed at one GTID position G — the source in a snapshot at G, the target's replication
paused exactly at G (``START SLAVE UNTIL master_gtid_pos``) while its snapshot opens, then
resumed. A mismatch stops here, before anything is frozen.

In the window (the write downtime):

1. freeze: ``SET GLOBAL read_only = 1`` on the source, then the sessions of the database's
   accounts (and any session using the database) are killed, so open transactions end. Accounts
   with READ ONLY ADMIN (or ALL PRIVILEGES; SUPER before 10.11) are not stopped by read_only:
   the plan names them, and a write that reaches the database after the freeze fails the run;
2. the source's ``@@gtid_binlog_pos`` F; ``MASTER_GTID_WAIT(F)`` on the target, bounded by
   ``cutover_timeout``; replication healthy; no DDL in the binlog since the last check;
3. AUTO_INCREMENT: the target's counters raised to the source's, and ``> MAX(column)`` checked;
4. events created (not before: the target's scheduler would have run them while replicating);
5. replication stopped; snapshots of both sides opened for the verification after the switch;
6. ``--on-switch`` runs (through the runner, ``sh -c``). Downtime = freeze -> on_switch done.

Any failure before the switch unfreezes the source (read_only back to what it was) and resumes
replication: the application keeps its source, the run can be retried. After the switch:
``RESET SLAVE ALL``, a check that nothing was written to the source after F, and the full
verification of the target as it was at F against the frozen source. The source stays read-only
for a rollback (``SET GLOBAL read_only = 0`` on it undoes the freeze).
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, field

import pymysql

from websonic.core.errors import MigrationFailed
from websonic.core.runner import Command, Runner
from websonic.migration.mariadb import binlog, grants
from websonic.migration.mariadb.bulk import create_events
from websonic.migration.mariadb.connect import (
    Connection,
    close,
    connect,
    execute,
    rows,
    value,
)
from websonic.migration.mariadb.context import Migration
from websonic.migration.mariadb.online import refuse_ddl, replica_status
from websonic.migration.mariadb.snapshot import Position, current_position
from websonic.migration.mariadb.sql import ident, qualified, string_literal

SKIP_COMMANDS = ("Binlog Dump", "Binlog Dump GTID", "Daemon", "Killed")
AUTO_INCREMENT_SQL = """SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND AUTO_INCREMENT IS NOT NULL"""


@dataclass
class Frozen:
    """The source while frozen: the connection that froze it and what read_only was before."""

    conn: Connection
    read_only_before: str
    started: float
    position: Position = field(default_factory=Position)


def freeze(m: Migration, conn: Connection, spare: set[int], users: set[str]) -> Frozen:
    """read_only on, then the application's sessions ended (``users``: read before)."""
    before = str(value(conn, "SELECT @@GLOBAL.read_only"))
    m.save(frozen={"read_only": before})
    started = time.monotonic()
    execute(conn, "SET GLOBAL read_only = 1")
    kill_sessions(conn, m.source.database, spare | {int(conn.thread_id())}, users)
    return Frozen(conn, before, started, current_position(conn))


def application_users(conn: Connection, database: str) -> set[str]:
    return {user for user, _host in grants.accounts(conn, database)}


def kill_sessions(conn: Connection, database: str, spare: set[int], users: set[str]) -> list[int]:
    """End the sessions of the database's accounts and any session using the database."""
    killed = []
    for row in rows(conn, "SELECT ID, USER, DB, COMMAND FROM information_schema.PROCESSLIST"):
        ident_, user, db, command = int(row[0]), str(row[1]), row[2], str(row[3])
        if ident_ in spare or command in SKIP_COMMANDS or not (db == database or user in users):
            continue
        with suppress(pymysql.err.MySQLError):  # it may have ended by itself in between
            execute(conn, f"KILL CONNECTION {ident_}")
            killed.append(ident_)
    return killed


def unfreeze(m: Migration, conn: Connection | None = None) -> None:
    """read_only back to what it was before the freeze (and forget the freeze)."""
    frozen = m.checkpoint.get("frozen")
    if not frozen:
        return
    own = conn is None
    conn = conn or connect(m.source)
    try:
        before = "1" if str(frozen.get("read_only")).upper() in ("1", "ON") else "0"
        execute(conn, f"SET GLOBAL read_only = {before}")
    finally:
        if own:
            close(conn)
    m.save(frozen=None)


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


def writes_after_freeze(m: Migration, source: Connection, frozen: Position) -> list[str]:
    """What reached the database on the source after the freeze (READ ONLY ADMIN users)."""
    found = binlog.changes(source, m.source.database, frozen, current_position(source))
    if found is None:
        return []
    return sorted(found.tables) + found.statements


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
