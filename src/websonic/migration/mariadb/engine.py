"""MariadbEngine: the Engine contract for MariaDB (and MySQL sources, offline).

See docs/migration-mariadb.md."""

from __future__ import annotations

import os
from typing import Any

import pymysql

from websonic.core.errors import ConnectionFailed, MigrationFailed, WebsonicError
from websonic.core.runner import Runner
from websonic.migration.engine import Outcome, ProgressSink, RunContext, Stopped
from websonic.migration.mariadb import catalog, closing, objects, online
from websonic.migration.mariadb.connect import (
    Connection,
    close,
    connect,
    connection_failed,
    execute,
    failed,
    session,
)
from websonic.migration.mariadb.context import Migration, source_identity
from websonic.migration.mariadb.cutover import read_only_sql
from websonic.migration.mariadb.marker import marked_source, unmark
from websonic.migration.mariadb.planning import Facts, build_plan
from websonic.migration.mariadb.probe import probe
from websonic.migration.mariadb.runs import run_offline, run_online
from websonic.migration.mariadb.verify import Sides, verify
from websonic.migration.plan import MigrateOptions, Plan, ServerInfo
from websonic.migration.report import VerifyReport
from websonic.migration.urls import DatabaseUrl

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class MariadbEngine:
    name = "mariadb"

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or Runner()
        self._probed: dict[str, ServerInfo] = {}

    def probe(self, url: DatabaseUrl) -> ServerInfo:
        try:
            with session(url) as conn:
                info = probe(conn, url.database)
        except pymysql.err.MySQLError as exc:
            raise connection_failed(url, exc) from None
        self._probed[url.masked()] = info
        return info

    def _info(self, url: DatabaseUrl) -> ServerInfo:
        return self._probed.get(url.masked()) or self.probe(url)

    def plan(self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions) -> Plan:
        source_info, target_info = self._info(source), self._info(target)
        try:
            with session(source) as src, session(target) as dst:
                facts = Facts(
                    source_info, target_info, source.database, target.database,
                    catalog.read_tables(src, source.database),
                    catalog.object_counts(src, source.database),
                    objects.count_objects(dst, target.database, catalog.MARKER),
                    marked_source(dst, target.database) == source_identity(src, source),
                    _free_bytes(target, target_info),
                    **(_closing_facts(src, source.database) if options.mode == "online" else {}),
                )  # fmt: skip
        except pymysql.err.MySQLError as exc:
            raise failed(exc, "Reading the catalogs", source, target) from None
        return build_plan(facts, options)

    def migrate(self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions,
                run: RunContext) -> Outcome:  # fmt: skip
        m = Migration(source, target, options, run)
        try:
            if options.mode == "online":
                return run_online(m, self.runner)
            return run_offline(m)
        except (WebsonicError, Stopped):
            raise
        except pymysql.err.MySQLError as exc:
            raise failed(exc, "The migration", source, target) from None

    def verify(self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions,
               progress: ProgressSink) -> VerifyReport:  # fmt: skip
        jobs = max(1, options.jobs)
        conns: list[Connection] = []
        try:
            conns += [connect(source) for _ in range(jobs)]
            conns += [connect(target) for _ in range(jobs)]
            sides = Sides(conns[:jobs], conns[jobs:], source.database, target.database)
            return verify(sides, options.chunk_rows, progress).expecting(options.target_accounts)
        except pymysql.err.MySQLError as exc:
            raise failed(exc, "The verification", source, target) from None
        finally:
            for conn in conns:
                close(conn)

    def abandon(self, source: DatabaseUrl, target: DatabaseUrl,
                checkpoint: dict[str, Any]) -> None:  # fmt: skip
        name = str(checkpoint.get("replication") or online.connection_name(target.database))
        try:
            with session(target) as conn:
                online.remove_replication(conn, name)
                unmark(conn, target.database)
            frozen = checkpoint.get("frozen")  # only a run of an older WebSonic (read_only)
            if frozen and not checkpoint.get("switched"):
                with session(source) as conn:
                    execute(conn, read_only_sql(frozen))
        except ConnectionFailed:
            raise
        except pymysql.err.MySQLError as exc:
            raise MigrationFailed(f"Cleaning up failed: {exc}") from None


def _closing_facts(conn: Connection, database: str) -> dict[str, Any]:
    """What the switch will revoke on the source database, and who it cannot stop."""
    return {
        "closing": closing.privilege_names(closing.write_grants(conn, database)),
        "open_writers": closing.open_writers(conn, database),
        "hidden_grants": not closing.sees_every_account(conn),
    }


def _free_bytes(url: DatabaseUrl, info: ServerInfo) -> int | None:
    """Free space of the target's data folder, when the server runs on this machine."""
    datadir = info.settings.get("datadir", "")
    if url.host not in LOCAL_HOSTS or not datadir:
        return None
    try:
        stats = os.statvfs(datadir)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize
