"""The accounts that have privileges on the database, and those privileges.

An account the target does not have is created as on the source (``SHOW CREATE USER``: same
authentication, the password *hash* — WebSonic never sees a password of the application's);
an account the target already has is left as it is. Only the privileges on the migrated database
(its tables, columns and routines) are granted: global privileges are the target server's
owner's business and are never copied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress

import pymysql

from websonic.migration.mariadb.connect import Connection, execute, rows
from websonic.migration.mariadb.objects import renamed

NO_SUCH_GRANT = 1141
ACCOUNTS_SQL = """
SELECT GRANTEE FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = %s
UNION SELECT GRANTEE FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = %s
UNION SELECT GRANTEE FROM information_schema.COLUMN_PRIVILEGES WHERE TABLE_SCHEMA = %s"""
PROCS_SQL = "SELECT DISTINCT User, Host FROM mysql.procs_priv WHERE Db = %s"
GRANTEE = re.compile(r"^'(?P<user>(?:[^']|'')*)'@'(?P<host>(?:[^']|'')*)'$")
ON_OBJECT = re.compile(r" ON (?:(?:PROCEDURE|FUNCTION|PACKAGE(?: BODY)?) )?(?P<object>\S+) TO ")


def parse_grantee(text: str) -> tuple[str, str]:
    """``'app'@'%'`` -> ("app", "%")."""
    match = GRANTEE.match(text)
    if match is None:
        raise ValueError(f"not a grantee: {text!r}")
    return match["user"].replace("''", "'"), match["host"].replace("''", "'")


def account(user: str, host: str) -> str:
    """The account as SQL: 'user'@'host'."""
    return "'" + user.replace("'", "''") + "'@'" + host.replace("'", "''") + "'"


def accounts(conn: Connection, database: str) -> list[tuple[str, str]]:
    """The accounts with any privilege on ``database`` (sorted)."""
    found = {parse_grantee(str(r[0])) for r in rows(conn, ACCOUNTS_SQL, (database,) * 3)}
    with suppress(pymysql.err.MySQLError):  # no access to mysql.procs_priv: not seen
        found |= {(str(u), str(h)) for u, h in rows(conn, PROCS_SQL, (database,))}
    return sorted(found)


def database_grants(lines: Iterable[str], database: str) -> list[str]:
    """The SHOW GRANTS lines that grant something on ``database`` (pure)."""
    names = {f"`{database}`.", f"`{database.replace('_', chr(92) + '_')}`."}
    found = []
    for line in lines:
        match = ON_OBJECT.search(line)
        if match and any(match["object"].startswith(name) for name in names):
            found.append(line)
    return found


def show_grants(conn: Connection, user: str, host: str) -> list[str] | None:
    """The account's SHOW GRANTS lines, or None if the server has no such account."""
    try:
        return [str(r[0]) for r in rows(conn, f"SHOW GRANTS FOR {account(user, host)}")]
    except pymysql.err.MySQLError as exc:
        if exc.args and exc.args[0] == NO_SUCH_GRANT:
            return None
        raise


def copy_grants(source: Connection, target: Connection, source_db: str, target_db: str) -> int:
    """Create the missing accounts and grant their privileges on the database; how many."""
    copied = 0
    for user, host in accounts(source, source_db):
        lines = show_grants(source, user, host) or []
        if show_grants(target, user, host) is None:
            create = rows(source, f"SHOW CREATE USER {account(user, host)}")[0][0]
            execute(target, str(create))
        for line in database_grants(lines, source_db):
            execute(target, renamed(line, source_db, target_db))
        copied += 1
    return copied
