"""The cutover: a short window in which the source takes no writes and the target catches up.

1. Freeze the application's writes, not the tooling: ``ALTER DATABASE … SET
   default_transaction_read_only = on`` (new sessions are read-only) and
   ``pg_terminate_backend`` of the database's other client sessions (their open transactions
   roll back; nothing they were told was committed is lost). Our own session, the walsender and
   other databases are untouched.
2. Read ``pg_current_wal_lsn()`` and wait until the slot's ``confirmed_flush_lsn`` reaches it:
   the target has applied and flushed every committed write (bounded by ``cutover_timeout``).
3. Copy sequence values (logical replication does not carry them).
4. Verify, within a budget that keeps the window short (see ``window_scope``): exact row counts
   of every table, checksums of the tables up to ``WINDOW_CHECKSUM_BYTES``, the object
   inventory and the sequence values. The full chunked checksum of every table was made before,
   against the bulk copy's snapshot; what happened since is logical replication's own apply.
5. Run ``on_switch`` (``sh -c``), which points the application at the target.

Any failure or timeout before the switch UNFREEZES the source: the application keeps its
source and the replication keeps running (the same command tries again). After the switch the
source stays read-only, for a rollback: ``ALTER DATABASE … RESET default_transaction_read_only``
makes it writable again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from websonic.core.errors import MigrationFailed, ToolFailed
from websonic.core.runner import Command
from websonic.migration.postgres import connect as pgconnect
from websonic.migration.postgres import replication, sequences
from websonic.migration.postgres.bulk import Job
from websonic.migration.postgres.verify import Scope, Verifier
from websonic.migration.report import Progress, VerifyReport

WINDOW_CHECKSUM_BYTES = 32 << 20
POLL_SECONDS = 0.005
SWITCH_TIMEOUT = 600.0

OTHER_SESSIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND backend_type = 'client backend' AND NOT pid = ANY(%s)
"""


def window_scope() -> Scope:
    return Scope(checksum_bytes=WINDOW_CHECKSUM_BYTES, sequences=True, marker=False)


def read_only(conn: psycopg.Connection, on: bool) -> None:
    database = sql.Identifier(conn.info.dbname)
    if on:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(database)
        )
    else:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(database)
        )


def freeze(conn: psycopg.Connection, ours: list[int]) -> None:
    """Read-only for new sessions; the database's other sessions (not ``ours``) ended."""
    read_only(conn, True)
    conn.execute(OTHER_SESSIONS, (ours,))


def undo_hint(database: str) -> str:
    return (
        f"The source database {database} is left read-only for a rollback. To go back to "
        f'it: ALTER DATABASE "{database}" RESET default_transaction_read_only; (and point '
        "the application at it again)."
    )


def flush_wal(conn: psycopg.Connection) -> None:
    """Flush the source's WAL now: the walsender only sends flushed WAL, and a server with
    ``synchronous_commit = off`` would otherwise leave the last commits to its WAL writer."""
    conn.execute("SET synchronous_commit = on")
    conn.execute("SELECT pg_logical_emit_message(true, 'websonic', 'cutover')")


def wait_for_target(src: psycopg.Connection, slot: str, lsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not replication.confirmed(src, slot, lsn):
        # a tiny WAL record wakes the walsender, whose keepalive makes the target report
        # its flushed position now rather than at its next idle timeout (up to a second)
        src.execute("SELECT pg_logical_emit_message(false, 'websonic', 'cutover')")
        if time.monotonic() > deadline:
            raise MigrationFailed(
                f"The target did not confirm the source's position {lsn} within {timeout:.0f} s;"
                " the cutover was given up and the source is writable again.",
                hint="Run the same command again (the replication keeps running).",
            )
        time.sleep(POLL_SECONDS)


def cutover(job: Job, names: replication.Names) -> tuple[float, VerifyReport | None]:
    """Freeze, drain, sequences, verify, switch: (write downtime in seconds, the verification).

    Raises (source unfrozen) when it cannot switch; returns (-1, report) when the
    verification found a difference (source unfrozen, nothing switched)."""
    verifier = Verifier(job.source, job.target, job.options.jobs, job.options.chunk_rows,
                        job.run.progress, window_scope())  # fmt: skip
    with pgconnect.connect(job.source) as src, pgconnect.connect(job.target) as tgt, verifier:
        pgconnect.bypass_guard(src)
        job.run.save(phase="cutover", frozen=True)
        steps = Steps(job)
        started = steps.last
        try:
            freeze(src, [c.source.info.backend_pid for c in verifier.checkers])
            report = _drain_and_check(job, src, tgt, names, verifier, steps)
            if report is not None:
                report = report.expecting(job.options.target_accounts)
            if report is not None and not report.ok:
                _unfreeze(job, src)
                return -1.0, report
            _switch(job)
        except BaseException:
            _unfreeze(job, src)
            raise
        downtime = time.monotonic() - started
    job.run.save(switched=True, window=report.to_json() if report else None)
    return downtime, report


def _drain_and_check(
    job: Job, src: psycopg.Connection, tgt: psycopg.Connection, names: replication.Names,
    verifier: Verifier, steps: Steps,
) -> VerifyReport | None:  # fmt: skip
    row = src.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    lsn = str(row[0]) if row else "0/0"
    flush_wal(src)
    steps.done("freeze")
    job.run.progress(Progress("cutover", f"source frozen at {lsn}; waiting for the target"))
    wait_for_target(src, names.slot, lsn, job.options.cutover_timeout)
    steps.done("drain")
    sequences.write(tgt, sequences.read(src))
    steps.done("sequences")
    if not job.options.verify:
        return None
    job.run.progress(Progress("verify", "verifying in the cutover window"))
    report = verifier.run()
    steps.done("verify")
    return report


@dataclass
class Steps:
    """How long each step of the window took (logged: what the downtime is made of)."""

    job: Job
    last: float = field(default_factory=time.monotonic)

    def done(self, step: str) -> None:
        now = time.monotonic()
        self.job.run.log(f"cutover: {step} {now - self.last:.3f} s")
        self.last = now


def _switch(job: Job) -> None:
    if not job.options.on_switch:
        return
    job.run.progress(Progress("cutover", "switching the application (--on-switch)"))
    command = Command.of(
        "sh", "-c", job.options.on_switch, secrets=job.source.secrets() + job.target.secrets()
    )
    try:
        job.runner.run(command, timeout=SWITCH_TIMEOUT)
    except ToolFailed as exc:
        said = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else "no output"
        raise MigrationFailed(
            f"The --on-switch command failed (exit {exc.returncode}: {said}); the source is "
            "writable again and the replication goes on.",
            hint="Fix the command and run the same migration again: it switches then.",
        ) from None


def _unfreeze(job: Job, src: psycopg.Connection) -> None:
    read_only(src, False)
    job.run.save(frozen=False)
    job.run.log("Cutover given up: the source is writable again.")
