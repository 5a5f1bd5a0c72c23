"""Roles the database needs on the target (roles are cluster-wide: they are not in a dump).

Migrated: every role that owns an object of the database or is named in one of its grants
(``pg_shdepend``), and the database's owner, when the target has no role of that name: created
with the same attributes (LOGIN, CREATEDB, …, connection limit, expiry) and, when the source
user may read it (superuser), the same password verifier (a SCRAM hash, never a clear password),
so the application logs in to the target with its old password. Memberships between such roles
are granted too. Not migrated: roles the database does not use, a role's settings (``ALTER ROLE
… SET``), and anything about a role that already exists on the target (left as it is).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

USED_ROLES = """
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text
  FROM pg_roles r
 WHERE r.oid IN (SELECT d.refobjid FROM pg_shdepend d
                  WHERE d.refclassid = 'pg_authid'::regclass AND d.dbid =
                        (SELECT oid FROM pg_database WHERE datname = current_database())
                 UNION SELECT datdba FROM pg_database WHERE datname = current_database())
   AND r.rolname NOT LIKE 'pg\\_%'
 ORDER BY r.rolname
"""
VERIFIERS = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)"
MEMBERSHIPS = """
SELECT g.rolname, m.rolname, a.admin_option FROM pg_auth_members a
  JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
 WHERE g.rolname = ANY(%s) OR m.rolname = ANY(%s)
"""
FLAGS = ("SUPERUSER", "INHERIT", "CREATEROLE", "CREATEDB", "LOGIN", "REPLICATION", "BYPASSRLS")


@dataclass(frozen=True)
class Role:
    name: str
    flags: tuple[bool, ...]
    connection_limit: int
    valid_until: str | None
    verifier: str | None = None

    def create(self) -> sql.Composed:
        words = [("" if on else "NO") + flag for flag, on in zip(FLAGS, self.flags, strict=True)]
        statement = sql.SQL("CREATE ROLE {} WITH {} CONNECTION LIMIT {}").format(
            sql.Identifier(self.name), sql.SQL(" ".join(words)), sql.Literal(self.connection_limit)
        )
        if self.verifier:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(self.verifier))
        if self.valid_until:
            statement += sql.SQL(" VALID UNTIL {}").format(sql.Literal(self.valid_until))
        return statement


def used_roles(source: psycopg.Connection) -> list[Role]:
    rows = source.execute(USED_ROLES).fetchall()
    verifiers = _verifiers(source, [row[0] for row in rows])
    return [Role(row[0], tuple(row[1:8]), row[8], row[9], verifiers.get(row[0])) for row in rows]


def _verifiers(source: psycopg.Connection, names: list[str]) -> dict[str, str]:
    try:
        with source.transaction():
            return {n: p for n, p in source.execute(VERIFIERS, (names,)).fetchall() if p}
    except psycopg.errors.InsufficientPrivilege:
        return {}


def missing_roles(source: psycopg.Connection, target: psycopg.Connection) -> list[Role]:
    existing = {name for (name,) in target.execute("SELECT rolname FROM pg_roles").fetchall()}
    return [role for role in used_roles(source) if role.name not in existing]


def create_roles(source: psycopg.Connection, target: psycopg.Connection) -> list[str]:
    """Create the roles the database uses that the target lacks; their names."""
    roles = missing_roles(source, target)
    names = [role.name for role in roles]
    for role in roles:
        target.execute(role.create())
    if names:
        _grant_memberships(source, target, names)
    return names


def _grant_memberships(
    source: psycopg.Connection, target: psycopg.Connection, names: list[str]
) -> None:
    existing = {name for (name,) in target.execute("SELECT rolname FROM pg_roles").fetchall()}
    for group, member, admin in source.execute(MEMBERSHIPS, (names, names)).fetchall():
        if group in existing and member in existing:
            option = sql.SQL(" WITH ADMIN OPTION" if admin else "")
            target.execute(
                sql.SQL("GRANT {} TO {}{}").format(
                    sql.Identifier(group), sql.Identifier(member), option
                )
            )
