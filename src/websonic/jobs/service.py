"""Job records: submit, claim, run with a reporter, reap the ones a dead worker left running.

A job is claimed atomically (queued -> running) so a job enqueued twice runs once. The worker
that runs it is recorded as ``host:pid:start-time``; when that process is gone (killed, machine
restarted) the next start of WebSonic on that host marks the job failed, never "running" forever.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from websonic.core.db import transaction, utcnow
from websonic.core.errors import NotFound, WebsonicError
from websonic.jobs.models import Job, JobStatus

INTERRUPTED = "Interrupted: the process running this job stopped before it finished. Run it again."


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (to tell a reused pid from the original)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def this_worker() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid)}"


def worker_alive(worker: str) -> bool | None:
    """True/False for a worker on this host; None when it ran elsewhere (cannot tell)."""
    host, _, rest = worker.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    return process_start_time(int(pid_text)) == started


def submit(
    session: Session,
    kind: str,
    params: dict[str, Any],
    *,
    requested_by: str,
    customer_id: int | None = None,
    site_id: int | None = None,
) -> Job:
    job = Job(
        kind=kind,
        params=params,
        requested_by=requested_by,
        customer_id=customer_id,
        site_id=site_id,
        status=JobStatus.QUEUED,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Unknown job {job_id}.")
    return job


def list_jobs(session: Session, *, status: JobStatus | None = None, limit: int = 50) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query))


def queued_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED)))


def reap_interrupted(session: Session) -> list[int]:
    """Mark failed the running jobs whose worker process on this host is gone."""
    reaped = []
    for job in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING)):
        if job.worker and worker_alive(job.worker) is False:
            job.status, job.error, job.finished_at = JobStatus.FAILED, INTERRUPTED, utcnow()
            reaped.append(job.id)
    return reaped


def read_log(job: Job, offset: int = 0, limit: int = 1 << 20) -> tuple[str, int]:
    """Log text from byte ``offset`` on, and the offset to read from next."""
    if not job.log_path or not Path(job.log_path).is_file():
        return "", offset
    with open(job.log_path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(limit)
    return data.decode("utf-8", errors="replace"), offset + len(data)


class JobReporter:
    """Given to a running job: appends to its log, records progress (throttled)."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, log_path: Path) -> None:
        self._sessions = sessions
        self.job_id = job_id
        self.log_path = log_path
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._last_write = 0.0
        self._lock = threading.Lock()
        self.listeners: list[Callable[[float, str], None]] = []

    def line(self, text: str) -> None:
        with self._lock:
            self.log.write(text.rstrip("\n") + "\n")
            self.log.flush()

    def progress(self, fraction: float, step: str, *, force: bool = False) -> None:
        for listener in self.listeners:
            listener(fraction, step)
        now = time.monotonic()
        if not force and fraction < 1.0 and now - self._last_write < 0.5:
            return  # throttled, but never the last step: it says what the job made
        self._last_write = now
        with transaction(self._sessions) as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(progress=min(max(fraction, 0.0), 1.0), step=step[:200])
            )
        self.line(f"[{fraction:4.0%}] {step}")

    def close(self) -> None:
        self.log.close()


Work = Callable[[Job, JobReporter], dict[str, Any]]


def claim(sessions: sessionmaker[Session], job_id: int, logs_dir: Path) -> Job | None:
    """queued -> running, atomically; None if another worker took it or it is finished."""
    log_path = logs_dir / f"job-{job_id}.log"
    with transaction(sessions) as session:
        claimed = session.execute(  # type: ignore[attr-defined]
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                worker=this_worker(),
                started_at=utcnow(),
                log_path=str(log_path),
            )
        ).rowcount
        return session.get(Job, job_id) if claimed else None


def execute(sessions: sessionmaker[Session], job_id: int, logs_dir: Path, work: Work) -> Job | None:
    """Claim the job, run ``work``, and record how it ended (never leaves it running)."""
    job = claim(sessions, job_id, logs_dir)
    if job is None:
        return None
    reporter = JobReporter(sessions, job_id, Path(job.log_path or ""))
    status, result, error = JobStatus.FAILED, {}, None
    try:
        result = work(job, reporter)
        status = JobStatus.SUCCEEDED
    except WebsonicError as exc:
        error, result = str(exc), {"exit_code": exc.exit_code, "error_kind": type(exc).__name__}
    except Exception as exc:  # a bug: record it rather than leave the job running
        error = f"Internal error: {type(exc).__name__}: {exc}"
    finally:
        if error:
            reporter.line(f"FAILED: {error}")
        reporter.close()
        with transaction(sessions) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status=status,
                    result=result,
                    error=error,
                    finished_at=utcnow(),
                    progress=1.0 if status is JobStatus.SUCCEEDED else Job.progress,
                )
            )
    with sessions() as session:
        return session.get(Job, job_id)
