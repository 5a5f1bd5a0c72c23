"""The DDL guard: while an online migration runs, schema changes on the source are refused.

Logical replication does not carry DDL: a column added on the source would break the apply (or
be silently missing on the target). So two event triggers on the source refuse every DDL
command (``ddl_command_end``) and every DROP (``sql_drop``) with the error
``DDL is refused while WebSonic migrates this database``, except on temporary objects and in
WebSonic's own sessions (``SET websonic.migrating = on``). They live in the ``websonic`` schema
of the source (never copied, ignored by verify) and are removed at the end and by ``abandon``.
Event triggers need a superuser; without one the guard is missing and a schema change is
caught by the inventory comparison in the cutover window instead (the cutover then stops).
"""

from __future__ import annotations

import psycopg

MESSAGE = "DDL is refused while WebSonic migrates this database"

INSTALL = f"""
CREATE SCHEMA IF NOT EXISTS websonic;
CREATE OR REPLACE FUNCTION websonic.refuse_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  item record;
BEGIN
  IF coalesce(current_setting('websonic.migrating', true), '') = 'on' THEN
    RETURN;
  END IF;
  IF TG_EVENT = 'sql_drop' THEN
    FOR item IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
      IF NOT item.is_temporary THEN
        RAISE EXCEPTION '{MESSAGE}'
          USING HINT = 'Run it after the migration, or stop the migration first '
                       '(websonic db abandon).', ERRCODE = 'object_not_in_prerequisite_state';
      END IF;
    END LOOP;
    RETURN;
  END IF;
  FOR item IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF item.schema_name IS NULL OR item.schema_name NOT LIKE 'pg\\_temp%' THEN
      RAISE EXCEPTION '{MESSAGE} (%)', TG_TAG
        USING HINT = 'Run it after the migration, or stop the migration first '
                     '(websonic db abandon).', ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
  END LOOP;
END $$;
DROP EVENT TRIGGER IF EXISTS websonic_ddl_guard;
DROP EVENT TRIGGER IF EXISTS websonic_drop_guard;
CREATE EVENT TRIGGER websonic_ddl_guard ON ddl_command_end EXECUTE FUNCTION websonic.refuse_ddl();
CREATE EVENT TRIGGER websonic_drop_guard ON sql_drop EXECUTE FUNCTION websonic.refuse_ddl();
"""

REMOVE = """
DROP EVENT TRIGGER IF EXISTS websonic_ddl_guard;
DROP EVENT TRIGGER IF EXISTS websonic_drop_guard;
DROP SCHEMA IF EXISTS websonic CASCADE;
"""


def install(conn: psycopg.Connection) -> bool:
    """Install the guard (in a session that bypasses it); False without the right to."""
    try:
        with conn.transaction():
            conn.execute(INSTALL.encode())
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def remove(conn: psycopg.Connection) -> None:
    conn.execute(REMOVE.encode())
