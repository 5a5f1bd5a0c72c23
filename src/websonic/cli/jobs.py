"""websonic job list|show|log"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, table
from websonic.jobs import service
from websonic.jobs.models import Job

app = typer.Typer(help="Background jobs (builds, base builds…).", no_args_is_help=True)


def job_data(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status.value,
        "progress": job.progress,
        "step": job.step,
        "error": job.error,
        "result": job.result,
        "requested_by": job.requested_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List recent jobs."""
    with get(ctx).platform.sessions() as session:
        data = [job_data(j) for j in service.list_jobs(session)]
    if as_json:
        emit_json({"jobs": data})
    else:
        table(
            "Jobs",
            ["id", "kind", "status", "progress", "step", "created"],
            [
                (
                    d["id"],
                    d["kind"],
                    d["status"],
                    f"{d['progress']:.0%}",
                    d["step"][:50],
                    d["created_at"],
                )
                for d in data
            ],
        )


@app.command("show")
def show(ctx: typer.Context, job_id: int = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Show a job's status."""
    with get(ctx).platform.sessions() as session:
        data = job_data(service.get_job(session, job_id))
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            console.print(f"[bold]{key}[/]: {value}", highlight=False)


@app.command("log")
def log(
    ctx: typer.Context,
    job_id: int = typer.Argument(...),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until it ends."),
) -> None:
    """Print a job's log (and follow it while it runs)."""
    platform = get(ctx).platform
    offset = 0
    while True:
        with platform.sessions() as session:
            job = service.get_job(session, job_id)
            text, offset = service.read_log(job, offset)
        sys.stdout.write(text)
        sys.stdout.flush()
        if not follow or (job.status.finished and not text):
            break
        time.sleep(0.5)
    if job.status.value == "failed":
        raise typer.Exit(1)
