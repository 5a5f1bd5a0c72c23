"""Background jobs: which handler runs each kind, the queue, and the in-process workers.

`websonic serve` starts worker threads on the SQLite queue; with WEBSONIC_QUEUE_URL=redis://…
several machines run `websonic worker` against one queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websonic.jobs import service as jobs
from websonic.jobs.models import Job
from websonic.platform import Platform

if TYPE_CHECKING:
    from huey import Huey

Handler = Callable[[Platform, Job, jobs.JobReporter], dict[str, Any]]
TASK_NAME = "websonic.run_job"


def handlers() -> dict[str, Handler]:
    from websonic.builds import jobs as build_jobs
    from websonic.installer import deploy

    return {
        "build": build_jobs.run_build,
        "base-build": build_jobs.run_base_build,
        "deploy": deploy.run_deploy_job,
        "rollback": deploy.run_deploy_job,
    }


class Workers:
    """The job queue bound to one platform; enqueue from anywhere, run in worker threads."""

    def __init__(self, platform: Platform, queue: Huey | None = None) -> None:
        from websonic.core.queue import make_queue

        self.platform = platform
        self.queue = queue or make_queue(platform.settings.jobs_path, platform.settings.queue_url)
        self._task = self.queue.task(name=TASK_NAME)(self._run)
        self._consumer: Any = None

    def _run(self, job_id: int) -> None:
        run_now(self.platform, job_id)

    def enqueue(self, job_id: int) -> None:
        self._task(job_id)

    def start(self) -> None:
        """Start worker threads; jobs still queued from before a restart are enqueued again."""
        from websonic.core.queue import start_consumer

        self._consumer = start_consumer(self.queue, self.platform.settings.workers)
        with self.platform.sessions() as session:
            for job_id in jobs.queued_ids(session):
                self.enqueue(job_id)

    def stop(self) -> None:
        from websonic.core.queue import stop_consumer

        if self._consumer is not None:
            stop_consumer(self._consumer)
            self._consumer = None


def run_now(
    platform: Platform, job_id: int, reporter_listener: Callable[[float, str], None] | None = None
) -> Job | None:
    """Run a queued job in this process (the CLI does this; workers too)."""

    def work(job: Job, reporter: jobs.JobReporter) -> dict[str, Any]:
        if reporter_listener is not None:
            reporter.listeners.append(reporter_listener)
        handler = handlers().get(job.kind)
        if handler is None:
            raise ValueError(f"no handler for job kind {job.kind!r}")
        return handler(platform, job, reporter)

    return jobs.execute(platform.sessions, job_id, platform.settings.logs_dir, work)
