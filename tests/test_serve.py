"""`websonic serve` as a real process: login required, and durable background jobs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from builds.build_cleanup import no_build_container_left  # noqa: F401 (autouse)

from conftest import EXAMPLES, Cli
from servers import free_port, serving, wait_until


def job(cli: Cli, job_id: int) -> dict:
    return cli.json("job", "show", str(job_id))


def test_everything_needs_a_login(cli: Cli) -> None:
    with serving(cli.env()) as url:
        assert httpx.get(url + "/api/v1/customers").status_code == 401
        page = httpx.get(url + "/", follow_redirects=False)
        assert page.status_code in (302, 303) and "/login" in page.headers["location"]
        assert "password" in httpx.get(url + "/login").text.lower()


@pytest.mark.containers
def test_a_build_queued_before_serve_starts_runs_in_its_workers(cli: Cli) -> None:
    cli.run("base", "build", "static")
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    queued = cli.json("build", "acme/brochure", "--background")
    assert job(cli, queued["job"])["status"] == "queued"
    with serving(cli.env()):
        wait_until(
            lambda: job(cli, queued["job"])["status"] in ("succeeded", "failed"),
            300,
            "the queued build never ran",
        )
    done = job(cli, queued["job"])
    assert done["status"] == "succeeded", done["error"]
    assert (
        cli.json("release", "list", "acme/brochure")["releases"][0]["digest"]
        == done["result"]["digest"]
    )


@pytest.mark.containers
def test_serve_killed_during_a_build_leaves_no_job_running(cli: Cli, tmp_path: Path) -> None:
    cli.run("base", "build", "static")
    base = next(b["digest"] for b in cli.json("base", "list")["bases"] if b["kind"] == "static")
    source = tmp_path / "slow"
    source.mkdir()
    (source / "Containerfile").write_text(f"FROM {base}\nRUN sleep 90\n")
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/slow", "--source", str(source))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", "serve", "--port", str(port)],
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        queued = cli.json("build", "acme/slow", "--background")
        wait_until(
            lambda: job(cli, queued["job"])["status"] == "running", 120, "the build never started"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with serving(cli.env()):  # the restart finds the dead worker's job
        ended = job(cli, queued["job"])
    assert ended["status"] == "failed" and "Interrupted" in ended["error"]
    assert cli.json("release", "list", "acme/slow")["releases"] == []


def test_missing_container_tools_say_what_to_install(cli: Cli, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "setpriv"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    err = cli.fails("base", "build", "static", PATH=str(bin_dir))
    assert "is not installed" in err and "apt-get install -y" in err
    assert cli.json("job", "list", PATH=str(bin_dir))["jobs"][0]["status"] == "failed"
