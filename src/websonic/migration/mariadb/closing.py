"""After the switch: the migrated database on the source closed to the application's writes.

The accounts that hold write privileges on the database itself (``GRANT … ON db.*``), on its
tables or on their columns lose those privileges (``REVOKE``), and only those: their privileges
on other databases, their reads and the server's other accounts are not touched. Every revoke
is recorded as the ``GRANT`` that undoes it (the run's checkpoint, ``closed``, and the report).

MariaDB checks table and column privileges at every statement, but a session keeps the
database-level privileges of its *current* database from its ``USE`` (or its connection): a
session already using the database would go on writing. The cutover therefore kills the
sessions using the database after the revoke (``cutover.release``).

What cannot be closed per database — write privileges granted on ``*.*`` or on a pattern that
matches the database (``app\\_%``.*) — is named by ``open_writers``: the plan warns about those
accounts before the run, and the report repeats them. WebSonic's own account is left as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from websonic.migration.mariadb.connect import Connection, execute, rows, value
from websonic.migration.mariadb.grants import account
from websonic.migration.mariadb.probe import (
    database_privileges,
    global_privileges,
    grant_lines,
    has_privilege,
)
from websonic.migration.mariadb.sql import ident, qualified, string_literal

#: the privileges that let an account change a database's data, schema or objects
WRITES = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "CREATE VIEW",
    "TRIGGER",
    "EVENT",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "LOCK TABLES",
    "REFERENCES",
    "DELETE HISTORY",
)
_IN_WRITES = "PRIVILEGE_TYPE IN (" + ", ".join(f"'{p}'" for p in WRITES) + ")"
SCHEMA_SQL = f"""SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE
FROM information_schema.SCHEMA_PRIVILEGES WHERE %s LIKE TABLE_SCHEMA AND {_IN_WRITES}"""
TABLE_SQL = f"""SELECT GRANTEE, TABLE_NAME, PRIVILEGE_TYPE
FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = %s AND {_IN_WRITES}"""
COLUMN_SQL = f"""SELECT GRANTEE, TABLE_NAME, PRIVILEGE_TYPE, COLUMN_NAME
FROM information_schema.COLUMN_PRIVILEGES WHERE TABLE_SCHEMA = %s AND {_IN_WRITES}"""
GLOBAL_SQL = f"SELECT DISTINCT GRANTEE FROM information_schema.USER_PRIVILEGES WHERE {_IN_WRITES}"


@dataclass(frozen=True)
class Grant:
    """Privileges of one account on one object: ``INSERT, UPDATE`` on `db`.* or `db`.`t`."""

    user: str
    host: str
    privileges: tuple[str, ...]  # "INSERT", or "UPDATE (`a`, `b`)" for columns
    on: str  # `db`.* or `db`.`table`

    @property
    def account(self) -> str:
        """'user'@'host', or 'role' (a role: no host)."""
        return account(self.user, self.host) if self.host else string_literal(self.user)

    def revoke_sql(self) -> str:
        return f"REVOKE {', '.join(self.privileges)} ON {self.on} FROM {self.account}"

    def grant_sql(self) -> str:
        return f"GRANT {', '.join(self.privileges)} ON {self.on} TO {self.account}"


def exact_names(database: str) -> set[str]:
    """How a grant on exactly ``database`` is stored (``_`` escaped or not)."""
    return {database, database.replace("_", "\\_")}


def write_grants(conn: Connection, database: str) -> list[Grant]:
    """The write privileges held on ``database``, its tables and columns (ours left out)."""
    ours = current_account(conn)
    schema = [r for r in rows(conn, SCHEMA_SQL, (database,)) if r[1] in exact_names(database)]
    found = group((r[0], f"{ident(str(r[1]))}.*", str(r[2])) for r in schema)
    tables = rows(conn, TABLE_SQL, (database,))
    found += group((r[0], qualified(database, str(r[1])), str(r[2])) for r in tables)
    columns: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for grantee, table, privilege, column in rows(conn, COLUMN_SQL, (database,)):
        columns[(str(grantee), str(table), str(privilege))].append(ident(str(column)))
    found += group(
        (grantee, qualified(database, table), f"{privilege} ({', '.join(sorted(names))})")
        for (grantee, table, privilege), names in columns.items()
    )
    return [g for g in found if g.account != ours]


def group(found: Iterable[tuple[object, str, str]]) -> list[Grant]:
    """(grantee, object, privilege) rows -> one Grant per account and object, sorted (pure)."""
    held: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for grantee, on, privilege in found:
        held[(*grantee_of(str(grantee)), on)].append(privilege)
    order = {p: i for i, p in enumerate(WRITES)}
    return [
        Grant(user, host, tuple(sorted(set(named), key=lambda p: (order.get(p, 99), p))), on)
        for (user, host, on), named in sorted(held.items())
    ]


def grantee_of(text: str) -> tuple[str, str]:
    """``'o'k'@'%'`` as information_schema shows it (quotes not doubled) -> ("o'k", "%")."""
    user, _, host = text.removeprefix("'").removesuffix("'").rpartition("'@'")
    return user, host


def privilege_names(grants: Iterable[Grant]) -> list[str]:
    """The privileges ``grants`` hold, in ``WRITES`` order, columns folded in (pure)."""
    names = {p.split(" (")[0] for g in grants for p in g.privileges}
    return [p for p in WRITES if p in names]


def users(grants: Iterable[Grant]) -> set[str]:
    """The user names of the accounts in ``grants`` (pure)."""
    return {g.user for g in grants}


def open_writers(conn: Connection, database: str) -> list[str]:
    """The accounts (not ours) whose writes to ``database`` cannot be closed per database: write
    privileges on ``*.*`` or on a database pattern that matches it."""
    found = {str(r[0]) for r in rows(conn, GLOBAL_SQL)}
    found |= {
        str(r[0]) for r in rows(conn, SCHEMA_SQL, (database,)) if r[1] not in exact_names(database)
    }
    accounts = {account(*grantee_of(grantee)) for grantee in found}
    return sorted(accounts - {current_account(conn)})


def sees_every_account(conn: Connection) -> bool:
    """Whether information_schema shows the other accounts' privileges to this one (it shows
    only its own without SELECT on the ``mysql`` database)."""
    lines = grant_lines(conn)
    held = global_privileges(lines) | database_privileges(lines, "mysql")
    return has_privilege(held, "SELECT", (0,))


def current_account(conn: Connection) -> str:
    user, _, host = str(value(conn, "SELECT CURRENT_USER()")).rpartition("@")
    return account(user, host)


def close(conn: Connection, grants: list[Grant], done: list[str]) -> list[str]:
    """Revoke ``grants``; each one revoked is appended to ``done`` as the GRANT that undoes it
    (so a failure half-way still records exactly what was revoked). The REVOKEs run."""
    revoked = []
    for grant in grants:
        execute(conn, grant.revoke_sql())
        done.append(grant.grant_sql())
        revoked.append(grant.revoke_sql())
    return revoked


def reopen_notes(database: str, closed: list[str], left_open: list[str]) -> list[str]:
    """What the report says about the closed database (pure)."""
    if closed:
        notes = [
            f"The database {database!r} on the source is closed to the application's "
            "writes: its accounts' write privileges on it were revoked at the switch. To "
            "reopen it (after pointing the application back at it), run on the source:",
            *(f"{statement};" for statement in closed),
        ]
    else:
        notes = [
            f"No account held write privileges on {database!r} itself: nothing on the "
            "source was closed."
        ]
    if left_open:
        notes.append(
            f"These accounts can still write to {database!r} on the source (write "
            f"privileges on *.* or on a database pattern): {', '.join(left_open)}."
        )
    return notes
