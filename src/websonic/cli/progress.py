"""Running a job in the CLI's process with a Rich progress bar."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from websonic.cli.output import errors
from websonic.core.errors import BuildFailed, WebsonicError
from websonic.jobs.models import Job, JobStatus
from websonic.platform import Platform
from websonic.worker import run_now


def run_with_progress(platform: Platform, job_id: int, *, quiet: bool, what: str) -> Job:
    """Run a queued job here; raise BuildFailed (with the log's place) if it fails."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
        console=errors,
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task(what, total=1.0, step="")

        def listener(fraction: float, step: str) -> None:
            bar.update(task, completed=fraction, step=step[:60])

        job = run_now(platform, job_id, listener)
    if job is None:
        raise BuildFailed(f"Job {job_id} was already taken by another worker.")
    if job.status is not JobStatus.SUCCEEDED:
        raise job_error(job)
    return job


def job_error(job: Job) -> WebsonicError:
    """The error a failed job ended with, with its exit code (BuildFailed's by default)."""
    error = WebsonicError(
        job.error or f"Job {job.id} failed.",
        hint=f"Full log: {job.log_path} (or: websonic job log {job.id})",
    )
    error.exit_code = int((job.result or {}).get("exit_code") or BuildFailed.exit_code)
    return error
