"""The SQLite engine: both files on this machine, copied offline as one consistent snapshot.

SQLite has no change capture, so there is no online mode. The offline copy holds a read
transaction on the source for its whole length and runs the online backup API in steps inside
it: the copy is the database exactly as it was when the copy started, while the application
keeps reading and (in WAL mode) writing. Writes made after that moment are not in the copy.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from websonic.core.errors import InvalidInput, MigrationFailed
from websonic.migration.engine import Outcome, ProgressSink, RunContext
from websonic.migration.plan import Blocker, MigrateOptions, Plan, ServerInfo, TablePlan
from websonic.migration.report import Progress, TableResult, VerifyReport
from websonic.migration.sqlite import catalog, copy
from websonic.migration.sqlite.catalog import Table
from websonic.migration.sqlite.checksums import compare
from websonic.migration.urls import DatabaseUrl

#: Rough speeds for the plan's estimate (measured here: backup ~200 MB/s, checksums ~300k
#: rows/s; both sides are read to verify).
COPY_BYTES_PER_SECOND = 200e6
CHECK_ROWS_PER_SECOND = 150e3
DISK_MARGIN = 1.05

ONLINE_HINT = (
    "Use --mode offline: its copy is a consistent snapshot taken with SQLite's online backup "
    "API while the application keeps running, but writes made after the snapshot are not "
    "carried to the target (stop the application's writes first, or copy again before "
    "switching)."
)


class SqliteEngine:
    name = "sqlite"

    def probe(self, url: DatabaseUrl) -> ServerInfo:
        return catalog.probe(url.path)

    def plan(self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions) -> Plan:
        conn = catalog.open_readonly(source.path, "source database")
        try:
            with catalog.snapshot(conn):
                tables = _table_plans(conn, options.chunk_rows)
                objects = catalog.object_counts(conn)
                settings = {n: catalog.pragma(conn, n) for n in ("quick_check", "journal_mode")}
        finally:
            conn.close()
        _refuse_same_file(source.path, target.path)
        catalog.check_folder(target.path)
        plan = Plan("sqlite", options.mode, source.masked(), target.masked(),
                    _version(source.path), _version(target.path), tables=tables,
                    objects=objects)  # fmt: skip
        plan.blockers = _blockers(source.path, target.path, options, settings, objects)
        plan.estimated_seconds = round(_estimate(plan, options), 1)
        return plan

    def migrate(
        self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions, run: RunContext
    ) -> Outcome:
        if options.mode != "offline":
            raise MigrationFailed("SQLite has no online mode.", hint=ONLINE_HINT)
        partial = copy.partial_path(target.path)
        with copy.claimed(partial, run.log):
            run.save(phase="copy", partial=str(partial))
            try:
                outcome = _copy_and_check(source.path, partial, options, run)
                if outcome.verify is not None and not outcome.verify.ok:
                    copy.discard(partial)
                    run.log(f"The copy does not match the source: {target.path} not replaced.")
                    return outcome
                _refuse_filled_target(target.path, options)
                copy.put_in_place(partial, target.path, source.path.stat())
            except BaseException:
                copy.discard(partial)
                raise
        run.log(f"{target.path} is in place (renamed from {partial.name}).")
        run.save(phase="done")
        return outcome

    def verify(
        self, source: DatabaseUrl, target: DatabaseUrl, options: MigrateOptions,
        progress: ProgressSink,
    ) -> VerifyReport:  # fmt: skip
        started = time.monotonic()
        mine = catalog.open_readonly(source.path, "source database")
        theirs = catalog.open_readonly(target.path, "target database")
        try:
            with catalog.snapshot(mine), catalog.snapshot(theirs):
                report = _compare(mine, theirs, options, progress)
        finally:
            mine.close()
            theirs.close()
        report.seconds = time.monotonic() - started
        return report

    def abandon(self, source: DatabaseUrl, target: DatabaseUrl, checkpoint: dict[str, Any]) -> None:
        partial = copy.partial_path(target.path)  # never a path read from the checkpoint
        if not copy.discard_unclaimed(partial):
            raise MigrationFailed(f"A migration is still copying into {partial}: stop it first.")


# --- plan -------------------------------------------------------------------------------------


def _refuse_same_file(source: Path, target: Path) -> None:
    same = source.resolve() == target.resolve()
    if not same and source.exists() and target.exists():
        same = os.path.samefile(source, target)
    if same:
        raise InvalidInput(f"The source and the target are the same file ({source}).")


def _version(path: Path) -> str:
    text = f"SQLite {sqlite3.sqlite_version}"
    if not path.exists():
        return f"{text} (new file)"
    written = catalog.writer_version(path)
    return f"{text} (file written by {written})" if written else text


def _table_plans(conn: sqlite3.Connection, chunk_rows: int) -> list[TablePlan]:
    tables = [t for t in catalog.tables(conn) if not t.virtual]
    rows = {t.name: catalog.count_rows(conn, t) for t in tables}
    sizes = catalog.table_bytes(conn, rows)
    chunks = {t.name: max(1, -(-rows[t.name] // chunk_rows)) if t.key else 1 for t in tables}
    return [TablePlan(t.name, rows[t.name], sizes[t.name], t.key, chunks[t.name]) for t in tables]


def _blockers(
    source: Path, target: Path, options: MigrateOptions, settings: dict[str, str],
    objects: dict[str, int],
) -> list[Blocker]:  # fmt: skip
    found = []
    if options.mode == "online":
        found.append(Blocker("online-unsupported", "SQLite has no change capture: there is no "
                             "online mode.", ONLINE_HINT))  # fmt: skip
    if settings["quick_check"] != "ok":
        found.append(Blocker("damaged", f"The source fails PRAGMA quick_check: "
                             f"{settings['quick_check']}",
                             "Repair it first (sqlite3 .recover)."))  # fmt: skip
    found += _target_blockers(target, options)
    found += _disk_blockers(source, target)
    found += _warnings(source, target, settings)
    return found


def _target_blockers(target: Path, options: MigrateOptions) -> list[Blocker]:
    if not target.exists():
        return []
    conn = catalog.open_readonly(target, "target database")
    try:
        empty = catalog.is_empty(conn)
    finally:
        conn.close()
    if empty:
        return []
    if options.force:
        return [Blocker("not-empty", f"The target {target} is not empty: it will be replaced "
                        "by the copy (--force).", fatal=False)]  # fmt: skip
    return [Blocker("not-empty", f"The target {target} already holds a database.",
                    "Choose another path, or replace it with --force.")]  # fmt: skip


def _disk_blockers(source: Path, target: Path) -> list[Blocker]:
    needed = catalog.file_bytes(source)
    free = shutil.disk_usage(target.parent).free
    if free >= needed * DISK_MARGIN:
        return []
    return [Blocker("disk", f"{target.parent} has {free:,} bytes free; the copy needs about "
                    f"{needed:,}.", "Free some space or choose another folder.")]  # fmt: skip


def _warnings(source: Path, target: Path, settings: dict[str, str]) -> list[Blocker]:
    found = [Blocker("snapshot", "The copy is the source as it is when the copy starts: writes "
                     "made after that are not carried to the target.",
                     "Stop the application's writes first (or copy again before switching).",
                     fatal=False)]  # fmt: skip
    if settings["journal_mode"].lower() != "wal":
        found.append(Blocker("journal-mode", f"The source uses journal mode "
                             f"{settings['journal_mode']}: the application's writes wait while "
                             "the copy and its verification run (WAL mode lets them go on).",
                             fatal=False))  # fmt: skip
    partial = copy.partial_path(target)
    if partial.exists():
        found.append(Blocker("partial-copy", f"{partial} is left from an interrupted run: "
                             "it will be removed and the copy started over.",
                             fatal=False))  # fmt: skip
    return found


def _estimate(plan: Plan, options: MigrateOptions) -> float:
    seconds = plan.total_bytes / COPY_BYTES_PER_SECOND
    return seconds + (plan.total_rows / CHECK_ROWS_PER_SECOND if options.verify else 0.0)


# --- migrate ----------------------------------------------------------------------------------


def _copy_and_check(source: Path, partial: Path, options: MigrateOptions,
                    run: RunContext) -> Outcome:  # fmt: skip
    conn = catalog.open_readonly(source, "source database")
    try:
        with catalog.snapshot(conn):
            taken = time.strftime("%Y-%m-%d %H:%M:%S")
            tables = catalog.tables(conn)
            started = time.monotonic()
            _backup(conn, partial, run, len(tables))
            copied = time.monotonic()
            run.save(phase="verify")
            outcome = _check(conn, partial, tables, options, run)
    finally:
        conn.close()
    outcome.notes.append(f"The copy is the source as it was at {taken}: writes made after "
                         "that are not in it (SQLite has no change capture).")  # fmt: skip
    check = "verify" if options.verify else "check"  # --no-verify: quick_check and counts
    outcome.phases = {"copy": round(copied - started, 3),
                      check: round(time.monotonic() - copied, 3)}  # fmt: skip
    return outcome


def _backup(conn: sqlite3.Connection, partial: Path, run: RunContext, tables: int) -> None:
    page_size = int(catalog.pragma(conn, "page_size"))

    def step(done: int, total: int) -> None:
        run.progress(Progress("copy", f"{done:,}/{total:,} pages", tables_total=tables,
                              bytes=done * page_size, bytes_total=total * page_size))  # fmt: skip
        run.check_stop()

    copy.backup(conn, partial, step)


def _check(conn: sqlite3.Connection, partial: Path, tables: list[Table],
           options: MigrateOptions, run: RunContext) -> Outcome:  # fmt: skip
    """The copy compared with the snapshot it was made from (still held), or at least checked
    for damage when ``--no-verify``."""
    copied = catalog.open_immutable(partial)
    try:
        quick = catalog.pragma(copied, "quick_check")
        if quick != "ok":
            raise MigrationFailed(f"The copy fails PRAGMA quick_check: {quick}")
        if not options.verify:
            rows = {t.name: catalog.count_rows(conn, t) for t in tables if not t.virtual}
            return Outcome(tables=_results(rows, conn))
        started = time.monotonic()
        report = _compare(conn, copied, options, run.progress)
        report.seconds = time.monotonic() - started
    finally:
        copied.close()
    rows = {t.name: t.source_rows for t in report.tables}
    return Outcome(tables=_results(rows, conn), verify=report)


def _results(rows: dict[str, int], conn: sqlite3.Connection) -> list[TableResult]:
    sizes = catalog.table_bytes(conn, rows)
    return [TableResult(name, count, sizes[name]) for name, count in rows.items()]


def _refuse_filled_target(target: Path, options: MigrateOptions) -> None:
    """The target was checked at planning; refuse if something filled it since."""
    if options.force or not target.exists():
        return
    if _target_blockers(target, options):
        raise MigrationFailed(f"{target} was filled while the copy ran: not replaced.",
                              hint="Replace it with --force.")  # fmt: skip


def _compare(source: sqlite3.Connection, target: sqlite3.Connection, options: MigrateOptions,
             progress: ProgressSink) -> VerifyReport:  # fmt: skip
    mine, theirs = catalog.tables(source), catalog.tables(target)
    checked = [t for t in mine if not t.virtual]
    done: dict[str, int] = {}

    def rows_checked(table: str, rows: int) -> None:
        done[table] = rows
        progress(Progress("verify", table, tables_done=len(done) - 1,
                          tables_total=len(checked), rows=sum(done.values())))  # fmt: skip

    return compare(source, target, mine, theirs, options.chunk_rows, rows_checked)
