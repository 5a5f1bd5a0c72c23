"""``PostgresEngine``: the Engine contract for PostgreSQL (see docs/migration-postgresql.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from websonic.core.errors import MigrationFailed
from websonic.core.runner import Runner
from websonic.migration.engine import Outcome, ProgressSink, RunContext
from websonic.migration.plan import MigrateOptions, Plan, ServerInfo
from websonic.migration.postgres import catalog, offline, online, planning, roles, schema
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres.bulk import Job
from websonic.migration.postgres.probe import probe
from websonic.migration.postgres.verify import verify
from websonic.migration.report import VerifyReport
from websonic.migration.urls import DatabaseUrl


@contextmanager
def database_errors(doing: str) -> Iterator[None]:
    """A PostgreSQL error as a MigrationFailed the CLI shows without a traceback."""
    try:
        yield
    except psycopg.OperationalError as exc:
        if exc.sqlstate is None or exc.sqlstate.startswith(("08", "57")):
            raise MigrationFailed(f"{doing}: the connection failed: {_first_line(exc)}") from None
        raise MigrationFailed(f"{doing}: PostgreSQL said: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise MigrationFailed(f"{doing}: PostgreSQL said: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def same_binary_format(source: ServerInfo, target: ServerInfo) -> bool:
    """Binary COPY only between the same major version and database encoding (binary text is
    not converted); text COPY (through UTF-8) otherwise."""
    encoding = "server_encoding"
    return source.version[0] == target.version[0] and source.settings.get(
        encoding
    ) == target.settings.get(encoding)


class PostgresEngine:
    name = "postgresql"

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or Runner()

    def probe(self, url: DatabaseUrl) -> ServerInfo:
        with database_errors("Probing the server"):
            return probe(url)

    def plan(self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions) -> Plan:
        with database_errors("Planning"):
            return planning.build_plan(self.sides(source, target), options)

    def sides(self, source: DatabaseUrl, target: DatabaseUrl) -> planning.Sides:
        with pgconnect.connect(source) as src, pgconnect.connect(target) as tgt:
            return planning.Sides(
                probe(source),
                probe(target),
                catalog.facts(src),
                catalog.facts(tgt),
                catalog.available_extensions(tgt),
                offline_identity(src),
                tuple(role.name for role in roles.missing_roles(src, tgt)),
            )

    def migrate(
        self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions, run: RunContext
    ) -> Outcome:
        before, after = probe(source), probe(target)
        job = Job(
            self.runner, source, target, options, run, binary=same_binary_format(before, after)
        )
        with database_errors("The migration stopped"):
            if options.mode == "online":
                return online.migrate(job)
            return offline.migrate(job)

    def verify(
        self,
        source: DatabaseUrl,
        target: DatabaseUrl,
        options: MigrateOptions,
        progress: ProgressSink,
    ) -> VerifyReport:
        with database_errors("Verifying"):
            return verify(
                source, target, jobs=options.jobs, chunk_rows=options.chunk_rows, progress=progress
            ).expecting(options.target_accounts)

    def abandon(self, source: DatabaseUrl, target: DatabaseUrl, checkpoint: dict[str, Any]) -> None:
        with database_errors("Abandoning the run"):
            online.abandon(source, target, checkpoint)


def offline_identity(conn: Any) -> str:
    try:
        return schema.source_identity(conn)
    except Exception:
        return ""
