"""Connections to the source and target: psycopg 3, errors a user can act on, no password shown.

The password only lives in memory (``url.secret()``-equivalent keyword arguments); an error
message names the server (``host:port``), the user and the database, never the password.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from websonic.core.errors import ConnectionFailed
from websonic.migration.urls import DatabaseUrl
from websonic.tools.postgres import Login

APPLICATION = "websonic"
#: what libpq/OpenSSL say when a server's certificate cannot be verified
UNVERIFIED = (
    "certificate verify failed",
    "root certificate file",
    "signature failure",
    "self-signed certificate",
    "unable to get local issuer",
    "does not match host name",
)
#: Our own sessions on the source carry this setting: the DDL guard lets them through.
GUARD_BYPASS = "websonic.migrating"
#: Session settings of the copy and the checks: the text form of every value the same on both
#: servers, and every row visible.
CANONICAL_TEXT = {
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    # a row-level security policy must fail a read, never silently hide rows from the copy
    "row_security": "off",
    # text COPY between databases of different encodings goes through UTF-8
    "client_encoding": "UTF8",
}


def login(url: DatabaseUrl) -> Login:
    params = url.connection_params()
    return Login(url.host, url.port, url.user, url.database, url.password, params)


def keywords(url: DatabaseUrl, **extra: Any) -> dict[str, Any]:
    """libpq keywords for ``url`` (password included: for connecting only; TLS, when used,
    verified: ``sslmode=verify-full`` unless the URL is ``tls_insecure``)."""
    options = url.options
    options.pop("ssh", None)
    options.setdefault("connect_timeout", "10")
    return {
        "host": url.host,
        "port": url.port,
        "user": url.user,
        "password": url.password,
        "dbname": url.database,
        "application_name": APPLICATION,
        **options,
        **extra,
    }


def conninfo(url: DatabaseUrl) -> str:
    """A libpq connection string (with the password) for ``CREATE SUBSCRIPTION`` only."""
    params = keywords(url)
    params.pop("application_name")
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def connect(url: DatabaseUrl, *, autocommit: bool = True, **extra: Any) -> psycopg.Connection:
    """A connection to ``url``; ``ConnectionFailed`` saying why if there is none."""
    try:
        return psycopg.connect(**keywords(url, **extra), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise connection_failed(url, str(exc)) from None


def connect_replication(url: DatabaseUrl) -> psycopg.Connection:
    """A logical replication connection (``replication=database``) for slot commands."""
    return connect(url, replication="database")


def connection_failed(url: DatabaseUrl, error: str) -> ConnectionFailed:
    where = f"the PostgreSQL server at {url.host}:{url.port}"
    text = error.replace(url.password, "********") if url.password else error
    lowered = text.lower()
    if any(sign in lowered for sign in UNVERIFIED):
        return ConnectionFailed(
            f"The TLS certificate of {where} could not be verified: {_last_line(text)}",
            hint="Give the CA that signed it (sslrootcert=/path/ca.pem in the URL, or "
            "sslrootcert=system for the system's CAs), or --tls-insecure to connect without "
            "checking it (not recommended).",
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        message = f"{where} refused the login of user {url.user!r}: wrong user or password."
    elif "does not exist" in lowered and "database" in lowered:
        message = f"{where} has no database {url.database!r}."
    elif "role" in lowered and "does not exist" in lowered:
        message = f"{where} has no user {url.user!r}."
    elif "pg_hba.conf" in lowered:
        message = f"{where} does not accept this login (pg_hba.conf): {_last_line(text)}"
    else:
        message = f"Cannot reach {where} (database {url.database!r}): {_last_line(text)}"
    return ConnectionFailed(message, hint="Check the URL (--from / --to) and the server.")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no answer"


def canonical(conn: psycopg.Connection) -> None:
    """Make value texts comparable across servers (dates, floats, bytea, money)."""
    for name, value in CANONICAL_TEXT.items():
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))


def bypass_guard(conn: psycopg.Connection) -> None:
    """Let this session's DDL through the source's DDL guard (and its read-only freeze)."""
    conn.execute(f"SET {GUARD_BYPASS} = 'on'")
    conn.execute("SET default_transaction_read_only = off")


def ident(*parts: str) -> sql.Composable:
    return sql.Identifier(*parts)


def qualified(name: str) -> sql.Composable:
    """``schema.table`` (as inventory names them) as a quoted identifier."""
    schema, _, table = name.partition(".")
    return sql.Identifier(schema, table)
