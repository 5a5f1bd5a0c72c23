"""Sequence values: read on the source, set on the target (``setval``), compared by verify.

Logical replication does not carry sequences, and a sequence is not transactional (a snapshot
does not freeze it): offline they are copied after the data, online inside the cutover window,
when the source's writes are frozen.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from websonic.migration.postgres.catalog import NOT_EXTENSION, USER_SCHEMA
from websonic.migration.report import Difference

Values = dict[tuple[str, str], tuple[int, bool]]

NAMES = f"""
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S' AND {USER_SCHEMA}
   AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")} ORDER BY 1, 2
"""


def read(conn: psycopg.Connection) -> Values:
    """Every sequence's (last_value, is_called), in one query."""
    names = conn.execute(NAMES).fetchall()
    if not names:
        return {}
    parts = [
        sql.SQL("SELECT {}, {}, last_value, is_called FROM {}").format(
            sql.Literal(schema), sql.Literal(name), sql.Identifier(schema, name)
        )
        for schema, name in names
    ]
    rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    return {(schema, name): (int(value), bool(called)) for schema, name, value, called in rows}


def write(conn: psycopg.Connection, values: Values) -> None:
    """Set every sequence on the target, in one statement."""
    if not values:
        return
    calls = [
        sql.SQL("setval({}, {}, {})").format(
            sql.Literal(sql.Identifier(schema, name).as_string(conn)),
            sql.Literal(value),
            sql.Literal(called),
        )
        for (schema, name), (value, called) in values.items()
    ]
    conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(calls))


def compare(source: Values, target: Values) -> list[Difference]:
    differences = []
    for key in sorted(set(source) | set(target)):
        before, after = source.get(key), target.get(key)
        if before != after:
            differences.append(
                Difference("sequence value", ".".join(key), _text(before), _text(after))
            )
    return differences


def _text(value: tuple[int, bool] | None) -> str | None:
    if value is None:
        return None
    return f"{value[0]}" + ("" if value[1] else " (not called yet)")
