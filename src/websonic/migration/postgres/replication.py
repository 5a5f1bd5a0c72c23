"""Logical replication plumbing: the publication, the slot that exports the snapshot, the
subscription on the target, the lag, and their removal.

Names are per run (``websonic_<run>``) so that an abandoned run's leftovers are found again.
The publication is created before the slot: pgoutput looks publications up as of each change,
so changes decoded before it existed would fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql

from websonic.core.errors import MigrationFailed
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.catalog import Table
from websonic.migration.urls import DatabaseUrl


@dataclass(frozen=True)
class Names:
    slot: str
    publication: str
    subscription: str

    @classmethod
    def of_run(cls, run_id: int | None) -> Names:
        name = f"websonic_{run_id or 0}"
        return cls(name, name, name)


@dataclass(frozen=True)
class Slot:
    name: str
    lsn: str
    snapshot: str


def create_publication(conn: psycopg.Connection, name: str, tables: list[Table]) -> None:
    published = sorted({t.partitioned_root or t.qualified for t in tables if t.kind == "r"})
    idents = [pgconnect.qualified(n) for n in published]
    if idents:
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(name), sql.SQL(", ").join(idents)
            )
        )
    else:
        conn.execute(sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name)))


@contextmanager
def exporting_slot(source: DatabaseUrl, name: str) -> Iterator[Slot]:
    """Create the slot on a replication connection; its snapshot lives while the block runs."""
    conn = pgconnect.connect_replication(source)
    try:
        command = f"CREATE_REPLICATION_SLOT \"{name}\" LOGICAL pgoutput (SNAPSHOT 'export')"
        result = conn.pgconn.exec_(command.encode())
        if result.status != pq.ExecStatus.TUPLES_OK:
            message = result.error_message.decode(errors="replace").strip()
            raise MigrationFailed(f"Creating the replication slot {name} failed: {message}")
        slot, lsn, snapshot = (_value(result, 0, i) for i in range(3))
        yield Slot(slot, lsn, snapshot)
    finally:
        conn.close()


def _value(result: pq.abc.PGresult, row: int, column: int) -> str:
    value = result.get_value(row, column)
    return bytes(value).decode() if value is not None else ""


def create_subscription(target: psycopg.Connection, source: DatabaseUrl, names: Names) -> None:
    """A disabled subscription on the slot we made (no copy: the bulk copy did that)."""
    statement = sql.SQL(
        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, "
        "slot_name = {}, copy_data = false, enabled = false, synchronous_commit = on)"
    ).format(
        sql.Identifier(names.subscription),
        sql.Literal(pgconnect.conninfo(source)),
        sql.Identifier(names.publication),
        sql.Literal(names.slot),
    )
    try:
        target.execute(statement)
    except psycopg.OperationalError as exc:
        text = str(exc).replace(source.password, "********") if source.password else str(exc)
        raise MigrationFailed(
            f"The target server cannot reach the source at {source.host}:{source.port} for "
            f"replication: {text.strip().splitlines()[-1] if text.strip() else 'no answer'}",
            hint="Online mode needs the TARGET server to connect to the source (firewall, "
            "pg_hba.conf 'replication' and the source's listen_addresses).",
        ) from None


def enable(target: psycopg.Connection, names: Names) -> None:
    target.execute(
        sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(names.subscription))
    )


LAG = """
SELECT pg_current_wal_lsn(), confirmed_flush_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, active
  FROM pg_replication_slots WHERE slot_name = %s
"""


def lag(source: psycopg.Connection, slot: str) -> int:
    return lag_and_activity(source, slot)[0]


def lag_and_activity(source: psycopg.Connection, slot: str) -> tuple[int, bool]:
    """(bytes the target is behind, whether the subscription's worker reads the slot now)."""
    row = source.execute(LAG, (slot,)).fetchone()
    if row is None:
        raise MigrationFailed(f"The replication slot {slot} is gone from the source.")
    return max(0, int(row[2] or 0)), bool(row[3])


def confirmed(source: psycopg.Connection, slot: str, lsn: str) -> bool:
    row = source.execute(
        "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
        (lsn, slot),
    ).fetchone()
    return bool(row and row[0])


def apply_error(target: psycopg.Connection, names: Names) -> str | None:
    """The subscription's last apply error in the target's log, if it keeps failing."""
    row = target.execute(
        "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = %s",
        (names.subscription,),
    ).fetchone()
    return None if not row or not row[0] else f"{row[0]} apply error(s)"


def drop_subscription(target: psycopg.Connection, names: Names) -> None:
    """Disable, detach from the slot, drop (the slot is dropped on the source separately)."""
    exists = target.execute(
        "SELECT 1 FROM pg_subscription WHERE subname = %s", (names.subscription,)
    ).fetchone()
    if not exists:
        return
    ident = sql.Identifier(names.subscription)
    target.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    target.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    target.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))


def drop_source_side(source: psycopg.Connection, names: Names) -> None:
    """Drop the slot (waiting for its walsender to let go) and the publication."""
    for _ in range(50):
        row = source.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (names.slot,)
        ).fetchone()
        if row is None:
            break
        if row[0] is not None:
            source.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        try:
            source.execute("SELECT pg_drop_replication_slot(%s)", (names.slot,))
            break
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)
    source.execute(
        sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(names.publication))
    )
