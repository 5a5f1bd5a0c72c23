"""Job records: claimed once, always finished, reaped when their process is gone."""

from __future__ import annotations

import subprocess

from websonic.core.errors import BuildFailed
from websonic.jobs import service as jobs
from websonic.jobs.models import Job, JobStatus
from websonic.platform import Platform


def submit(platform: Platform, kind: str = "test") -> int:
    with platform.transaction() as session:
        return jobs.submit(session, kind, {}, requested_by="test").id


def test_a_job_is_claimed_once(platform: Platform) -> None:
    job_id = submit(platform)
    logs = platform.settings.logs_dir
    assert jobs.claim(platform.sessions, job_id, logs) is not None
    assert jobs.claim(platform.sessions, job_id, logs) is None


def test_success_failure_and_crash_are_recorded_with_the_log(platform: Platform) -> None:
    def ok(job: Job, reporter: jobs.JobReporter) -> dict:
        reporter.line("working")
        reporter.progress(0.5, "half way", force=True)
        return {"answer": 42}

    def fails(job: Job, reporter: jobs.JobReporter) -> dict:
        raise BuildFailed("the Containerfile is broken")

    def crashes(job: Job, reporter: jobs.JobReporter) -> dict:
        raise RuntimeError("bug")

    done = jobs.execute(platform.sessions, submit(platform), platform.settings.logs_dir, ok)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert done.result == {"answer": 42} and done.progress == 1.0
    text, offset = jobs.read_log(done)
    assert "working" in text and "half way" in text and offset == len(text.encode())
    assert jobs.read_log(done, offset) == ("", offset)

    failed = jobs.execute(platform.sessions, submit(platform), platform.settings.logs_dir, fails)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error == "the Containerfile is broken"
    assert "FAILED: the Containerfile is broken" in jobs.read_log(failed)[0]

    crashed = jobs.execute(platform.sessions, submit(platform), platform.settings.logs_dir, crashes)
    assert crashed is not None and crashed.status is JobStatus.FAILED
    assert "RuntimeError" in (crashed.error or "")


def test_running_job_of_a_dead_process_is_reaped(platform: Platform) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive_id, dead_id = submit(platform), submit(platform)
    with platform.transaction() as session:
        session.get(Job, alive_id).status = JobStatus.RUNNING  # type: ignore[union-attr]
        session.get(Job, alive_id).worker = jobs.this_worker()  # type: ignore[union-attr]
        job = session.get(Job, dead_id)
        assert job is not None
        job.status, job.worker = (
            JobStatus.RUNNING,
            jobs.this_worker().replace(f":{__import__('os').getpid()}:", f":{dead.pid}:"),
        )
    with platform.transaction() as session:
        assert jobs.reap_interrupted(session) == [dead_id]
    with platform.sessions() as session:
        assert jobs.get_job(session, dead_id).status is JobStatus.FAILED
        assert "Interrupted" in (jobs.get_job(session, dead_id).error or "")
        assert jobs.get_job(session, alive_id).status is JobStatus.RUNNING


def test_workers_of_other_hosts_are_left_alone() -> None:
    assert jobs.worker_alive("another-host:1:123") is None
    assert jobs.worker_alive(jobs.this_worker()) is True


def test_progress_is_throttled_but_the_last_step_is_always_kept(platform: Platform) -> None:
    def quick(job: Job, reporter: jobs.JobReporter) -> dict:
        for step in ("one", "two", "three"):
            reporter.progress(0.5, step)  # within half a second: only the first is written
        reporter.progress(1.0, "made release 7")
        return {}

    done = jobs.execute(platform.sessions, submit(platform), platform.settings.logs_dir, quick)
    assert done is not None and done.step == "made release 7"
    text = jobs.read_log(done)[0]
    assert "one" in text and "two" not in text and "three" not in text
    assert text.endswith("[100%] made release 7\n")
