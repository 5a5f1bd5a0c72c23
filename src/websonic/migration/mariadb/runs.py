"""A migration from start to end, offline or online, resumed from the run's checkpoint.

Checkpoint phases: ``copy`` -> ``indexes`` -> ``objects`` (see ``bulk``), then offline
``verify`` -> ``done``; online ``catch-up`` -> ``cutover`` (``switched`` once --on-switch ran)
-> ``done``. The freeze is held by a session (table locks): no checkpoint has to undo it. After
the switch the source database is closed to the application's writes: ``closed`` lists the
GRANTs that reopen it (what was revoked, nothing else), ``left_open`` the accounts it cannot stop.
"""

from __future__ import annotations

import time

from websonic.core.errors import MigrationFailed
from websonic.core.runner import Runner
from websonic.migration.engine import Outcome
from websonic.migration.mariadb import closing, cutover, online
from websonic.migration.mariadb.bulk import bulk_copy, open_worker_snapshot, table_results
from websonic.migration.mariadb.connect import Connection, close, connect, execute, session, value
from websonic.migration.mariadb.context import Migration
from websonic.migration.mariadb.marker import unmark
from websonic.migration.mariadb.sql import string_literal
from websonic.migration.mariadb.verify import Sides, verify
from websonic.migration.report import VerifyReport


def run_offline(m: Migration) -> Outcome:
    bulk_copy(m, with_events=True)
    report = None
    if m.options.verify:
        m.save(phase="verify")
        started = time.monotonic()
        report = verify_now(m, expect_marker=True)
        m.timed("verify", started)
    if report is None or report.ok:
        with session(m.target) as target:
            unmark(target, m.target.database)
        m.save(phase="done")
    return Outcome(table_results(m), m.phases, None, report)


def verify_now(m: Migration, *, expect_marker: bool) -> VerifyReport:
    jobs = max(1, m.options.jobs)
    sources = [connect(m.source) for _ in range(jobs)]
    targets = [connect(m.target) for _ in range(jobs)]
    try:
        sides = Sides(sources, targets, m.source.database, m.target.database)
        report = verify(sides, m.options.chunk_rows, m.run.progress, expect_marker=expect_marker)
        return report.expecting(m.options.target_accounts)
    finally:
        for conn in [*sources, *targets]:
            close(conn)


def run_online(m: Migration, runner: Runner) -> Outcome:
    name = online.connection_name(m.target.database)
    if m.checkpoint.get("switched"):
        with session(m.source) as source:  # killed before the database was closed: close it
            cutover.close_database(m, source, {int(source.thread_id())})
        return _finish(m, name, None, None)
    cutover.restore_read_only(m)  # a run of an older WebSonic killed in its window
    if m.checkpoint.get("phase") not in ("catch-up", "cutover"):
        position = bulk_copy(m, with_events=False)
        with session(m.target) as target:
            online.start_replication(target, m, name, position.gtid)
        m.save(phase="catch-up", replication=name, scanned=position.to_json())
    online.ensure_replicating(m, name)
    if m.checkpoint.get("replication_paused"):
        m.save(replication_paused=False)  # a killed run's pause is over: replication runs
    return _catch_up_and_switch(m, name, runner)


def _catch_up_and_switch(m: Migration, name: str, runner: Runner) -> Outcome:
    started = time.monotonic()
    with session(m.source) as source, session(m.target) as target:
        online.catch_up(m, target, source, name)
        m.timed("catch-up", started)
        started = time.monotonic()
        before = verify_at_position(m, name)
        m.timed("verify", started)
        if not before.ok:
            raise MigrationFailed("The target does not match the source (checked at one GTID "
                                  "position before the cutover); nothing was frozen.",
                                  hint=_differences(before))  # fmt: skip
        online.catch_up(m, target, source, name)
        m.save(phase="cutover")
        downtime, after = _window(m, name, runner, source, target)
    return _finish(m, name, downtime, after)


def _differences(report: VerifyReport) -> str:
    bad = [f"{t.name}: {', '.join(t.mismatched[:3]) or 'row counts differ'}"
           for t in report.tables if not t.ok]  # fmt: skip
    bad += [f"{d.kind} {d.name} differs" for d in report.differences]
    return "; ".join(bad[:10])


def verify_at_position(m: Migration, name: str) -> VerifyReport:
    """Both sides compared at one GTID position G while the source keeps taking writes.

    The target's replication stops first (so it is behind G), the source's snapshot fixes G,
    then the target replicates exactly up to G (``UNTIL master_gtid_pos``) and opens its own
    snapshot there before replication goes on.
    """
    jobs = max(1, m.options.jobs)
    targets = [connect(m.target) for _ in range(jobs)]
    snapshot = None
    try:
        with session(m.target) as control:
            # Recorded before the pause: a run killed in it leaves the target's replication
            # stopped until the next run starts it again (ensure_replicating), and says so.
            m.save(replication_paused=True)
            execute(control, f"STOP SLAVE {string_literal(name)}")
            try:
                snapshot = open_worker_snapshot(m)
                _replicate_until(m, control, name, snapshot.position.gtid)
                for conn in targets:
                    execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            finally:
                online.reattach(control, name)
                m.save(replication_paused=False)
        sides = Sides(snapshot.connections, targets, m.source.database, m.target.database)
        return verify(sides, m.options.chunk_rows, m.run.progress, expect_marker=True,
                      relaxed=True).expecting(m.options.target_accounts)  # fmt: skip
    finally:
        if snapshot is not None:
            snapshot.close()
        for conn in targets:
            close(conn)


def _replicate_until(m: Migration, target: Connection, name: str, gtid: str) -> None:
    quoted = string_literal(name)
    execute(target, f"START SLAVE {quoted} UNTIL master_gtid_pos = {string_literal(gtid)}")
    wait = max(60.0, m.options.cutover_timeout * 4)
    reached = value(target, "SELECT MASTER_GTID_WAIT(%s, %s)", (gtid, wait))
    if reached is None or int(reached) != 0:
        raise MigrationFailed(f"The target did not reach GTID {gtid} for the verification.")
    online.wait_stopped(target, name)


def _window(m: Migration, name: str, runner: Runner, source: Connection,
            target: Connection) -> tuple[float, VerifyReport]:  # fmt: skip
    columns = cutover.auto_increment_columns(source, m.source.database)
    jobs = max(1, m.options.jobs)
    checkers = [connect(m.source) for _ in range(jobs)] + [connect(m.target) for _ in range(jobs)]
    spare = {int(c.thread_id()) for c in checkers}
    freezer = connect(m.source)
    frozen: cutover.Frozen | None = None
    try:
        frozen = cutover.freeze(m, source, freezer, spare)
        deadline = frozen.started + m.options.cutover_timeout
        cutover.drain(m, frozen, target, name, deadline)
        cutover.check_no_ddl(m, source, frozen.position)
        cutover.events_and_checks(m, source, target, columns)
        cutover.stop_replica(target, name)
        for conn in checkers:
            execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cutover.switch(m, runner)
        downtime = time.monotonic() - frozen.started
        m.save(switched=True, downtime=round(downtime, 3), frozen_at=frozen.position.to_json())
        cutover.release(m, source, frozen, spare)
    except BaseException:
        cutover.unfreeze(freezer)
        _roll_back(m, target, name)
        for conn in checkers:
            close(conn)
        raise
    assert frozen is not None
    m.show("verify", f"switched after {downtime:.3f} s of write downtime; verifying")
    try:
        return downtime, _verify_after(m, checkers, jobs, source, frozen)
    finally:
        for conn in checkers:
            close(conn)


def _roll_back(m: Migration, target: Connection, name: str) -> None:
    if m.checkpoint.get("switched"):
        return  # the application moved: nothing to take back
    cutover.resume_replica(target, name)
    m.save(phase="catch-up")


def _verify_after(m: Migration, checkers: list[Connection], jobs: int, source: Connection,
                  frozen: cutover.Frozen) -> VerifyReport:  # fmt: skip
    with session(m.target) as target:
        online.remove_replication(target, online.connection_name(m.target.database))
    sides = Sides(checkers[:jobs], checkers[jobs:], m.source.database, m.target.database)
    report = verify(sides, m.options.chunk_rows, m.run.progress, expect_marker=True,
                    counters=False, grants=False)  # fmt: skip
    report = report.expecting(m.options.target_accounts)
    late = cutover.writes_after_freeze(m, source, frozen)
    if late:
        report.differences.append(online.late_writes(late))
    return report


def _finish(m: Migration, name: str, downtime: float | None,
            report: VerifyReport | None) -> Outcome:  # fmt: skip
    with session(m.target) as target:
        online.remove_replication(target, name)
        if report is None or report.ok:
            unmark(target, m.target.database)
    if downtime is None:
        downtime = m.checkpoint.get("downtime")
    m.save(phase="done")
    notes = closing.reopen_notes(
        m.source.database, list(m.checkpoint.get("closed") or []),
        list(m.checkpoint.get("left_open") or []),
    )  # fmt: skip
    for note in notes:
        m.run.log(note)
    return Outcome(table_results(m), m.phases, downtime, report or VerifyReport(), notes)
