"""A real `websonic serve` process for tests that talk to it over TCP."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
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


def _answers(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        httpx.get(url + "/login", timeout=2, verify=verify)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def serving(
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    tls: tuple[Path, Path, Path] | None = None,
) -> Iterator[str]:
    """Run `websonic serve` with ``env`` on a free port of ``host``; yield its base URL.

    ``tls``: (certificate, key, CA) files: serve HTTPS, checked against that CA.
    """
    port = port or free_port(host)
    argv = [sys.executable, "-m", "websonic.cli.main", "serve", "--host", host, "--port", str(port)]
    if tls is not None:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    proc = subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=tls[2]) if tls else True
    try:
        wait_until(lambda: _answers(url, verify), 60, "websonic serve did not start", proc)
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
