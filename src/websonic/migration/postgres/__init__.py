"""PostgreSQL migrations: offline (one snapshot) and online (snapshot + logical replication +
a short cutover), resumable and verified. How it works: docs/migration-postgresql.md."""

from websonic.migration.postgres.engine import PostgresEngine

__all__ = ["PostgresEngine"]
