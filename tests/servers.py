"""A real `websonic serve` process for tests that talk to it over TCP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    message: str,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``check`` until it is true; fail with ``message`` (and the process's output)."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"{message}: it exited\n{output}")
        assert time.monotonic() < deadline, message
        time.sleep(0.3)


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/login", timeout=2)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def serving(env: Mapping[str, str]) -> Iterator[str]:
    """Run `websonic serve` with ``env`` on a free loopback port; yield its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", "serve", "--port", str(port)],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 60, "websonic serve did not start", proc)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
