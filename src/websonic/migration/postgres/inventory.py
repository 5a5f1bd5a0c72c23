"""The object inventory compared by verify: every object as (kind, name) -> its definition.

Definitions come from PostgreSQL's own deparsers (``pg_get_indexdef``, ``pg_get_viewdef``, …)
and name objects, never OIDs, so both servers describe the same object with the same text.
WebSonic's own ``websonic`` schema and event triggers, system schemas and objects that belong
to extensions (checked as the extension and its version) are left out.
"""

from __future__ import annotations

import psycopg

from websonic.migration.postgres.catalog import NOT_EXTENSION, USER_SCHEMA
from websonic.migration.report import Difference

Inventory = dict[tuple[str, str], str]

NOT_EXT_CLASS = NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")
QUERIES = {
    "schema": f"""
        SELECT n.nspname, pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE {USER_SCHEMA}""",
    "table": f"""
        SELECT n.nspname || '.' || c.relname,
               concat_ws(' ', c.relkind, c.relpersistence, 'owner', pg_get_userbyid(c.relowner),
                         'identity', c.relreplident, pg_get_partkeydef(c.oid),
                         pg_get_expr(c.relpartbound, c.oid))
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMA} AND {NOT_EXT_CLASS}""",
    "column": f"""
        SELECT n.nspname || '.' || c.relname || '.' || a.attname,
               concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attnotnull THEN 'not null' END,
                         CASE WHEN a.attidentity <> '' THEN 'identity ' || a.attidentity::text END,
                         CASE WHEN a.attgenerated <> '' THEN 'generated' END,
                         'default ' || pg_get_expr(d.adbin, d.adrelid),
                         'collate ' || (SELECT cn.nspname || '.' || co.collname
                                          FROM pg_collation co JOIN pg_namespace cn
                                            ON cn.oid = co.collnamespace
                                         WHERE co.oid = a.attcollation
                                           AND a.attcollation <> t.typcollation),
                         'position ' || (SELECT count(*) FROM pg_attribute p
                                          WHERE p.attrelid = a.attrelid AND p.attnum > 0
                                            AND NOT p.attisdropped AND p.attnum <= a.attnum))
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND {USER_SCHEMA} AND {NOT_EXT_CLASS}""",
    "index": f"""
        SELECT n.nspname || '.' || c.relname, pg_get_indexdef(c.oid)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('i', 'I') AND {USER_SCHEMA} AND {NOT_EXT_CLASS}""",
    "constraint": f"""
        SELECT n.nspname || '.' || coalesce(c.relname, t.typname) || '.' || k.conname,
               pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE
                                                   ' (not validated)' END
          FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
          LEFT JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_type t ON t.oid = k.contypid
         WHERE {USER_SCHEMA}""",
    "view": f"""
        SELECT n.nspname || '.' || c.relname, pg_get_viewdef(c.oid)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'v' AND {USER_SCHEMA} AND {NOT_EXT_CLASS}""",
    "materialized view": f"""
        SELECT n.nspname || '.' || c.relname,
               pg_get_viewdef(c.oid) || CASE WHEN c.relispopulated THEN '' ELSE ' (no data)' END
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'm' AND {USER_SCHEMA}""",
    "function": f"""
        SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid)
               || ')',
               CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid)
                    ELSE p.prokind::text || ' ' || pg_get_function_result(p.oid) END
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE {USER_SCHEMA} AND {NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid")}""",
    "trigger": f"""
        SELECT n.nspname || '.' || c.relname || '.' || t.tgname,
               pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND {USER_SCHEMA}""",
    "event trigger": """
        SELECT evtname, evtevent || ' ' || evtfoid::regproc::text || ' ' || evtenabled::text
          FROM pg_event_trigger WHERE evtname NOT LIKE 'websonic%'""",
    "sequence": f"""
        SELECT n.nspname || '.' || c.relname,
               concat_ws(' ', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment',
                         s.seqincrement, 'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache,
                         CASE WHEN s.seqcycle THEN 'cycle' END)
          FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA} AND {NOT_EXT_CLASS}""",
    "type": f"""
        SELECT n.nspname || '.' || t.typname,
               t.typtype::text || ' ' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY
                   e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                   format_type(t.typbasetype, t.typtypmod))
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE t.typtype IN ('e', 'd', 'r') AND {USER_SCHEMA}
           AND {NOT_EXTENSION.format(catalog="pg_type", oid="t.oid")}""",
    "collation": f"""
        SELECT n.nspname || '.' || c.collname,
               concat_ws(' ', c.collprovider, c.collcollate, c.collctype, c.colliculocale)
          FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
         WHERE {USER_SCHEMA}""",
    "extension": """
        SELECT extname, extversion || ' in ' || extnamespace::regnamespace::text
          FROM pg_extension""",
    "grant": f"""
        SELECT kind || ' ' || name, acl FROM (
          SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' ELSE 'table' END
                 AS kind, n.nspname || '.' || c.relname AS name,
                 array_to_string(ARRAY(SELECT unnest(c.relacl)::text ORDER BY 1), ',') AS acl
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND {USER_SCHEMA}
          UNION ALL
          SELECT 'schema', n.nspname,
                 array_to_string(ARRAY(SELECT unnest(n.nspacl)::text ORDER BY 1), ',')
            FROM pg_namespace n WHERE n.nspacl IS NOT NULL AND {USER_SCHEMA}
          UNION ALL
          SELECT 'function', n.nspname || '.' || p.proname || '('
                 || pg_get_function_identity_arguments(p.oid) || ')',
                 array_to_string(ARRAY(SELECT unnest(p.proacl)::text ORDER BY 1), ',')
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.proacl IS NOT NULL AND {USER_SCHEMA}
          UNION ALL
          SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname,
                 array_to_string(ARRAY(SELECT unnest(a.attacl)::text ORDER BY 1), ',')
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE a.attacl IS NOT NULL AND {USER_SCHEMA}) AS g""",
    "large object": """
        SELECT oid::text, pg_get_userbyid(lomowner) || ' ' || coalesce(lomacl::text, '')
               || ' ' || md5(lo_get(oid))
          FROM pg_largeobject_metadata""",
}


def inventory(conn: psycopg.Connection) -> Inventory:
    found: Inventory = {}
    for kind, query in QUERIES.items():
        for name, definition in conn.execute(query).fetchall():
            found[(kind, str(name))] = "" if definition is None else str(definition)
    return found


def compare(source: Inventory, target: Inventory) -> list[Difference]:
    """Every object missing on one side or defined differently, in kind and name order."""
    differences = []
    for key in sorted(set(source) | set(target)):
        before, after = source.get(key), target.get(key)
        if before != after:
            differences.append(Difference(key[0], key[1], before, after))
    return differences
