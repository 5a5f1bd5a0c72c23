"""SQLite -> SQLite on this machine: an online-backup snapshot into a file beside the target,
verified, then renamed into place (see docs/migration-sqlite.md)."""

from websonic.migration.sqlite.engine import SqliteEngine

__all__ = ["SqliteEngine"]
