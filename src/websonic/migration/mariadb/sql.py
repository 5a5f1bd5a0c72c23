"""SQL text built from catalog facts (pure): identifiers, value literals, key ranges, checksums.

Values travel as SQL literals that the *source server* renders, so the bytes are exact and
WebSonic never decodes them: strings and binaries as hex with the column's character set
(``_utf8mb4 X'F09F9880'``: no escaping, no charset conversion, binary-safe), integers, decimals
and doubles in their exact text, FLOAT through DOUBLE (MariaDB prints a FLOAT with 6 digits,
which loses bits), BIT as its number, dates and times quoted. ``NULL`` is the bare word.

Checksums use the same principle: each value becomes ``v<exact text or hex>`` or ``n`` for NULL
(so NULL, ``''`` and ``'NULL'`` differ), a row is the first 64 bits of the SHA-256 of its values
joined by ``|``, and a range's checksum is the SUM (order-independent, and unlike XOR robust to
duplicate rows) with the row count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INTEGER = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
EXACT_TEXT = INTEGER | {"decimal", "numeric", "double", "real", "double precision"}
TEMPORAL = {"date", "datetime", "timestamp", "time", "year"}
STRING = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry",
          "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
          "geometrycollection"}  # fmt: skip


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema.COLUMNS.DATA_TYPE (lower case)
    charset: str | None = None
    generated: bool = False


def ident(name: str) -> str:
    """A quoted identifier: `name` with backquotes doubled."""
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, table: str) -> str:
    return f"{ident(database)}.{ident(table)}"


def string_literal(text: str) -> str:
    """A literal for a Python string (our own values: names, GTIDs), escaped for any sql_mode."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0") + "'"


def literal_expr(column: Column) -> str:
    """An expression the server evaluates to the SQL literal of ``column``'s value."""
    c = ident(column.name)
    kind = column.data_type.lower()
    if kind in EXACT_TEXT:
        text = c
    elif kind == "float":
        text = f"CAST({c} AS DOUBLE)"
    elif kind == "bit":
        text = f"{c}+0"
    elif kind in BINARY:
        text = f"CONCAT('X''', HEX({c}), '''')"
    elif kind in STRING and column.charset:
        text = f"CONCAT('_{column.charset} X''', HEX({c}), '''')"
    else:  # dates, times, uuid, inet6 and other types with a plain text form
        text = f"QUOTE({c})"
    return f"IFNULL({text}, 'NULL')"


def row_literal_expr(columns: Sequence[Column]) -> str:
    """``(v1,v2,…)`` of a row, as one string the server builds."""
    parts = ", ".join(literal_expr(c) for c in columns)
    return f"CONCAT('(', CONCAT_WS(',', {parts}), ')')"


def key_literal_expr(columns: Sequence[Column]) -> str:
    """The literals of a key's values joined by a unit separator (0x1F never occurs in them)."""
    return f"CONCAT_WS(CHAR(31 USING utf8mb4), {', '.join(literal_expr(c) for c in columns)})"


def split_key(text: str) -> list[str]:
    return text.split("\x1f")


def checksum_value_expr(column: Column) -> str:
    c = ident(column.name)
    kind = column.data_type.lower()
    if kind == "float":
        value = f"CAST({c} AS DOUBLE)"
    elif kind == "bit":
        value = f"{c}+0"
    elif kind in BINARY or kind in STRING:
        value = f"HEX({c})"
    else:
        value = c
    return f"IFNULL(CONCAT('v', {value}), 'n')"


def row_hash_expr(columns: Sequence[Column]) -> str:
    values = ", ".join(checksum_value_expr(c) for c in columns)
    return f"CAST(CONV(LEFT(SHA2(CONCAT_WS('|', {values}), 256), 16), 16, 10) AS UNSIGNED)"


def checksum_query(database: str, table: str, columns: Sequence[Column], where: str) -> str:
    """(row count, checksum as a decimal string) of the rows of a table matching ``where``."""
    return (f"SELECT COUNT(*), CAST(COALESCE(SUM({row_hash_expr(columns)}), 0) AS CHAR) "
            f"FROM {qualified(database, table)} WHERE {where}")  # fmt: skip


def compare_key(key: Sequence[str], values: Sequence[str], op: str) -> str:
    """Rows whose key tuple is ``op`` (one of > >= < <=) the tuple of literals ``values``.

    Written out (``a > 1 OR (a = 1 AND b > 2)``) so that the optimizer uses the key's range.
    """
    if len(key) != len(values) or not key:
        raise ValueError("a key and its values must have the same, non-zero length")
    strict, last = op[0], op
    terms = []
    for i, column in enumerate(key):
        equal = [f"{ident(k)} = {v}" for k, v in zip(key[:i], values[:i], strict=True)]
        compare = f"{ident(column)} {last if i == len(key) - 1 else strict} {values[i]}"
        terms.append("(" + " AND ".join([*equal, compare]) + ")")
    return "(" + " OR ".join(terms) + ")"


def key_range(key: Sequence[str], low: Sequence[str] | None, high: Sequence[str] | None) -> str:
    """``low <= key < high`` (an open end where None); ``1`` for the whole table."""
    parts = []
    if low is not None:
        parts.append(compare_key(key, low, ">="))
    if high is not None:
        parts.append(compare_key(key, high, "<"))
    return " AND ".join(parts) or "1"


def order_by(key: Sequence[str]) -> str:
    return ", ".join(ident(k) for k in key)
