"""MariaDB/MySQL -> MariaDB: one consistent snapshot copied in parallel, GTID replication for
online mode, a short cutover, verified (see docs/migration-mariadb.md)."""

from websonic.migration.mariadb.engine import MariadbEngine

__all__ = ["MariadbEngine"]
