"""Helpers of the PostgreSQL migration tests: the fixture database loaded into a disposable
server, the `websonic db` commands run in the background, and the run's saved checkpoint."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Cli
from testbed import DatabaseServer

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "postgres.sql"
LARGE_OBJECTS = FIXTURES / "postgres-large-objects.sql"


def psql(server: DatabaseServer, database: str, *args: str, sql: str | None = None) -> str:
    """Run psql against ``database`` (the password through the environment)."""
    argv = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        database,
        *args,
    ]
    if sql is not None:
        argv += ["-c", sql]
    env = {**os.environ, "PGPASSWORD": server.password}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"psql failed: {proc.stderr}")
    return proc.stdout


def load_fixture(
    server: DatabaseServer, database: str = "shop", *, large_objects: bool = False, extra: str = ""
) -> str:
    """Create ``database`` with the hard cases; its URL."""
    url = server.create_database(database)
    psql(server, database, "-f", str(FIXTURE))
    if large_objects:
        psql(server, database, "-f", str(LARGE_OBJECTS))
    if extra:
        psql(server, database, sql=extra)
    return url


def rows(server: DatabaseServer, database: str, query: str) -> list[tuple[Any, ...]]:
    return server.execute(query, database)


def migrate(cli: Cli, source: str, target: str, *args: str, check: bool = True) -> dict[str, Any]:
    proc = cli.run("db", "migrate", "--from", source, "--to", target, *args, "--json", check=check)
    return json.loads(proc.stdout) if proc.stdout.strip() else {"exit": proc.returncode}


def background(cli: Cli, *args: str) -> subprocess.Popen[str]:
    """`websonic ARGS` started in the background (stdout/stderr to pipes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", *args],
        env=cli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkpoint(cli: Cli) -> dict[str, Any]:
    """The newest run's checkpoint as saved in the state database ({} before any)."""
    path = cli.home / "state.db"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            row = conn.execute(
                "SELECT checkpoint FROM migrations ORDER BY id DESC LIMIT 1"
            ).fetchone()
        except sqlite3.OperationalError:
            return {}
    if not row or not row[0]:
        return {}
    value = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return value if isinstance(value, dict) else {}


def wait_for(
    condition: Callable[[], Any], timeout: float = 120, step: float = 0.02, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def slots(server: DatabaseServer) -> list[str]:
    return [name for (name,) in server.execute("SELECT slot_name FROM pg_replication_slots")]
