"""Shared workers: jobs queued in Redis are run by a separate `websonic worker` process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import redis

from conftest import EXAMPLES, Cli

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_queue() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (./scripts/test starts it)")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.mark.containers
def test_a_separate_worker_runs_builds_queued_in_redis(cli: Cli, redis_queue: str) -> None:
    env = {"WEBSONIC_QUEUE_URL": redis_queue}
    cli.run("base", "build", "static")
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    queued = cli.json("build", "acme/brochure", "--background", **env)
    assert redis.Redis.from_url(redis_queue).keys("*"), "nothing was queued in Redis"
    worker = subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", "worker"],
        env=cli.env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while cli.json("job", "show", str(queued["job"]))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the worker never finished the build"
            time.sleep(1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    job = cli.json("job", "show", str(queued["job"]))
    assert job["status"] == "succeeded", job["error"]
    assert worker.returncode == 0
