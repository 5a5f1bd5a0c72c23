"""Connections to MariaDB/MySQL: PyMySQL, utf8mb4 always, errors a user can act on.

Every session WebSonic opens speaks utf8mb4 (a 3-byte ``utf8`` connection turns emoji into
``?``), works in UTC (TIMESTAMP values are converted through the session time zone, and a named
zone is ambiguous in the hour a clock goes back) and in a known ``sql_mode`` (no backslash
surprises, ``NO_AUTO_VALUE_ON_ZERO`` so a row with id 0 keeps it). The password only lives in
memory; error messages name the server, the user and the database, never the password.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.connections import Connection

from websonic.core.errors import ConnectionFailed, MigrationFailed
from websonic.migration.urls import DatabaseUrl

SESSION = ("SET SESSION time_zone = '+00:00', "
           "sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', "
           "group_concat_max_len = 1073741824, net_read_timeout = 600, "
           "net_write_timeout = 600")  # fmt: skip
TRUE = ("1", "true", "on", "yes")
#: server error codes that mean the login was refused / the database is unknown
ACCESS_DENIED = {1044, 1045, 1698}
UNKNOWN_DATABASE = 1049


def connect(url: DatabaseUrl, *, database: bool = True, timeout: float | None = None) -> Connection:
    """A new autocommit connection to ``url`` (its database selected unless ``database=False``).

    ``timeout`` bounds every read (seconds); ConnectionFailed says why there is no connection.
    """
    try:
        conn = pymysql.connect(**_keywords(url, database, timeout))
    except (pymysql.err.OperationalError, OSError) as exc:  # OSError: a TLS file unreadable
        raise connection_failed(url, exc) from None
    with conn.cursor() as cursor:
        cursor.execute(SESSION)
    return conn


def _keywords(url: DatabaseUrl, database: bool, timeout: float | None) -> dict[str, Any]:
    options = url.options
    keywords: dict[str, Any] = {
        "host": url.host, "port": url.port, "user": url.user, "password": url.password,
        "database": url.database if database else None, "charset": "utf8mb4",
        "autocommit": True, "connect_timeout": float(options.get("connect_timeout", 10)),
        "max_allowed_packet": 1 << 30, "read_timeout": timeout, "program_name": "websonic",
    }  # fmt: skip
    if options.get("ssl", "").lower() in TRUE:
        keywords["ssl"] = tls_context(options)
    else:
        keywords["ssl_disabled"] = True  # PyMySQL would otherwise try TLS, unverified
    return keywords


def tls_context(options: dict[str, str]) -> ssl.SSLContext:
    """TLS for a URL that asks for it: the certificate (``ssl_ca``, else the system's CAs) and
    the host name checked unless ``ssl_verify=0`` (which only ``--tls-insecure`` gives)."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca"))
    if options.get("ssl_verify", "1").lower() not in TRUE:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if "ssl_cert" in options:
        context.load_cert_chain(options["ssl_cert"], options.get("ssl_key"))
    return context


def connection_failed(url: DatabaseUrl, exc: Exception) -> ConnectionFailed:
    where = f"the MariaDB/MySQL server at {url.host}:{url.port}"
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    text = mask(str(exc.args[1] if len(exc.args) > 1 else exc), url)
    if "certificate verify failed" in text.lower() or "signature failure" in text.lower():
        return ConnectionFailed(
            f"The TLS certificate of {where} could not be verified: {text}",
            hint="Give the CA that signed it (ssl_ca=/path/ca.pem in the URL), or --tls-insecure "
            "to connect without checking it (not recommended).",
        )
    if code in ACCESS_DENIED and "database" not in text.lower():
        message = f"{where} refused the login of user {url.user!r}: wrong user or password."
    elif code == UNKNOWN_DATABASE or (code in ACCESS_DENIED and "database" in text.lower()):
        message = f"{where} has no database {url.database!r} that user {url.user!r} may use."
    elif code in (2003, 2002, 2005, 2013):
        message = f"Cannot reach {where}: {text}"
    else:
        message = f"Cannot connect to {where} (database {url.database!r}): {text}"
    return ConnectionFailed(message, hint="Check the URL (--from / --to) and the server.")


def mask(text: str, *urls: DatabaseUrl) -> str:
    for url in urls:
        for secret in url.secrets():
            text = text.replace(secret, "********")
    return text


def failed(exc: Exception, doing: str, *urls: DatabaseUrl) -> MigrationFailed:
    """A database error while ``doing`` something, as a MigrationFailed without passwords."""
    return MigrationFailed(f"{doing} failed: {mask(str(exc), *urls)}")


def rows(conn: Connection, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def dict_rows(conn: Connection, sql: str, args: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def value(conn: Connection, sql: str, args: Any = None) -> Any:
    found = rows(conn, sql, args)
    return found[0][0] if found else None


def execute(conn: Connection, sql: str, args: Any = None) -> int:
    with conn.cursor() as cursor:
        return int(cursor.execute(sql, args))


def status(conn: Connection, name: str) -> str:
    found = rows(conn, "SHOW SESSION STATUS LIKE %s", (name,))
    return str(found[0][1]) if found else ""


@contextmanager
def session(url: DatabaseUrl, *, database: bool = True) -> Iterator[Connection]:
    conn = connect(url, database=database)
    try:
        yield conn
    finally:
        close(conn)


def close(conn: Connection) -> None:
    with suppress(Exception):  # already gone (killed, network): nothing left to close
        conn.close()
