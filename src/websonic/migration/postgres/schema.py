"""The schema: pre-data from the snapshot (pg_dump piped into psql through the runner, no file
in between), post-data built in parallel waves, the target emptied with ``--force``, and the
marker that says the target is not complete yet.

The marker is a table ``websonic.migration_marker`` on the target: created before anything is
copied, dropped as the very last step. Verify and the inventory ignore the ``websonic`` schema;
a target that still has it is an unfinished migration, never a complete copy.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from websonic.core.errors import MigrationFailed
from websonic.core.runner import MASK, Runner
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.catalog import OWN_SCHEMA, marker
from websonic.migration.urls import DatabaseUrl
from websonic.tools import postgres as pgtools

ALREADY_DONE = (
    psycopg.errors.DuplicateTable,
    psycopg.errors.DuplicateObject,
    psycopg.errors.InvalidTableDefinition,
)


def dump(runner: Runner, source: DatabaseUrl, section: str, snapshot: str | None) -> str:
    command = pgtools.pg_dump(
        pgconnect.login(source), section=section, snapshot=snapshot, exclude_schemas=[OWN_SCHEMA]
    )
    text = runner.run(command, error=f"pg_dump --section={section} of the source failed").stdout
    if MASK in text and source.password:
        raise MigrationFailed(
            "The schema text contains the source's password (masked as ********), so it "
            "cannot be copied faithfully.",
            hint="Use a password that does not appear in the schema (names, defaults, comments).",
        )
    return text


def apply_pre_data(runner: Runner, target: DatabaseUrl, script: str) -> None:
    command = pgtools.psql_apply(pgconnect.login(target), script)
    runner.run(command, error="Creating the schema on the target failed (psql)")


# --- post-data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostData:
    preamble: str
    entries: list[pgtools.DumpEntry]

    @classmethod
    def parse(cls, text: str) -> PostData:
        """The dump's entries, without our own DDL guard (event triggers are post-data)."""
        preamble, entries = pgtools.split_dump(text)
        ours = [e for e in entries if e.kind == "EVENT TRIGGER" and e.name.startswith("websonic_")]
        return cls(preamble, [e for e in entries if e not in ours])

    def order(self) -> tuple[list[list[int]], list[int]]:
        return pgtools.post_data_order(self.entries)


DEADLOCK_RETRIES = 5


def build_entry(conn: psycopg.Connection, post: PostData, index: int, resumed: bool) -> None:
    """Run one post-data entry. Two foreign keys built at once between the same tables can
    deadlock (each locks both tables): PostgreSQL then cancels one, which is simply retried."""
    for attempt in range(DEADLOCK_RETRIES):
        try:
            _build(conn, post, index, resumed)
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == DEADLOCK_RETRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _build(conn: psycopg.Connection, post: PostData, index: int, resumed: bool) -> None:
    entry = post.entries[index]
    try:
        conn.execute((post.preamble + "\n" + entry.sql).encode())
    except psycopg.errors.DeadlockDetected:
        raise
    except ALREADY_DONE:
        if not resumed:
            raise
    except psycopg.Error as exc:
        raise MigrationFailed(
            f"Building {entry.kind} {entry.name} on the target failed: {exc}", hint=entry.sql[:500]
        ) from None


# --- emptying and the marker ------------------------------------------------------------------

USER_SCHEMAS = """
SELECT nspname FROM pg_namespace
 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%'
"""


def empty_database(conn: psycopg.Connection) -> None:
    """Drop everything in the target database (``--force``, or our own unfinished copy)."""
    with conn.transaction():
        for (name,) in conn.execute(
            "SELECT subname FROM pg_subscription s JOIN pg_database d "
            "ON d.oid = s.subdbid WHERE d.datname = current_database()"
        ):
            raise MigrationFailed(f"The target has a subscription {name!r}; drop it first.")
        for (name,) in conn.execute("SELECT evtname FROM pg_event_trigger").fetchall():
            conn.execute(sql.SQL("DROP EVENT TRIGGER {}").format(sql.Identifier(name)))
        for (name,) in conn.execute("SELECT pubname FROM pg_publication").fetchall():
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
        conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
        for (name,) in conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'"):
            conn.execute(
                sql.SQL("DROP EXTENSION IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )
        for (name,) in conn.execute(USER_SCHEMAS).fetchall():
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
        conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
        conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        conn.execute("COMMENT ON SCHEMA public IS 'standard public schema'")


MARKER_TABLE = sql.SQL(
    "CREATE SCHEMA IF NOT EXISTS websonic; "
    "CREATE TABLE IF NOT EXISTS websonic.migration_marker (run bigint, source text, state text, "
    "since timestamptz DEFAULT now()); "
    "COMMENT ON TABLE websonic.migration_marker IS "
    "'An unfinished WebSonic migration: this database is NOT a complete copy yet.'"
)


def mark_incomplete(conn: psycopg.Connection, run_id: int | None, source: str) -> None:
    with conn.transaction():
        conn.execute(MARKER_TABLE)
        conn.execute("DELETE FROM websonic.migration_marker")
        conn.execute(
            "INSERT INTO websonic.migration_marker (run, source, state) VALUES (%s, %s, 'copying')",
            (run_id, source),
        )


def mark_complete(conn: psycopg.Connection) -> None:
    conn.execute("DROP SCHEMA IF EXISTS websonic CASCADE")


def has_marker(conn: psycopg.Connection) -> bool:
    return marker(conn) is not None


def source_identity(conn: psycopg.Connection) -> str:
    """Which source database a marker belongs to (system identifier and database name)."""
    row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    return json.dumps({"system": row[0] if row else "", "database": conn.info.dbname})
