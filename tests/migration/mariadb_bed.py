"""Helpers of the MariaDB migration tests: the fixture loaded with the real `mariadb` client, the
`websonic db` commands (in the foreground or the background) and the run's saved checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
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


class Writer:
    """The application: inserts rows with unique ids through its own account, into the source
    until ``switch_file`` exists, then into the target; records every acknowledged id.

    A write whose outcome is unknown (the connection died during COMMIT) is retried with the
    same id: a duplicate-key error then proves it had been written, so it counts once.
    """

    def __init__(
        self,
        source: DatabaseServer,
        target: DatabaseServer,
        switch_file: Path,
        database: str = "shop",
        table: str = "ledger",
        account: tuple[str, str] = (APP_USER, APP_PASSWORD),
    ) -> None:
        self.servers = {"source": source, "target": target}
        self.account = account
        self.switch_file, self.database, self.table = switch_file, database, table
        self.acked: list[tuple[int, float, str]] = []  # (id, time acknowledged, where)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def _connect(self, where: str) -> Any:
        import pymysql

        server = self.servers[where]
        return pymysql.connect(
            host=server.host,
            port=server.port,
            user=self.account[0],
            password=self.account[1],
            database=self.database,
            autocommit=True,
            connect_timeout=2,
            read_timeout=5,
            write_timeout=5,
        )

    def _where(self) -> str:
        return "target" if self.switch_file.exists() else "source"

    def _run(self) -> None:
        next_id, conn, where = 1, None, ""
        while not self.stop.is_set():
            try:
                if conn is None or where != self._where():
                    where = self._where()
                    conn = self._connect(where)
                with conn.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {self.table} (id, note) VALUES (%s, %s)",
                        (next_id, f"{where} {time.time():.6f}"),
                    )
                self._ack(next_id, where)
                next_id += 1
                time.sleep(0.002)
            except Exception as exc:
                code = exc.args[0] if exc.args else None
                if code == 1062:  # written by the attempt whose answer was lost
                    self._ack(next_id, where)
                    next_id += 1
                    continue
                self.errors.append(f"{where}: {exc}")
                conn = None
                time.sleep(0.005)

    def _ack(self, ident: int, where: str) -> None:
        self.acked.append((ident, time.monotonic(), where))

    def gap(self) -> float:
        """The longest time between two acknowledged writes (the downtime the app saw)."""
        times = [at for _, at, _ in self.acked]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)
