"""The plan of a MariaDB migration, computed from what the probes and the catalog found (pure).

Estimated time: the copy moves about ``COPY_RATE`` bytes of table data per second and worker
(measured on the sysbench 8 x 400k data set between two local MariaDB 10.11 servers, with two
workers, two cores), the deferred indexes are built at ``INDEX_RATE`` bytes of index per second,
and the verification reads both sides at ``VERIFY_RATE``. It is an order of magnitude, not a
promise: remote servers are usually slower (network), bigger machines faster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from websonic.migration.mariadb.catalog import Table
from websonic.migration.mariadb.online import connection_name
from websonic.migration.mariadb.probe import has_privilege
from websonic.migration.plan import Blocker, MigrateOptions, Plan, ServerInfo, TablePlan

COPY_RATE = 7 << 20
INDEX_RATE = 8 << 20
VERIFY_RATE = 50 << 20
DISK_MARGIN = 1.2  # the target needs the data, its indexes and some room for logs


@dataclass(frozen=True)
class Facts:
    """Everything a plan is computed from."""

    source: ServerInfo
    target: ServerInfo
    source_database: str
    target_database: str
    tables: Sequence[Table]
    objects: dict[str, int] = field(default_factory=dict)
    target_objects: int = 0  # tables, views, routines and events in the target database
    target_marked: bool = False  # the target holds an unfinished migration of ours
    target_free_bytes: int | None = None  # None: cannot tell (a remote server)
    closing: Sequence[str] = ()  # write privileges the switch revokes on the source database
    open_writers: Sequence[str] = ()  # accounts whose writes there cannot be revoked per database
    hidden_grants: bool = False  # the source user cannot see the other accounts' privileges


def build_plan(facts: Facts, options: MigrateOptions) -> Plan:
    plan = Plan("mariadb", options.mode, "", "", facts.source.version_text,
                facts.target.version_text)  # fmt: skip
    plan.tables = [table_plan(t, options.chunk_rows) for t in _largest_first(facts.tables)]
    plan.objects = {"tables": len(facts.tables), **facts.objects}
    plan.blockers = blockers(facts, options)
    plan.estimated_seconds = estimate(facts.tables, options)
    return plan


def _largest_first(tables: Sequence[Table]) -> list[Table]:
    return sorted(tables, key=lambda t: (-t.bytes, t.name))


def table_plan(table: Table, chunk_rows: int) -> TablePlan:
    chunks = max(1, math.ceil(table.rows / chunk_rows)) if table.key else 1
    return TablePlan(table.name, table.rows, table.bytes, table.key, chunks)


def estimate(tables: Sequence[Table], options: MigrateOptions) -> float:
    data = sum(t.data_bytes for t in tables)
    indexes = sum(t.index_bytes for t in tables)
    workers = max(1, min(options.jobs, len(tables) or 1, 2))
    seconds = data / (COPY_RATE * workers) + indexes / INDEX_RATE + 2.0
    if options.verify or options.mode == "online":
        seconds += 2 * data / VERIFY_RATE
    return round(seconds, 1)


def blockers(facts: Facts, options: MigrateOptions) -> list[Blocker]:
    found = [*_target_state(facts, options), *_versions(facts, options), *_disk(facts),
             *_tables(facts, options), *_snapshot(facts, options)]  # fmt: skip
    if options.mode == "online":
        found += _online(facts)
    return found


def _target_state(facts: Facts, options: MigrateOptions) -> list[Blocker]:
    if facts.target_marked or not facts.target_objects:
        return []
    what = f"The target database {facts.target_database!r} is not empty " \
           f"({facts.target_objects} tables, views, routines or events)."  # fmt: skip
    if options.force:
        return [Blocker("not-empty", what + " --force: it will be emptied first.", fatal=False)]
    return [Blocker("not-empty", what, "Empty it, or give --force to have it emptied.")]


def _versions(facts: Facts, options: MigrateOptions) -> list[Blocker]:
    source, target = facts.source, facts.target
    found = []
    flavors = source.settings.get("flavor"), target.settings.get("flavor")
    if flavors[0] != flavors[1]:
        found.append(Blocker(
            "flavor", f"The source is {flavors[0]} and the target {flavors[1]}.",
            "Online mode replicates with MariaDB GTIDs: both must be MariaDB."
            if options.mode == "online" else "Types and collations may not all exist there.",
            fatal=options.mode == "online",
        ))  # fmt: skip
    if tuple(target.version[:2]) < tuple(source.version[:2]):
        found.append(Blocker(
            "downgrade", f"The target server ({target.version_text}) is older than the source "
            f"({source.version_text}).", "Install the same or a newer version on the target.",
        ))  # fmt: skip
    elif tuple(target.version) < tuple(source.version):
        found.append(Blocker("downgrade", f"The target ({target.version_text}) is an older "
                             f"patch release than the source ({source.version_text}).",
                             fatal=False))  # fmt: skip
    return found


def _disk(facts: Facts) -> list[Blocker]:
    need = int(facts.source.database_bytes * DISK_MARGIN)
    if facts.target_free_bytes is None or facts.target_free_bytes >= need:
        return []
    return [
        Blocker(
            "disk",
            f"The target has {facts.target_free_bytes >> 20} MiB free; the "
            f"copy needs about {need >> 20} MiB.",
            "Free space on the target server.",
        )
    ]


def _tables(facts: Facts, options: MigrateOptions) -> list[Blocker]:
    found = []
    online = options.mode == "online"
    for table in facts.tables:
        if table.kind in ("SYSTEM VERSIONED", "SEQUENCE"):
            found.append(Blocker("unsupported", f"{table.name} is a {table.kind.lower()} table, "
                                 "which WebSonic does not migrate yet."))  # fmt: skip
        elif table.engine.lower() != "innodb":
            found.append(_non_innodb(table, online))
        if not table.key and table.kind == "BASE TABLE":
            found.append(_no_key(table, online))
    return found


def _non_innodb(table: Table, online: bool) -> Blocker:
    why = (f"{table.name} uses {table.engine or 'no'} engine, not InnoDB: it has no consistent "
           "snapshot, so its copy matches no single binlog position")  # fmt: skip
    if online:
        return Blocker(
            "engine",
            why + ": online mode could lose or repeat its changes.",
            "ALTER TABLE … ENGINE=InnoDB on the source, or migrate offline.",
        )
    return Blocker("engine", why + ": stop writes to it during the copy.", fatal=False)


def _no_key(table: Table, online: bool) -> Blocker:
    text = (f"{table.name} has no primary key (nor a NOT NULL unique key): it is copied and "
            "checksummed whole, not in ranges")  # fmt: skip
    if online:
        text += ", and the target finds each replicated change by a full table scan"
    return Blocker(
        "no-primary-key", text + ".", "Add a primary key if the table is large.", fatal=False
    )


def _snapshot(facts: Facts, options: MigrateOptions) -> list[Blocker]:
    source = facts.source
    privileges = source.settings.get("privileges", "").split(",")
    if options.jobs > 1 and not has_privilege(privileges, "RELOAD", source.version):
        return [Blocker("privileges", "The source user lacks RELOAD, needed to start several "
                        "workers on one snapshot: the copy runs with one worker.",
                        fatal=False)]  # fmt: skip
    return []


def _online(facts: Facts) -> list[Blocker]:
    source, target = facts.source.settings, facts.target.settings
    found = []
    if source.get("log_bin", "").upper() != "ON":
        found.append(Blocker("log-bin", "The source has no binary log (log_bin = OFF): online "
                             "mode replicates from it.", "Start the source with --log-bin "
                             "(and binlog_format=ROW), or migrate offline."))  # fmt: skip
    if source.get("binlog_format", "").upper() != "ROW":
        found.append(Blocker("binlog-format", "The source's binlog_format is "
                             f"{source.get('binlog_format') or 'unset'}, not ROW.",
                             "SET GLOBAL binlog_format = 'ROW' on the source (and in its "
                             "configuration), or migrate offline."))  # fmt: skip
    if source.get("server_id") == target.get("server_id"):
        found.append(Blocker("server-id", f"The source and the target have the same server_id "
                             f"({source.get('server_id')}): replication needs distinct ones.",
                             "SET GLOBAL server_id = <another number> on the target (and in "
                             "its configuration)."))  # fmt: skip
    ours = connection_name(facts.target_database) if facts.target_marked else None
    others = [c for c in target.get("replicating", "").split(",") if c and c != ours]
    if others:
        found.append(
            Blocker(
                "replicating",
                f"The target already replicates from another server ({', '.join(others)}); "
                "online mode would change its GTID position.",
                "Migrate offline, or stop that replication.",
            )
        )
    found += _online_privileges(facts)
    return found + _closing(facts)


def _closing(facts: Facts) -> list[Blocker]:
    """After the switch the source database is closed to writes (``closing``): the source user
    needs GRANT OPTION and the privileges it revokes; global writers are named (a warning)."""
    found = []
    database = facts.source_database
    if facts.open_writers:
        found.append(Blocker(
            "open-writers", f"After the switch these accounts can still write to {database!r} "
            f"on the source: {', '.join(facts.open_writers)} (write privileges on *.* or on a "
            "database pattern cannot be revoked for one database).",
            "Make sure nothing writes there with them after the switch, or narrow their grants; "
            "a write there is reported until the run's verification ends.", fatal=False,
        ))  # fmt: skip
    if facts.hidden_grants:
        found.append(Blocker(
            "privileges", "The source user cannot see the other accounts' privileges (it lacks "
            f"SELECT on the mysql database): the switch could not close {database!r} to the "
            "application's writes.", "GRANT SELECT ON mysql.* TO the user.",
        ))  # fmt: skip
    missing = _cannot_close(facts.source, facts.closing)
    if missing:
        found.append(Blocker(
            "privileges", f"The source user lacks {', '.join(missing)} on {database!r} (to "
            "revoke the application's write privileges there after the switch).",
            f"GRANT {', '.join(facts.closing)} ON `{database}`.* TO the user WITH GRANT OPTION.",
        ))  # fmt: skip
    return found


def _cannot_close(info: ServerInfo, closing: Sequence[str]) -> list[str]:
    """What the source user lacks to REVOKE ``closing`` (globally or on the database)."""
    if not closing:
        return []
    held = info.settings.get("privileges", "").split(",")
    held += info.settings.get("database_privileges", "").split(",")
    missing = [] if "GRANT OPTION" in held else ["GRANT OPTION"]
    return missing + [p for p in closing if not has_privilege(held, p, info.version)]


SOURCE_NEEDS = {
    "REPLICATION SLAVE": "to let the target replicate from it",
    "BINLOG MONITOR": "to read the binary log position and events",
    "LOCK TABLES": "to freeze the database's tables at the cutover",
    "PROCESS": "to see the sessions using the database at the cutover",
    "CONNECTION ADMIN": "to end the sessions using the database at the cutover",
}
TARGET_NEEDS = {"REPLICATION SLAVE ADMIN": "to set up and stop replication on the target"}
#: privileges that a grant on the database itself gives as well as a global one
DATABASE_LEVEL = {"LOCK TABLES"}


def _online_privileges(facts: Facts) -> list[Blocker]:
    found = []
    for side, info, needs in (("source", facts.source, SOURCE_NEEDS),
                              ("target", facts.target, TARGET_NEEDS)):  # fmt: skip
        for privilege, why in needs.items():
            if not _holds(info, privilege):
                found.append(_missing(side, privilege, why, facts.source_database))
    return found


def _holds(info: ServerInfo, privilege: str) -> bool:
    held = info.settings.get("privileges", "").split(",")
    if privilege in DATABASE_LEVEL:
        held += info.settings.get("database_privileges", "").split(",")
    return has_privilege(held, privilege, info.version)


def _missing(side: str, privilege: str, why: str, database: str) -> Blocker:
    where = f"`{database}`.*" if privilege in DATABASE_LEVEL else "*.*"
    return Blocker(
        "privileges",
        f"The {side} user lacks {privilege} ({why}).",
        f"GRANT {privilege} ON {where} TO the user.",
    )
