"""One consistent snapshot of the source shared by every copy worker, and its binlog position.

With several workers (as mydumper does) commits are held for a moment — ``BACKUP STAGE
BLOCK_COMMIT`` on MariaDB, lighter than ``FLUSH TABLES WITH READ LOCK``, which also waits for
running queries; FTWRL on MySQL — while each worker runs ``START TRANSACTION WITH CONSISTENT
SNAPSHOT``; then commits go on. MariaDB tells each worker which binlog position its snapshot
matches (``Binlog_snapshot_file``/``_position``): they must all be the same, and
``BINLOG_GTID_POS()`` turns it into the GTID position replication starts from. One worker needs
no lock at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from websonic.core.errors import MigrationFailed
from websonic.migration.mariadb.connect import Connection, close, connect, execute, rows, status
from websonic.migration.urls import DatabaseUrl

LOCK_WAIT_SECONDS = 20


@dataclass(frozen=True)
class Position:
    file: str = ""
    position: int = 0
    gtid: str = ""

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "position": self.position, "gtid": self.gtid}

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> Position:
        data = data or {}
        return cls(str(data.get("file", "")), int(data.get("position", 0) or 0),  # type: ignore[call-overload]
                   str(data.get("gtid", "")))  # fmt: skip

    @property
    def known(self) -> bool:
        return bool(self.file)


@dataclass
class Snapshot:
    connections: list[Connection]
    position: Position = field(default_factory=Position)

    def close(self) -> None:
        for conn in self.connections:
            close(conn)


def open_snapshot(url: DatabaseUrl, workers: int, *, mysql: bool = False) -> Snapshot:
    """``workers`` connections in one consistent snapshot of ``url`` (closed on failure)."""
    connections = [connect(url) for _ in range(max(1, workers))]
    try:
        if len(connections) == 1 and not mysql:
            position = _start(connections)
        else:
            position = _start_locked(url, connections, mysql)
    except BaseException:
        Snapshot(connections).close()
        raise
    return Snapshot(connections, position)


def _start_locked(url: DatabaseUrl, connections: list[Connection], mysql: bool) -> Position:
    lock = connect(url)
    try:
        execute(lock, f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
        if mysql:
            execute(lock, "FLUSH TABLES WITH READ LOCK")
            position = _start(connections)
            return _mysql_position(lock) if not position.known else position
        execute(lock, "BACKUP STAGE START")
        execute(lock, "BACKUP STAGE BLOCK_COMMIT")
        return _start(connections)
    finally:
        try:
            execute(lock, "UNLOCK TABLES" if mysql else "BACKUP STAGE END")
        finally:
            close(lock)


def _start(connections: list[Connection]) -> Position:
    positions = set()
    for conn in connections:
        execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        positions.add((status(conn, "Binlog_snapshot_file"),
                       status(conn, "Binlog_snapshot_position")))  # fmt: skip
    if len(positions) != 1:
        raise MigrationFailed(f"The workers' snapshots differ ({sorted(positions)}): commits "
                              "went on while they started; run the command again.")  # fmt: skip
    file, pos = positions.pop()
    if not file:
        return Position()
    gtid = rows(connections[0], "SELECT BINLOG_GTID_POS(%s, %s)", (file, int(pos)))[0][0]
    return Position(file, int(pos), str(gtid or ""))


def _mysql_position(conn: Connection) -> Position:
    found = rows(conn, "SHOW MASTER STATUS")
    return Position(str(found[0][0]), int(found[0][1])) if found else Position()


def current_position(conn: Connection) -> Position:
    """Where the source's binlog is now (file, position and GTID position)."""
    found = rows(conn, "SHOW MASTER STATUS")
    if not found:
        return Position()
    gtid = rows(conn, "SELECT @@GLOBAL.gtid_binlog_pos")[0][0]
    return Position(str(found[0][0]), int(found[0][1]), str(gtid or ""))
