"""The plan: tables, chunks, object counts, an estimate and every blocker (pure functions).

The estimate assumes what was measured on a 2-core machine between two local PostgreSQL 15
servers: table data at ``COPY_BYTES_PER_SECOND`` per copy job (at most ``EFFECTIVE_JOBS`` jobs
help on 2 cores), index builds at ``INDEX_BYTES_PER_SECOND`` (the source's index sizes), plus
a fixed ``OVERHEAD_SECONDS`` for the schema, sequences and ANALYZE; online mode adds the
catch-up, which depends on the write load and is not estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

from websonic.migration.plan import Blocker, MigrateOptions, Plan, ServerInfo, TablePlan
from websonic.migration.postgres.catalog import Facts, Table
from websonic.migration.postgres.chunks import chunk_count

COPY_BYTES_PER_SECOND = 100e6
INDEX_BYTES_PER_SECOND = 40e6
EFFECTIVE_JOBS = 2
OVERHEAD_SECONDS = 2.0
DISK_MARGIN = 1.2  # the copy needs its size plus room for index builds and WAL


@dataclass(frozen=True)
class Sides:
    """Everything the plan is decided from."""

    source: ServerInfo
    target: ServerInfo
    source_facts: Facts
    target_facts: Facts
    available: dict[str, list[str]]  # extensions the target server can install
    source_identity: str = ""
    missing_roles: tuple[str, ...] = ()  # roles the database uses that the target lacks


def estimate_seconds(facts: Facts, jobs: int) -> float:
    effective = max(1, min(jobs, EFFECTIVE_JOBS))
    data = sum(t.bytes for t in facts.tables if t.kind == "r")
    return (
        OVERHEAD_SECONDS
        + data / (COPY_BYTES_PER_SECOND * effective)
        + facts.index_bytes / (INDEX_BYTES_PER_SECOND * effective)
    )


def table_plans(tables: list[Table], chunk_rows: int) -> list[TablePlan]:
    return [
        TablePlan(t.qualified, t.rows, t.bytes, t.primary_key, chunk_count(t.rows, chunk_rows))
        for t in tables
        if t.kind == "r"
    ]


def build_plan(sides: Sides, options: MigrateOptions) -> Plan:
    facts = sides.source_facts
    objects = {**facts.objects, "large objects": facts.large_objects}
    return Plan(
        engine="postgresql",
        mode=options.mode,
        source="",
        target="",
        source_version=sides.source.version_text,
        target_version=sides.target.version_text,
        tables=table_plans(facts.tables, options.chunk_rows),
        blockers=blockers(sides, options),
        objects=objects,
        estimated_seconds=round(estimate_seconds(facts, options.jobs), 1),
    )


def blockers(sides: Sides, options: MigrateOptions) -> list[Blocker]:
    found = [
        *_versions(sides),
        *_roles(sides),
        *_encodings(sides),
        *_target_state(sides, options),
        *_extensions(sides),
        *_disk(sides),
        *_large_objects(sides, options),
    ]
    if options.mode == "online":
        found += [*_replication(sides), *_identities(sides.source_facts.tables)]
    return found


def _versions(sides: Sides) -> list[Blocker]:
    source, target = sides.source.version[0], sides.target.version[0]
    if target < source:
        return [
            Blocker(
                "downgrade",
                f"The target server is PostgreSQL {target}, older than the "
                f"source's {source}: a dump of a newer server may not load into an older "
                "one.",
                hint=f"Use a PostgreSQL {source} (or newer) target server.",
            )
        ]
    return []


def _roles(sides: Sides) -> list[Blocker]:
    if not sides.missing_roles or sides.target.settings.get("createrole") == "on":
        return []
    names = ", ".join(sides.missing_roles)
    return [
        Blocker(
            "roles",
            f"The database uses roles the target server lacks ({names}) and the target user "
            "may not create roles.",
            hint="Create them on the target first, or give the target user CREATEROLE.",
        )
    ]


def _encodings(sides: Sides) -> list[Blocker]:
    source = sides.source.settings.get("server_encoding", "")
    target = sides.target.settings.get("server_encoding", "")
    if source == target or not source or not target:
        return []
    return [
        Blocker(
            "encoding",
            f"The source database is {source} and the target {target}: text is converted (a "
            "character the target cannot hold stops the copy), and the checksums, computed on "
            "each side's own encoding, will report rows with non-ASCII text as different.",
            fatal=False,
        )
    ]


def _target_state(sides: Sides, options: MigrateOptions) -> list[Blocker]:
    target = sides.target_facts
    marker = target.marker
    if marker is not None and (
        not marker.get("source") or marker.get("source") == sides.source_identity
    ):
        return [
            Blocker(
                "unfinished",
                "The target holds an unfinished WebSonic migration from this "
                "source: it will be resumed or started over.",
                fatal=False,
            )
        ]
    if target.user_objects == 0:
        return []
    if options.force:
        return [
            Blocker(
                "not-empty",
                f"The target database is not empty ({target.user_objects} "
                "objects): --force empties it first.",
                fatal=False,
            )
        ]
    return [
        Blocker(
            "not-empty",
            f"The target database is not empty ({target.user_objects} "
            "objects, e.g. tables, functions, extensions).",
            hint="Use an empty database, or --force to empty it (everything in it is dropped).",
        )
    ]


def _extensions(sides: Sides) -> list[Blocker]:
    found = []
    for name, version in sorted(sides.source_facts.extensions.items()):
        versions = sides.available.get(name)
        if versions is None:
            found.append(
                Blocker(
                    "extension-missing",
                    f"The extension {name} is not available on the target server.",
                    hint=f"Install it there (its package, e.g."
                    f" postgresql-contrib for {name}) and run the migration again.",
                )
            )
        elif version not in versions:
            found.append(
                Blocker(
                    "extension-version",
                    f"The target server has {name} "
                    f"{', '.join(versions)}, not the source's {version}.",
                    hint="The newest available version is installed.",
                    fatal=False,
                )
            )
    return found


def _disk(sides: Sides) -> list[Blocker]:
    free = sides.target.settings.get("free_disk_bytes", "")
    needed = int(sides.source.database_bytes * DISK_MARGIN)
    if not free:
        return [
            Blocker(
                "disk",
                "Cannot tell the target server's free disk space (remote server or"
                f" no superuser): the copy needs about {needed // 2**20} MiB.",
                fatal=False,
            )
        ]
    if int(free) < needed:
        return [
            Blocker(
                "disk",
                f"The target server has {int(free) // 2**20} MiB free; the copy "
                f"needs about {needed // 2**20} MiB.",
                hint="Free disk space on the target server.",
            )
        ]
    return []


def _large_objects(sides: Sides, options: MigrateOptions) -> list[Blocker]:
    count = sides.source_facts.large_objects
    if not count:
        return []
    if options.mode == "online":
        return [
            Blocker(
                "large-objects",
                f"The source has {count} large objects: logical "
                "replication does not carry them, so an online migration would lose "
                "changes to them.",
                hint="Migrate in offline mode (it copies them), or "
                "move them into bytea columns first.",
            )
        ]
    return [
        Blocker("large-objects", f"{count} large objects are copied (offline mode).", fatal=False)
    ]


def _replication(sides: Sides) -> list[Blocker]:
    settings, found = sides.source.settings, []
    if settings.get("wal_level") != "logical":
        found.append(
            Blocker(
                "wal-level",
                f"The source has wal_level = "
                f"{settings.get('wal_level')}; online mode needs wal_level = logical.",
                hint="ALTER SYSTEM SET wal_level = logical; then RESTART the source "
                "server (a reload is not enough).",
            )
        )
    if _free(settings, "max_replication_slots", "replication_slots_used") < 1:
        found.append(
            Blocker(
                "no-slot",
                "The source has no free replication slot "
                f"(max_replication_slots = {settings.get('max_replication_slots')}).",
                hint="Raise max_replication_slots (needs a restart) or drop an unused slot.",
            )
        )
    if _free(settings, "max_wal_senders", "wal_senders_used") < 1:
        found.append(
            Blocker(
                "no-wal-sender",
                "The source has no free WAL sender "
                f"(max_wal_senders = {settings.get('max_wal_senders')}).",
                hint="Raise max_wal_senders (needs a restart).",
            )
        )
    if settings.get("replication") != "on":
        found.append(
            Blocker(
                "no-replication-right",
                "The source user may not replicate.",
                hint="ALTER ROLE <user> REPLICATION; (or use a superuser)",
            )
        )
    if settings.get("superuser") != "on":
        found.append(
            Blocker(
                "ddl-guard",
                "The source user is not a superuser: DDL during the "
                "migration cannot be refused at the source, only detected at the "
                "cutover (which then stops).",
                fatal=False,
            )
        )
    if sides.target.settings.get("can_subscribe") != "on":
        found.append(
            Blocker(
                "no-subscription-right",
                "The target user cannot create a subscription (PostgreSQL 15: superuser only).",
                hint="Connect to the target as a superuser for an online migration.",
            )
        )
    return found


def quote(identifier: str) -> str:
    """An identifier as SQL writes it, always double-quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def _free(settings: dict[str, str], limit: str, used: str) -> int:
    try:
        return int(settings.get(limit, "0")) - int(settings.get(used, "0"))
    except ValueError:
        return 0


def _identities(tables: list[Table]) -> list[Blocker]:
    found = []
    for table in tables:
        if table.kind == "r" and table.unlogged:
            found.append(
                Blocker(
                    "unlogged-table",
                    f"The table {table.qualified} is UNLOGGED: logical replication cannot carry "
                    "its changes.",
                    hint=f"ALTER TABLE {quote(table.schema)}.{quote(table.name)} SET LOGGED; "
                    "(or migrate offline)",
                )
            )
            continue
        if table.kind == "r" and not table.replicable:
            name = f"{quote(table.schema)}.{quote(table.name)}"
            found.append(
                Blocker(
                    "no-primary-key",
                    f"The table {table.qualified} has no primary "
                    "key or replica identity: its UPDATEs and DELETEs would fail on "
                    "the source once it is published.",
                    hint=f"ALTER TABLE {name} REPLICA IDENTITY FULL;",
                )
            )
    return found
