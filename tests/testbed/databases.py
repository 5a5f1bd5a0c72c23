"""Disposable PostgreSQL 15 and MariaDB 10.11 servers on free ports of 127.0.0.1.

Each server lives in its own temp directory ``/tmp/websonic-test-<pid>-<engine>-*`` and runs as
a child process of the test process. When the tests run as root, the server runs as the
unprivileged system user (``postgres`` / ``mysql``) because PostgreSQL refuses to run as root.
Servers are tuned for tests (no fsync) unless ``durable=True``. ``remove_stale_database_dirs``
stops servers and deletes directories left behind by killed test runs.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from testbed._proc import CommandError, file_tail, pid_alive, run

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
TEMP_PREFIX = "websonic-test-"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_user(name: str) -> str | None:
    """The account servers run as: ``name`` when we are root, else ourselves (None)."""
    return name if os.geteuid() == 0 else None


def _make_server_dir(engine: str, owner: str | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{engine}-"))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    return base


def _chown_tree(path: Path, owner: str | None) -> None:
    if owner:
        shutil.chown(path, owner, owner)


@dataclass
class DatabaseServer:
    """A running throwaway database server; ``url(db)`` gives a SQLAlchemy-style URL."""

    engine: str  # "postgresql" or "mariadb"
    host: str
    port: int
    user: str
    password: str
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        """The server's log file (stdout and stderr of the server process)."""
        return self.directory / "server.log"

    def url(self, database: str) -> str:
        """``postgresql://user:pw@127.0.0.1:port/db`` or ``mariadb://...``."""
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{self.engine}://{credentials}@{self.host}:{self.port}/{database}"

    def is_running(self) -> bool:
        """Tell whether the server process is still alive."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the server log, for error messages."""
        return file_tail(self.log_path, lines)

    def connect(self, database: str | None = None) -> Any:
        """A new DB-API connection as the superuser (autocommit on). Caller closes it."""
        raise NotImplementedError

    def execute(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser and return its rows (empty if none)."""
        connection = self.connect(database)
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            rows = list(cursor.fetchall()) if cursor.description else []
            cursor.close()
            return rows
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        raise NotImplementedError

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server (graceful, then SIGKILL after ``timeout``) and wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(self._stop_signal())
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _stop_signal(self) -> int:
        return signal.SIGTERM

    def _wait_until_ready(self, probe: Callable[[], None], timeout: float) -> None:
        """Poll ``probe`` until it stops raising; fail early if the server process died."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.is_running():
                raise CommandError(
                    f"{self.engine} server on port {self.port} exited during startup\n"
                    f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
                )
            try:
                probe()
                return
            except Exception as exc:  # any connection error means "not ready yet"
                last_error = exc
                time.sleep(0.2)
        self.stop()
        raise CommandError(
            f"{self.engine} server on port {self.port} not ready after {timeout:.0f}s "
            f"(last error: {last_error})\n--- log tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def _spawn(self, argv: list[str], run_as: str | None) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=run_as,
                group=run_as,
                extra_groups=[] if run_as else None,
                cwd=self.directory,
            )


class PostgresServer(DatabaseServer):
    """PostgreSQL 15 started with ``postgres -D`` from a fresh ``initdb`` cluster."""

    def connect(self, database: str | None = None) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or "postgres",
            connect_timeout=5,
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _stop_signal(self) -> int:
        return signal.SIGINT  # "fast" shutdown: disconnect clients, no waiting

    @classmethod
    def start(
        cls,
        *,
        wal_level: str | None = None,
        settings: Mapping[str, str] | None = None,
        durable: bool = False,
        user: str = "postgres",
        start_timeout: float = START_TIMEOUT,
        hba: tuple[str, ...] = (),
    ) -> PostgresServer:
        """initdb a new cluster in a temp dir and start it on a free port.

        ``hba``: more pg_hba.conf lines (e.g. for clients on a test network; give the address in
        ``settings={"listen_addresses": …}`` too)."""
        run_as = _service_user("postgres")
        directory = _make_server_dir("pg", run_as)
        server = cls("postgresql", "127.0.0.1", free_port(), user, secrets.token_hex(12), directory)
        server.settings = _pg_settings(server, wal_level, settings, durable)
        try:
            server._initdb(run_as)
            with (directory / "data" / "pg_hba.conf").open("a") as handle:
                handle.writelines(line + "\n" for line in hba)
            server._spawn([str(PG_BIN / "postgres"), "-D", str(directory / "data")], run_as)
            server._wait_until_ready(lambda: server.connect().close(), start_timeout)
        except BaseException:
            server.destroy()
            raise
        return server

    def _initdb(self, run_as: str | None) -> None:
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self.password + "\n")
        _chown_tree(pwfile, run_as)
        (self.directory / "sockets").mkdir()
        _chown_tree(self.directory / "sockets", run_as)
        argv = [
            str(PG_BIN / "initdb"),
            "-D",
            str(self.directory / "data"),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            user=run_as,
            group=run_as,
            extra_groups=[] if run_as else None,
            cwd=self.directory,
            check=False,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise CommandError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        conf = self.directory / "data" / "postgresql.auto.conf"
        with conf.open("a") as handle:
            handle.writelines(f"{key} = '{value}'\n" for key, value in self.settings.items())


def _pg_settings(
    server: DatabaseServer,
    wal_level: str | None,
    extra: Mapping[str, str] | None,
    durable: bool,
) -> dict[str, str]:
    settings = {
        "port": str(server.port),
        "listen_addresses": server.host,
        "unix_socket_directories": str(server.directory / "sockets"),
        "logging_collector": "off",
    }
    if not durable:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    if wal_level:
        settings["wal_level"] = wal_level
    return settings | dict(extra or {})


class MariaDBServer(DatabaseServer):
    """MariaDB 10.11 started as ``mariadbd`` with its own datadir, socket, pid file and port."""

    @property
    def socket_path(self) -> Path:
        """The server's unix socket."""
        return self.directory / "mysqld.sock"

    def connect(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            connect_timeout=5,
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        self.execute(f"CREATE DATABASE `{name}`")
        return self.url(name)

    @classmethod
    def start(
        cls,
        *,
        server_id: int | None = None,
        log_bin: bool = False,
        settings: Mapping[str, str] | None = None,
        durable: bool = False,
        start_timeout: float = START_TIMEOUT,
    ) -> MariaDBServer:
        """Install a new datadir and start ``mariadbd``; ``log_bin`` enables ROW binlogs."""
        run_as = _service_user("mysql")
        directory = _make_server_dir("maria", run_as)
        server = cls("mariadb", "127.0.0.1", free_port(), "root", secrets.token_hex(12), directory)
        server.settings = _maria_settings(server, server_id, log_bin, settings, durable)
        try:
            server._install(run_as)
            argv = [
                "/usr/sbin/mariadbd",
                "--no-defaults",
                *(f"--{key}={value}" for key, value in server.settings.items()),
            ]
            server._spawn(argv, run_as)
            server._wait_until_ready(server._probe_socket, start_timeout)
            server._set_root_password()
        except BaseException:
            server.destroy()
            raise
        return server

    def _install(self, run_as: str | None) -> None:
        argv = [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={self.directory / 'data'}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if run_as:
            argv.append(f"--user={run_as}")
        run(argv, timeout=180, cwd=self.directory)

    def _probe_socket(self) -> None:
        import pymysql

        pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", connect_timeout=2
        ).close()

    def _set_root_password(self) -> None:
        """Give root@localhost the password and add ``root@'%'`` for TCP clients."""
        import pymysql

        pw = self.password
        connection = pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", autocommit=True
        )
        try:
            with connection.cursor() as cursor:
                # install-db also makes password-less root@127.0.0.1/::1/<hostname> accounts,
                # which would win over root@'%' for TCP clients; keep only localhost.
                cursor.execute(
                    "DELETE FROM mysql.global_priv WHERE user = 'root' AND host <> 'localhost'"
                )
                cursor.execute("FLUSH PRIVILEGES")
                cursor.execute(f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{pw}'")
                cursor.execute(f"CREATE USER 'root'@'%' IDENTIFIED BY '{pw}'")
                cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION")
        finally:
            connection.close()


def _maria_settings(
    server: MariaDBServer,
    server_id: int | None,
    log_bin: bool,
    extra: Mapping[str, str] | None,
    durable: bool,
) -> dict[str, str]:
    settings = {
        "datadir": str(server.directory / "data"),
        "socket": str(server.socket_path),
        "pid-file": str(server.directory / "mariadbd.pid"),
        "port": str(server.port),
        "bind-address": server.host,
        "tmpdir": str(server.directory),
        "skip-name-resolve": "1",
    }
    if not durable:
        settings |= {
            "innodb-flush-log-at-trx-commit": "2",
            "innodb-doublewrite": "0",
            "sync-binlog": "0",
        }
    if server_id is not None:
        settings["server-id"] = str(server_id)
    if log_bin:
        settings |= {"log-bin": str(server.directory / "data" / "binlog"), "binlog-format": "ROW"}
    return settings | dict(extra or {})


def remove_stale_database_dirs() -> list[Path]:
    """Stop servers and delete temp dirs left behind by test processes that no longer exist."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        head = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not head.isdigit() or int(head) == os.getpid() or pid_alive(int(head)):
            continue
        _kill_servers_in(path)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _kill_servers_in(directory: Path) -> None:
    """Kill processes named in pid files below ``directory`` if they really run from it."""
    for pid_file in [*directory.glob("data/postmaster.pid"), *directory.glob("*.pid")]:
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if str(directory) in cmdline:
            os.kill(pid, signal.SIGKILL)
