"""What every step of a run shares: both URLs, the options, the checkpoint and the progress.

Copy workers report from several threads: saving the checkpoint and showing progress are
serialised here, and progress is shown at most a few times a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from websonic.migration.engine import RunContext
from websonic.migration.mariadb.connect import Connection, rows
from websonic.migration.plan import MigrateOptions
from websonic.migration.report import Phase, Progress
from websonic.migration.urls import DatabaseUrl

PROGRESS_EVERY = 0.25


@dataclass
class Counters:
    tables_done: int = 0
    tables_total: int = 0
    rows: int = 0
    bytes: int = 0
    bytes_total: int = 0


@dataclass
class Migration:
    source: DatabaseUrl
    target: DatabaseUrl
    options: MigrateOptions
    run: RunContext
    counters: Counters = field(default_factory=Counters)
    phases: dict[str, float] = field(default_factory=dict)
    lock: Any = field(default_factory=threading.RLock, repr=False)
    _shown: float = 0.0

    @property
    def checkpoint(self) -> dict[str, Any]:
        return self.run.checkpoint

    def save(self, **changes: Any) -> None:
        with self.lock:
            self.run.save(**changes)

    def show(self, phase: Phase, message: str = "", *, force: bool = True,
             lag_bytes: int | None = None) -> None:  # fmt: skip
        now = time.monotonic()
        with self.lock:
            if not force and now - self._shown < PROGRESS_EVERY:
                return
            self._shown = now
            c = self.counters
            self.run.progress(Progress(phase, message, c.tables_done, c.tables_total, c.rows,
                                       c.bytes, c.bytes_total, lag_bytes))  # fmt: skip

    def count(self, rows_: int, bytes_: int) -> None:
        with self.lock:
            self.counters.rows += rows_
            self.counters.bytes += bytes_

    def timed(self, phase: str, started: float) -> None:
        self.phases[phase] = round(self.phases.get(phase, 0.0) + time.monotonic() - started, 3)


def source_identity(conn: Connection, url: DatabaseUrl) -> str:
    """Who the source is, independent of how it is reached (a tunnel's port changes)."""
    host, port, server_id = rows(conn, "SELECT @@hostname, @@port, @@server_id")[0]
    return f"{url.user}@{host}:{port}/{url.database} (server_id {server_id})"
