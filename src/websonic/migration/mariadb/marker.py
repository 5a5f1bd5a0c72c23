"""The marker: a table in the target database while a migration into it is unfinished.

It is created before the first table and dropped as the very last step, after the verification
passed; ``db verify`` reports a target that still has it as a difference, so a half-copied
target never looks complete. It names the source (URL without password) so that a later run
knows the target's contents are its own unfinished work, not the customer's data.
"""

from __future__ import annotations

import datetime as dt

from websonic.migration.mariadb.catalog import MARKER
from websonic.migration.mariadb.connect import Connection, execute, rows
from websonic.migration.mariadb.sql import qualified


def mark(conn: Connection, database: str, source: str) -> None:
    name = qualified(database, MARKER)
    execute(conn, f"CREATE TABLE IF NOT EXISTS {name} (name VARCHAR(64) PRIMARY KEY, "
                  "value TEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                  "COMMENT 'WebSonic: this database is an unfinished migration'")  # fmt: skip
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    execute(conn, f"REPLACE INTO {name} VALUES ('source', %s), ('started', %s)", (source, now))


def marked_source(conn: Connection, database: str) -> str | None:
    """The source named by the target's marker (None: no marker)."""
    try:
        found = rows(conn, f"SELECT value FROM {qualified(database, MARKER)} "
                           "WHERE name = 'source'")  # fmt: skip
    except Exception:  # no marker table
        return None
    return str(found[0][0]) if found else ""


def unmark(conn: Connection, database: str) -> None:
    execute(conn, f"DROP TABLE IF EXISTS {qualified(database, MARKER)}")
