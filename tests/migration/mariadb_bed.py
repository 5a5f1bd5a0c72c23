"""Helpers of the MariaDB migration tests: the fixture loaded with the real `mariadb` client, the
`websonic db` commands (in the foreground or the background) and the run's saved checkpoint."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websonic.core.runner import Runner
from websonic.tools import mariadb as tool

from conftest import Cli
from testbed import DatabaseServer

FIXTURE = Path(__file__).parent / "fixtures" / "mariadb.sql"
APP_USER, APP_PASSWORD = "shop_app", "app-secret-1"


def login(server: DatabaseServer, database: str) -> tool.Login:
    return tool.Login(server.host, server.port, server.user, database, server.password)


@contextmanager
def option_file(login_: tool.Login) -> Iterator[Path]:
    """The client option file (with the password), mode 600 in a private folder, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="websonic-mariadb-"))
    path = folder / "client.cnf"
    try:
        path.touch(mode=0o600)
        path.write_text(tool.option_file(login_))
        yield path
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


def client(server: DatabaseServer, database: str, script: str) -> str:
    """Run a SQL script (DELIMITER lines allowed) with the `mariadb` client."""
    who = login(server, database)
    with option_file(who) as defaults:
        return Runner().run(tool.client_script(who, defaults, script)).stdout


def load_fixture(server: DatabaseServer, database: str = "shop", extra: str = "") -> str:
    """Create ``database`` with the hard cases; its URL."""
    url = server.create_database(database)
    client(server, database, FIXTURE.read_text() + extra)
    return url


def app_url(server: DatabaseServer, database: str = "shop") -> str:
    return f"mariadb://{APP_USER}:{APP_PASSWORD}@{server.host}:{server.port}/{database}"


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
            row = conn.execute("SELECT checkpoint FROM migrations ORDER BY id DESC").fetchone()
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


def replication(server: DatabaseServer) -> list[dict[str, Any]]:
    connection = server.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SHOW ALL SLAVES STATUS")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def read_only(server: DatabaseServer) -> bool:
    return bool(server.execute("SELECT @@GLOBAL.read_only")[0][0])


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
