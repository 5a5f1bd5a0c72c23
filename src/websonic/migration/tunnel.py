"""SSH tunnels to databases behind a registered host (``…?ssh=CUSTOMER/HOST`` in a URL).

``ssh -N -L 127.0.0.1:PORT:DBHOST:DBPORT`` with the host's pinned key checked strictly; the URL
handed to the engine then points at the local end. The tunnel is closed when the block ends.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from websonic.core.errors import ConnectionFailed
from websonic.core.runner import Runner
from websonic.hosting import hosts
from websonic.migration.urls import DatabaseUrl
from websonic.tools import ssh

READY_TIMEOUT = 20.0


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def reachable(
    url: DatabaseUrl, runner: Runner, sessions: sessionmaker[Session], ssh_dir: Path
) -> Iterator[DatabaseUrl]:
    """``url`` itself, or (with ``ssh=``) the same database through a tunnel, while open."""
    if url.ssh_host is None or url.engine == "sqlite":
        yield url
        return
    with sessions() as session:
        host = hosts.get_host(session, url.ssh_host)
        target = hosts.target(host, ssh_dir)
    port = free_local_port()
    process = runner.spawn(ssh.tunnel(target, port, url.host, url.port))
    try:
        _wait_until_listening(process, port, url)
        yield url.through("127.0.0.1", port)
    finally:
        _stop(process)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, url: DatabaseUrl) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise ConnectionFailed(
                f"The SSH tunnel through {url.ssh_host} to {url.host}:{url.port} failed: "
                f"{_last_line(error)}",
                hint=f"Check the host with: websonic host check {url.ssh_host} --site …",
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise ConnectionFailed(f"The SSH tunnel through {url.ssh_host} did not open in time.")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "ssh exited"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr:
        process.stderr.close()
