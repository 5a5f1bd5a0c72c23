"""What a database holds, read from its catalogs: tables with their keys, sizes and columns.

Everything WebSonic itself adds (the ``websonic`` schema: the target's marker, the source's DDL
guard) is left out, as are the system schemas and objects that belong to extensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

OWN_SCHEMA = "websonic"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", OWN_SCHEMA)
#: SQL condition: namespace ``n`` is a user schema.
USER_SCHEMA = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'websonic') "
    "AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'"
)
#: SQL condition: object ``oid`` of catalog ``catalog`` is not part of an extension.
NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
    "AND d.objid = {oid} AND d.deptype = 'e')"
)
INTEGER_TYPES = ("smallint", "integer", "bigint")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    generated: bool = False


@dataclass(frozen=True)
class Table:
    """A table whose rows are copied (ordinary tables and partitions; also materialized views,
    which are checked but refreshed rather than copied)."""

    schema: str
    name: str
    kind: str  # r (table or partition), m (materialized view)
    rows: int  # estimate
    bytes: int
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    key_type: str = ""  # type of the first key column
    replica_identity: str = "d"  # d (default: the key), f (full), i (index), n (nothing)
    populated: bool = True
    partitioned_root: str | None = None  # published under this root (online)
    unlogged: bool = False  # no WAL: logical replication cannot carry its changes

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def copied_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.generated)

    @property
    def integer_key(self) -> bool:
        return len(self.primary_key) >= 1 and self.key_type in INTEGER_TYPES

    @property
    def replicable(self) -> bool:
        """UPDATE/DELETE can be replicated (a key, or a replica identity FULL/USING INDEX)."""
        return self.replica_identity in ("f", "i") or (
            self.replica_identity == "d" and bool(self.primary_key)
        )


@dataclass
class Facts:
    """A database as the plan needs it."""

    tables: list[Table] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)  # name -> version
    large_objects: int = 0
    user_objects: int = 0  # anything (but our marker) that makes a database "not empty"
    marker: dict[str, Any] | None = None
    index_bytes: int = 0


TABLES = f"""
SELECT n.nspname, c.relname, c.relkind,
       (CASE WHEN c.reltuples < 0 THEN pg_relation_size(c.oid) / 100 ELSE c.reltuples END)::bigint,
       pg_table_size(c.oid), c.relreplident, c.relispopulated, c.relpersistence = 'u',
       (SELECT array_agg(a.attname ORDER BY k.i)
          FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
         WHERE x.indrelid = c.oid AND x.indisprimary),
       (SELECT format_type(a.atttypid, NULL) FROM pg_index x
          JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
         WHERE x.indrelid = c.oid AND x.indisprimary),
       (SELECT array_agg(ARRAY[a.attname::text, format_type(a.atttypid, a.atttypmod),
                               a.attgenerated::text] ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT rn.nspname || '.' || r.relname FROM pg_partition_ancestors(c.oid) AS p(relid)
          JOIN pg_class r ON r.oid = p.relid JOIN pg_namespace rn ON rn.oid = r.relnamespace
         WHERE NOT r.relispartition)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND {USER_SCHEMA}
   AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
 ORDER BY pg_table_size(c.oid) DESC, n.nspname, c.relname
"""


def tables(conn: psycopg.Connection) -> list[Table]:
    return [_table(row) for row in conn.execute(TABLES).fetchall()]


def _table(row: tuple[Any, ...]) -> Table:
    schema, name, kind, rows, size, ident, populated, unlogged, key, key_type, columns, root = row
    cols = tuple(Column(c[0], c[1], c[2] != "") for c in columns or [])
    own_root = root if root and root != f"{schema}.{name}" else None
    return Table(
        schema,
        name,
        kind,
        int(rows),
        int(size),
        cols,
        tuple(key or ()),
        key_type or "",
        ident,
        bool(populated),
        own_root,
        bool(unlogged),
    )


OBJECT_COUNTS = f"""
SELECT 'views', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'v' AND {USER_SCHEMA} AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
UNION ALL
SELECT 'materialized views', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'm' AND {USER_SCHEMA}
UNION ALL
SELECT 'sequences', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S' AND {USER_SCHEMA} AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
UNION ALL
SELECT 'partitioned tables', count(*) FROM pg_class c JOIN pg_namespace n
    ON n.oid = c.relnamespace WHERE c.relkind = 'p' AND {USER_SCHEMA}
UNION ALL
SELECT 'indexes', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('i', 'I') AND {USER_SCHEMA}
   AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
UNION ALL
SELECT 'functions', count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {USER_SCHEMA} AND {NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid")}
UNION ALL
SELECT 'triggers', count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_SCHEMA}
UNION ALL
SELECT 'extensions', count(*) FROM pg_extension WHERE extname <> 'plpgsql'
UNION ALL
SELECT 'schemas', count(*) FROM pg_namespace n WHERE {USER_SCHEMA}
UNION ALL
SELECT 'large objects', count(*) FROM pg_largeobject_metadata
"""

USER_OBJECTS = f"""
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {USER_SCHEMA})
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE {USER_SCHEMA})
     + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE {USER_SCHEMA} AND t.typtype IN ('e', 'd', 'r', 'm')
           AND {NOT_EXTENSION.format(catalog="pg_type", oid="t.oid")})
     + (SELECT count(*) FROM pg_namespace n WHERE {USER_SCHEMA} AND n.nspname <> 'public')
     + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
     + (SELECT count(*) FROM pg_largeobject_metadata)
"""

MARKER = """
SELECT json_build_object('run', run, 'source', source, 'state', state)
  FROM websonic.migration_marker
"""


def facts(conn: psycopg.Connection) -> Facts:
    found = Facts(tables=tables(conn))
    found.objects = {kind: int(n) for kind, n in conn.execute(OBJECT_COUNTS).fetchall()}
    found.large_objects = found.objects.pop("large objects", 0)
    found.extensions = dict(
        conn.execute("SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql'")
    )
    found.user_objects = int(_scalar(conn, USER_OBJECTS))
    found.marker = marker(conn)
    found.index_bytes = int(_scalar(conn, INDEX_BYTES))
    return found


INDEX_BYTES = f"""
SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'i' AND {USER_SCHEMA}
"""


def key_range(conn: psycopg.Connection, table: Table) -> tuple[int | None, int | None]:
    """min and max of an integer key (None, None for an empty table)."""
    query = sql.SQL("SELECT min({k})::bigint, max({k})::bigint FROM ONLY {t}").format(
        k=sql.Identifier(table.primary_key[0]), t=sql.Identifier(table.schema, table.name)
    )
    row = conn.execute(query).fetchone()
    return (row[0], row[1]) if row else (None, None)


def marker(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The marker of an unfinished WebSonic migration into this database, if any."""
    if _scalar(conn, "SELECT to_regclass('websonic.migration_marker') IS NULL"):
        return None
    row = conn.execute(MARKER).fetchone()
    return dict(row[0]) if row else {}


def available_extensions(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Extensions the server can install: name -> versions."""
    rows = conn.execute(
        "SELECT name, array_agg(version) FROM pg_available_extension_versions GROUP BY name"
    ).fetchall()
    return {name: list(versions) for name, versions in rows}


def _scalar(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row else None
