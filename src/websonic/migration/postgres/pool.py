"""Run tasks on ``jobs`` worker threads, each with its own connections (opened once per thread).

The first failure stops the others at their next task and is raised; a stop request does the
same with ``Stopped``. PostgreSQL does the work, so threads are enough: the GIL is released
while libpq waits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from websonic.migration.engine import Stopped

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W", bound="Closeable")


class Closeable(Protocol):
    def close(self) -> None: ...


class Pool(Generic[W, T, R]):
    def __init__(
        self, jobs: int, open_worker: Callable[[], W], stop: threading.Event, *, close: bool = True
    ) -> None:
        self.jobs, self.open_worker, self.stop, self.close = max(1, jobs), open_worker, stop, close
        self.failed: list[BaseException] = []
        self.lock = threading.Lock()

    def run(
        self,
        tasks: Sequence[T],
        do: Callable[[W, T], R],
        done: Callable[[T, R], None] | None = None,
    ) -> None:
        todo: queue.SimpleQueue[T] = queue.SimpleQueue()
        for task in tasks:
            todo.put(task)
        threads = [
            threading.Thread(target=self._work, args=(todo, do, done), daemon=True)
            for _ in range(min(self.jobs, len(tasks)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.failed:
            raise self.failed[0]
        if self.stop.is_set():
            raise Stopped("Stopped on request; run the same command again to resume.")

    def _work(
        self,
        todo: queue.SimpleQueue[T],
        do: Callable[[W, T], R],
        done: Callable[[T, R], None] | None,
    ) -> None:
        try:
            worker = self.open_worker()
        except BaseException as exc:
            self._fail(exc)
            return
        try:
            while not self.failed and not self.stop.is_set():
                try:
                    task = todo.get_nowait()
                except queue.Empty:
                    return
                result = do(worker, task)
                if done is not None:
                    with self.lock:
                        done(task, result)
        except BaseException as exc:
            self._fail(exc)
        finally:
            if self.close:
                worker.close()

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            self.failed.append(exc)
