"""The contract every database engine implements, and the run context it is given.

The framework (``service``) parses URLs, opens SSH tunnels, keeps the run's record (so a killed
run resumes or cleans up), shows progress and renders reports; an engine knows its database:

- ``probe``: connect and read version, size and the settings that matter (a wrong password or an
  unreachable server raises ``ConnectionFailed`` with a message saying which);
- ``plan``: what would be copied and every blocker found, before anything changes;
- ``migrate``: the copy (offline) or copy + change capture + cutover (online), resumable from
  ``run.checkpoint``; it returns the per-table results, and the measured write downtime;
- ``verify``: exact row counts, chunked checksums and the object inventory, compared;
- ``abandon``: remove what an unfinished run left on both servers (slots, subscriptions,
  replication, markers) when the user starts over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websonic.migration.plan import MigrateOptions, Plan, ServerInfo
from websonic.migration.report import Progress, TableResult, VerifyReport
from websonic.migration.urls import DatabaseUrl

ProgressSink = Callable[[Progress], None]


class Stopped(Exception):
    """The user asked the run to stop (Ctrl-C, or the job was cancelled): it can be resumed."""


@dataclass
class RunContext:
    """Given to ``Engine.migrate``: the run's saved state and the ways to report and stop.

    ``checkpoint`` is a JSON-able dict the engine owns; ``save()`` writes it durably (call it
    after each step that must not be redone, e.g. a table copied). ``stop_requested`` is set
    when the user stops the run: check it between steps and raise ``Stopped`` at a safe point.
    """

    run_id: int | None
    checkpoint: dict[str, Any]
    progress: ProgressSink
    persist: Callable[[dict[str, Any]], None]
    log: Callable[[str], None]
    stop_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def resumed(self) -> bool:
        return bool(self.checkpoint)

    def save(self, **changes: Any) -> None:
        self.checkpoint.update(changes)
        self.persist(dict(self.checkpoint))

    def check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise Stopped("Stopped on request; run the same command again to resume.")


@dataclass
class Outcome:
    """What ``Engine.migrate`` did."""

    tables: list[TableResult] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    write_downtime_seconds: float | None = None
    verify: VerifyReport | None = None  # online: the verification made in the cutover window
    notes: list[str] = field(default_factory=list)  # for the user, e.g. how to undo a switch


class Engine(Protocol):
    name: str

    def probe(self, url: DatabaseUrl) -> ServerInfo: ...

    def plan(self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions) -> Plan: ...

    def migrate(
        self,
        source: DatabaseUrl,
        target: DatabaseUrl,
        options: MigrateOptions,
        run: RunContext,
    ) -> Outcome: ...

    def verify(
        self,
        source: DatabaseUrl,
        target: DatabaseUrl,
        options: MigrateOptions,
        progress: ProgressSink,
    ) -> VerifyReport: ...

    def abandon(
        self, source: DatabaseUrl, target: DatabaseUrl, checkpoint: dict[str, Any]
    ) -> None: ...


def engine_for(name: str) -> Engine:
    """The engine of a URL's kind (postgresql, mariadb, sqlite)."""
    if name == "postgresql":
        from websonic.migration.postgres import PostgresEngine

        return PostgresEngine()
    if name == "mariadb":
        from websonic.migration.mariadb import MariadbEngine

        return MariadbEngine()
    from websonic.migration.sqlite import SqliteEngine

    return SqliteEngine()
