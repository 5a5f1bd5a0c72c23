"""Probe a server: version, database size and the settings and rights a migration depends on."""

from __future__ import annotations

import os
import shutil

from websonic.migration.plan import ServerInfo
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.urls import DatabaseUrl
from websonic.tools.postgres import server_version

PROBE = """
SELECT current_setting('server_version_num')::int, current_setting('server_version'),
       pg_database_size(current_database()),
       current_setting('wal_level'), current_setting('max_replication_slots'),
       current_setting('max_wal_senders'),
       (SELECT count(*) FROM pg_replication_slots),
       (SELECT count(*) FROM pg_stat_replication),
       r.rolsuper, r.rolreplication, r.rolcreaterole,
       current_setting('server_encoding'),
       CASE WHEN r.rolsuper THEN current_setting('data_directory') ELSE '' END
  FROM pg_roles r WHERE r.rolname = current_user
"""
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def probe(url: DatabaseUrl) -> ServerInfo:
    with pgconnect.connect(url) as conn:
        row = conn.execute(PROBE).fetchone()
        assert row is not None
        return info_from_row(row, local=url.host in LOCAL_HOSTS)


def info_from_row(row: tuple[object, ...], *, local: bool) -> ServerInfo:
    (
        num,
        text,
        size,
        wal_level,
        slots,
        senders,
        slots_used,
        senders_used,
        superuser,
        replication,
        createrole,
        encoding,
        data_dir,
    ) = row
    settings = {
        "wal_level": str(wal_level),
        "max_replication_slots": str(slots),
        "max_wal_senders": str(senders),
        "replication_slots_used": str(slots_used),
        "wal_senders_used": str(senders_used),
        "superuser": _flag(superuser),
        "replication": _flag(bool(replication) or bool(superuser)),
        "createrole": _flag(bool(createrole) or bool(superuser)),
        # PostgreSQL 15: only a superuser may CREATE SUBSCRIPTION
        "can_subscribe": _flag(superuser),
        "server_encoding": str(encoding),
        "free_disk_bytes": _free_disk(str(data_dir or ""), local),
    }
    return ServerInfo(
        "postgresql",
        server_version(int(num)),  # type: ignore[call-overload]
        str(text),
        int(size),  # type: ignore[call-overload]
        settings,
    )


def _flag(value: object) -> str:
    return "on" if value else "off"


def _free_disk(data_dir: str, local: bool) -> str:
    """Free bytes under the data directory when the server is on this machine; "" if unknown."""
    if not local or not data_dir or not os.path.isdir(data_dir):
        return ""
    try:
        return str(shutil.disk_usage(data_dir).free)
    except OSError:
        return ""
