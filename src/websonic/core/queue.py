"""The durable job queue (huey): SQLite in the state folder, or Redis for shared workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer


def make_queue(jobs_path: Path, queue_url: str | None) -> Huey:
    if queue_url:
        return RedisHuey("websonic", url=queue_url)
    return SqliteHuey("websonic", filename=str(jobs_path))


class InProcessConsumer(Consumer):
    """A huey consumer that runs inside another program (the web server owns the signals)."""

    def _set_signal_handlers(self) -> None:
        return None


def start_consumer(queue: Huey, workers: int) -> InProcessConsumer:
    consumer = InProcessConsumer(
        queue,
        workers=workers,
        worker_type="thread",
        periodic=False,
        check_worker_health=False,
        max_delay=1.0,
    )
    consumer.start()
    return consumer


def stop_consumer(consumer: Any, timeout: float = 30.0) -> None:
    consumer.shutdown_timeout = timeout
    consumer.stop(graceful=True)
