"""Every object of a database as comparable text, read from information_schema.

One query per kind returns (name, fields…) rows, in an order that makes several rows of one
object (an index's columns, a routine's parameters) join up the same way on both servers. The
database's own name is replaced by ``$db`` in definitions (views, foreign keys), so a database
migrated under another name compares equal. The migration's marker table is left out.
"""

from __future__ import annotations

from typing import Any

import pymysql

from websonic.migration.mariadb.catalog import MARKER
from websonic.migration.mariadb.connect import Connection, dict_rows
from websonic.migration.report import Difference

S = "%(db)s"
QUERIES: dict[str, str] = {
    "database": f"""SELECT SCHEMA_NAME = {S} AS name, DEFAULT_CHARACTER_SET_NAME AS charset,
        DEFAULT_COLLATION_NAME AS collation FROM information_schema.SCHEMATA
        WHERE SCHEMA_NAME = {S}""",
    "table": f"""SELECT TABLE_NAME AS name, TABLE_TYPE AS type, ENGINE AS engine,
        TABLE_COLLATION AS collation, CREATE_OPTIONS AS options, TABLE_COMMENT AS comment,
        AUTO_INCREMENT AS auto_increment FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = {S} AND TABLE_TYPE <> 'VIEW' AND TABLE_NAME <> %(marker)s""",
    "column": f"""SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME) AS name,
        ORDINAL_POSITION AS position, COLUMN_TYPE AS type, IS_NULLABLE AS nullable,
        COLUMN_DEFAULT AS `default`, EXTRA AS extra, CHARACTER_SET_NAME AS charset,
        COLLATION_NAME AS collation, GENERATION_EXPRESSION AS generated,
        COLUMN_COMMENT AS comment FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = {S} AND TABLE_NAME <> %(marker)s
        AND TABLE_NAME NOT IN (SELECT TABLE_NAME FROM information_schema.VIEWS
                               WHERE TABLE_SCHEMA = {S})""",
    "index": f"""SELECT CONCAT(TABLE_NAME, '.', INDEX_NAME) AS name, NON_UNIQUE AS non_unique,
        INDEX_TYPE AS type, COLUMN_NAME AS col, SUB_PART AS sub_part, COLLATION AS ord,
        INDEX_COMMENT AS comment FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = {S} AND TABLE_NAME <> %(marker)s
        ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX""",
    "foreign key": f"""SELECT CONCAT(k.TABLE_NAME, '.', k.CONSTRAINT_NAME) AS name,
        k.COLUMN_NAME AS col, IF(k.REFERENCED_TABLE_SCHEMA = {S}, '$db',
        k.REFERENCED_TABLE_SCHEMA) AS ref_db, k.REFERENCED_TABLE_NAME AS ref_table,
        k.REFERENCED_COLUMN_NAME AS ref_col, r.UPDATE_RULE AS on_update,
        r.DELETE_RULE AS on_delete
        FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r
        ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
        AND r.TABLE_NAME = k.TABLE_NAME
        WHERE k.CONSTRAINT_SCHEMA = {S} ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME,
        k.ORDINAL_POSITION""",
    "check": f"""SELECT CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME) AS name, LEVEL AS level,
        CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS
        WHERE CONSTRAINT_SCHEMA = {S}""",
    "partition": f"""SELECT CONCAT(TABLE_NAME, '.', PARTITION_NAME,
        IFNULL(CONCAT('.', SUBPARTITION_NAME), '')) AS name, PARTITION_METHOD AS method,
        PARTITION_EXPRESSION AS expression, PARTITION_DESCRIPTION AS description,
        SUBPARTITION_METHOD AS sub_method, SUBPARTITION_EXPRESSION AS sub_expression
        FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = {S}
        AND PARTITION_NAME IS NOT NULL""",
    "view": f"""SELECT TABLE_NAME AS name, VIEW_DEFINITION AS definition,
        CHECK_OPTION AS check_option, DEFINER AS definer, SECURITY_TYPE AS security,
        ALGORITHM AS algorithm FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {S}""",
    "routine": f"""SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) AS name,
        DTD_IDENTIFIER AS returns, ROUTINE_DEFINITION AS body, IS_DETERMINISTIC AS is_deterministic,
        SQL_DATA_ACCESS AS access, SECURITY_TYPE AS security, SQL_MODE AS sql_mode,
        DEFINER AS definer, ROUTINE_COMMENT AS comment FROM information_schema.ROUTINES
        WHERE ROUTINE_SCHEMA = {S}""",
    "parameter": f"""SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', SPECIFIC_NAME) AS name,
        PARAMETER_MODE AS mode, PARAMETER_NAME AS param, DTD_IDENTIFIER AS type
        FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = {S}
        ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION""",
    "trigger": f"""SELECT TRIGGER_NAME AS name, EVENT_OBJECT_TABLE AS `table`,
        ACTION_TIMING AS timing, EVENT_MANIPULATION AS event, ACTION_ORDER AS `order`,
        ACTION_STATEMENT AS body, SQL_MODE AS sql_mode, DEFINER AS definer
        FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {S}""",
    "event": f"""SELECT EVENT_NAME AS name, DEFINER AS definer, TIME_ZONE AS time_zone,
        EVENT_DEFINITION AS body, EVENT_TYPE AS type, EXECUTE_AT AS at,
        INTERVAL_VALUE AS every, INTERVAL_FIELD AS unit, SQL_MODE AS sql_mode, STARTS AS starts,
        ENDS AS ends, STATUS AS status, ON_COMPLETION AS on_completion,
        EVENT_COMMENT AS comment FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {S}""",
    "grant": f"""SELECT CONCAT(GRANTEE, ' ON $db.*') AS name, PRIVILEGE_TYPE AS privilege,
        IS_GRANTABLE AS grantable FROM information_schema.SCHEMA_PRIVILEGES
        WHERE TABLE_SCHEMA = {S}
        UNION ALL SELECT CONCAT(GRANTEE, ' ON ', TABLE_NAME), PRIVILEGE_TYPE, IS_GRANTABLE
        FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = {S}
        UNION ALL SELECT CONCAT(GRANTEE, ' ON ', TABLE_NAME, '.', COLUMN_NAME), PRIVILEGE_TYPE,
        IS_GRANTABLE FROM information_schema.COLUMN_PRIVILEGES WHERE TABLE_SCHEMA = {S}
        ORDER BY 1, 2""",
    "routine grant": f"""SELECT CONCAT('''', User, '''@''', Host, ''' ON ', LOWER(Routine_type),
        ' ', Routine_name) AS name, Proc_priv AS privileges FROM mysql.procs_priv
        WHERE Db = {S} ORDER BY 1""",
}
#: kinds whose query the user may not be allowed to run (then they are not compared)
OPTIONAL = {"routine grant"}
Inventory = dict[tuple[str, str], str]


def read_inventory(conn: Connection, database: str) -> Inventory:
    """(kind, name) -> definition text, for every object of ``database``."""
    found: Inventory = {}
    for kind, sql in QUERIES.items():
        try:
            result = dict_rows(conn, sql, {"db": database, "marker": MARKER})
        except pymysql.err.MySQLError:
            if kind in OPTIONAL:
                continue
            raise
        for row in result:
            name = "(this database)" if kind == "database" else str(row.pop("name"))
            row.pop("name", None)
            text = definition(row, database)
            key = (kind, name)
            found[key] = f"{found[key]}; {text}" if key in found else text
    return found


def definition(row: dict[str, Any], database: str) -> str:
    text = " ".join(f"{k}={_text(v)}" for k, v in row.items())
    return text.replace(f"`{database}`.", "`$db`.")


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def compare(source: Inventory, target: Inventory) -> list[Difference]:
    """One Difference per object missing on a side or defined differently."""
    differences = []
    for key in sorted(source.keys() | target.keys()):
        left, right = source.get(key), target.get(key)
        if left != right:
            differences.append(Difference(key[0], key[1], left, right))
    return differences
