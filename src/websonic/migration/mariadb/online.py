"""Change capture: the target replicates from the source with MariaDB's own GTID replication.

The target gets a named replication connection (``websonic_<database>``, so a replication the
target server may already run is not touched), starts at the snapshot's GTID position
(``gtid_slave_pos``), and applies only the migrated database: ``replicate_wild_do_table =
'db.%'`` on that connection (for row events it checks each table's own database, unlike
``replicate_do_db`` which looks at the session's default database), plus
``replicate_rewrite_db`` when the target database has another name. The target server itself
connects to the source with the source URL's host, port, user, password and SSL options: it must
be able to reach that address. ``CHANGE MASTER`` stores the password in the target's
``master.info`` until ``RESET SLAVE ALL`` (done at the end, and by ``abandon``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pymysql

from websonic.core.errors import MigrationFailed
from websonic.migration.mariadb import binlog
from websonic.migration.mariadb.connect import Connection, dict_rows, execute, rows, session
from websonic.migration.mariadb.context import Migration
from websonic.migration.mariadb.snapshot import Position, current_position
from websonic.migration.mariadb.sql import string_literal
from websonic.migration.report import Difference
from websonic.migration.urls import DatabaseUrl

IO_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.3
NO_SUCH_CONNECTION = (1617, 1199)  # unknown master connection / not configured
TRUE = ("1", "true", "on", "yes")


def connection_name(database: str) -> str:
    return f"websonic_{database}"[:64]


def change_master_sql(name: str, source: DatabaseUrl) -> str:
    """``CHANGE MASTER 'name' TO …`` for the source URL (password included: never log it)."""
    options = source.options
    parts = [f"MASTER_HOST = {string_literal(source.host)}", f"MASTER_PORT = {int(source.port)}",
             f"MASTER_USER = {string_literal(source.user)}",
             f"MASTER_PASSWORD = {string_literal(source.password)}",
             "MASTER_USE_GTID = slave_pos", "MASTER_CONNECT_RETRY = 5"]  # fmt: skip
    if options.get("ssl", "").lower() in TRUE or "ssl_ca" in options:
        parts.append("MASTER_SSL = 1")
    for key, option in (("ssl_ca", "MASTER_SSL_CA"), ("ssl_cert", "MASTER_SSL_CERT"),
                        ("ssl_key", "MASTER_SSL_KEY")):  # fmt: skip
        if key in options:
            parts.append(f"{option} = {string_literal(options[key])}")
    if options.get("ssl_verify", "").lower() in TRUE:
        parts.append("MASTER_SSL_VERIFY_SERVER_CERT = 1")
    return f"CHANGE MASTER {string_literal(name)} TO " + ", ".join(parts)


def wild_pattern(database: str) -> str:
    """``db.%`` with the wildcards of the name escaped."""
    return database.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + ".%"


def filter_statements(name: str, source_db: str, target_db: str) -> list[str]:
    quoted = "`" + name.replace("`", "``") + "`"
    found = [f"SET GLOBAL {quoted}.replicate_wild_do_table = "
             f"{string_literal(wild_pattern(target_db))}"]  # fmt: skip
    if source_db != target_db:
        found.append(f"SET GLOBAL {quoted}.replicate_rewrite_db = "
                     f"{string_literal(f'{source_db}->{target_db}')}")  # fmt: skip
    return found


def start_replication(conn: Connection, m: Migration, name: str, gtid: str) -> None:
    """Set up and start the target's replication from the snapshot's GTID position."""
    remove_replication(conn, name)
    execute(conn, f"SET GLOBAL gtid_slave_pos = {string_literal(gtid)}")
    try:
        execute(conn, change_master_sql(name, m.source))
    except pymysql.err.MySQLError as exc:
        raise MigrationFailed(f"Setting up replication on the target failed: "
                              f"{_masked(exc, m.source)}") from None  # fmt: skip
    for statement in filter_statements(name, m.source.database, m.target.database):
        execute(conn, statement)
    execute(conn, f"START SLAVE {string_literal(name)}")


def _masked(exc: Exception, url: DatabaseUrl) -> str:
    text = str(exc)
    for secret in url.secrets():
        text = text.replace(secret, "********")
    return text


def remove_replication(conn: Connection, name: str) -> None:
    """STOP SLAVE and RESET SLAVE ALL (the stored password goes with it); quiet if absent."""
    for statement in (f"STOP SLAVE {string_literal(name)}",
                      f"RESET SLAVE {string_literal(name)} ALL"):  # fmt: skip
        try:
            execute(conn, statement)
        except pymysql.err.MySQLError as exc:
            if not exc.args or exc.args[0] not in NO_SUCH_CONNECTION:
                raise


def replica_status(conn: Connection, name: str) -> dict[str, Any] | None:
    try:
        found = dict_rows(conn, f"SHOW SLAVE {string_literal(name)} STATUS")
    except pymysql.err.MySQLError as exc:
        if exc.args and exc.args[0] in NO_SUCH_CONNECTION:
            return None
        raise
    return found[0] if found else None


def lag_bytes(logs: Sequence[tuple[str, int]], source: tuple[str, int],
              applied: tuple[str, int]) -> int:  # fmt: skip
    """Bytes of binlog the target has still to apply (pure): from ``applied`` (file, position)
    to ``source`` (file, position), across the files listed with their sizes."""
    names = [name for name, _ in logs]
    if applied[0] == source[0]:
        return max(0, source[1] - applied[1])
    if applied[0] not in names or source[0] not in names:
        return max(0, source[1])
    first, last = names.index(applied[0]), names.index(source[0])
    between = sum(size for _, size in logs[first + 1 : last])
    return max(0, logs[first][1] - applied[1]) + between + source[1]


def check_replica(status: dict[str, Any] | None, source: DatabaseUrl, stalled: float) -> None:
    """Raise if replication broke or the target cannot reach the source (for ``stalled`` s)."""
    if status is None:
        raise MigrationFailed(
            "The target's replication connection is gone (was it reset?).",
            hint="Abandon the run (websonic db abandon) and start again.",
        )
    if status.get("Last_SQL_Errno"):
        raise MigrationFailed(
            f"Replication on the target stopped: {status['Last_SQL_Error']}",
            hint="Fix the cause, then run the same command to resume.",
        )
    if status.get("Slave_IO_Running") != "Yes" and stalled >= IO_GRACE_SECONDS:
        error = status.get("Last_IO_Error") or "it does not connect"
        raise MigrationFailed(
            f"The target server cannot replicate from the source at {source.host}:"
            f"{source.port}: {_masked(Exception(error), source)}",
            hint="The target server itself connects to the source's address as given in --from "
            "(not through WebSonic): open that port to it, or give an address it can reach.",
        )  # fmt: skip


def catch_up(m: Migration, target: Connection, source: Connection, name: str) -> None:
    """Wait until the target is at most ``max_lag_bytes`` behind; refuse DDL on the way."""
    stalled_since: float | None = None
    scanned = Position.from_json(m.checkpoint.get("scanned") or m.checkpoint.get("snapshot"))
    while True:
        status = replica_status(target, name)
        if _stopped_cleanly(status):
            reattach(target, name)
            status = replica_status(target, name)
        running = status is not None and status.get("Slave_IO_Running") == "Yes"
        stalled_since = None if running else (stalled_since or time.monotonic())
        check_replica(status, m.source, time.monotonic() - stalled_since if stalled_since else 0)
        now = current_position(source)
        scanned = refuse_ddl(m, source, scanned, now)
        lag = _lag(source, status or {}, now)
        behind = (status or {}).get("Seconds_Behind_Master")
        m.show("catch-up", f"{behind if behind is not None else '?'} s behind", lag_bytes=lag)
        if running and lag <= m.options.max_lag_bytes and behind is not None and behind <= 1:
            return
        m.run.check_stop()
        time.sleep(POLL_SECONDS)


def _stopped_cleanly(status: dict[str, Any] | None) -> bool:
    """Both threads stopped without an error (a STOP SLAVE, an UNTIL position reached)."""
    return (status is not None and status.get("Slave_SQL_Running") == "No"
            and status.get("Slave_IO_Running") == "No" and not status.get("Last_IO_Errno")
            and not status.get("Last_SQL_Errno"))  # fmt: skip


def _lag(source: Connection, status: dict[str, Any], now: Position) -> int:
    logs = [(str(r[0]), int(r[1])) for r in rows(source, "SHOW BINARY LOGS")]
    applied = (str(status.get("Relay_Master_Log_File", "")),
               int(status.get("Exec_Master_Log_Pos") or 0))  # fmt: skip
    return lag_bytes(logs, (now.file, now.position), applied)


def refuse_ddl(m: Migration, source: Connection, start: Position, end: Position) -> Position:
    """Raise if the source's binlog shows DDL on the database between two positions."""
    if not start.known or not end.known or (start.file, start.position) == (end.file, end.position):
        return end if end.known else start
    found = binlog.changes(source, m.source.database, start, end)
    if found is not None and found.statements:
        raise DdlRefused(found.statements[0])
    m.checkpoint["scanned"] = end.to_json()
    return end


class DdlRefused(MigrationFailed):
    """A schema change on the source during an online migration."""

    def __init__(self, statement: str) -> None:
        super().__init__(
            f"A schema change ran on the source during the online migration: "
            f"{statement[:300]!r}. WebSonic refuses to switch (the copy's schema would not "
            "match, or the change could be lost).",
            hint="The source was left writable. Abandon this run (websonic db abandon RUN "
            "--from … --to …) and migrate again: the new schema is copied then.",
        )


def wait_stopped(target: Connection, name: str, timeout: float = 30.0) -> None:
    """Wait until the replication threads stopped (after an UNTIL position was reached)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = replica_status(target, name) or {}
        if status.get("Slave_SQL_Running") == "No" and status.get("Slave_IO_Running") == "No":
            return
        time.sleep(0.02)
    raise MigrationFailed("The target's replication did not stop at the verification position.")


def reattach(target: Connection, name: str) -> None:
    """After a restart: make sure the replication connection runs (it survives WebSonic)."""
    status = replica_status(target, name)
    if status is not None and status.get("Slave_SQL_Running") != "Yes":
        execute(target, f"START SLAVE {string_literal(name)}")


def ensure_replicating(m: Migration, name: str) -> None:
    with session(m.target) as target:
        reattach(target, name)


def late_writes(what: list[str]) -> Difference:
    """Writes that reached the source after the freeze: they are not on the target."""
    return Difference(
        "write after the freeze",
        ", ".join(what[:10]),
        "written on the source after the switch (is an application instance still using it?)",
        None,
    )
