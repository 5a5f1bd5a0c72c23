"""Continuous HTTPS load on a site while something happens (a deploy, a rollback).

Each worker thread keeps one keep-alive connection and sends GETs back to back; every answer
(status) or failure (exception) is recorded with its time, so a test can tell exactly how many
requests failed and when, and which release answered.

Like Go's net/http, curl and browsers (RFC 9112, 9.3.1), a GET sent on a kept-alive connection
that the server closed as idle -- "disconnected without sending a response" -- is sent again
once, on a new connection: a proxy reloading its configuration closes its idle connections.
Such retries are counted (``retried``), never hidden; any other error is a failure.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import httpx

IDLE_CLOSE = "Server disconnected without sending a response"


@dataclass(frozen=True)
class Answer:
    at: float
    status: int  # 0: no answer (connection error, timeout)
    body: str
    error: str = ""
    retried: bool = False  # answered on a second try: the first connection was closed idle


@dataclass
class Load:
    url: str
    verify: ssl.SSLContext
    domain: str | None = None
    workers: int = 4
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._wait_for_first()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _wait_for_first(self) -> None:
        deadline = time.monotonic() + 30
        while not self.answers and time.monotonic() < deadline:
            time.sleep(0.05)

    def _work(self) -> None:
        headers = {"Host": self.domain} if self.domain else {}
        extensions = {"sni_hostname": self.domain} if self.domain else {}
        with httpx.Client(verify=self.verify, timeout=10) as client:
            while not self._stop.is_set():
                self._record(self._one(client, headers, extensions))

    def _one(self, client: httpx.Client, headers: dict, extensions: dict) -> Answer:
        retried = False
        for attempt in (1, 2):
            try:
                response = client.get(self.url, headers=headers, extensions=extensions)
            except httpx.RemoteProtocolError as exc:
                if attempt == 1 and IDLE_CLOSE in str(exc):
                    retried = True
                    continue
                return Answer(time.monotonic(), 0, "", f"{type(exc).__name__}: {exc}", retried)
            except httpx.HTTPError as exc:
                return Answer(time.monotonic(), 0, "", f"{type(exc).__name__}: {exc}", retried)
            break
        return Answer(time.monotonic(), response.status_code, response.text[:2000], "", retried)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    @property
    def retried(self) -> int:
        return sum(1 for a in self.answers if a.retried)

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def bodies_with(self, text: str) -> int:
        return sum(1 for a in self.answers if text in a.body)
