"""Migration benchmark: `websonic db migrate` against the tools a user would otherwise pick.

In one run on this machine, on throwaway servers of the test bed (tests/testbed/databases.py,
on free loopback ports), same data, tools alternating (the order rotates every round), a fresh
empty target database for every run, checked afterwards with `websonic db verify` (not timed)
and dropped:

  PostgreSQL 15  `pgbench -i -s N` on a source with wal_level=logical; `websonic db migrate
                 --mode offline --jobs 2` with and without its verification, `pg_dump -Fc |
                 pg_restore` (streamed), `pg_dump -Fd -j2` + `pg_restore -j2` (through a
                 temporary directory), `pgcopydb clone --table-jobs 2 --index-jobs 2`.
  MariaDB 10.11  sysbench `oltp_read_write prepare` (T tables x R rows) on a source with ROW
                 binlogs and server-id 1, target server-id 2; `websonic db migrate --mode offline
                 --jobs 2` with and without its verification, `mariadb-dump --single-transaction
                 | mariadb`, `mydumper -t 2` + `myloader -t 2` (through a temporary directory).
  online         `websonic db migrate --mode online` while pgbench / sysbench write to the source
                 at a fixed rate and a writer (the application) inserts rows with unique ids,
                 on the source until `--on-switch` touches a file, then on the target: the write
                 downtime of the report, the pauses the writer saw, acknowledged, lost and
                 duplicated writes.

pgcopydb, mydumper and sysbench are installed with apt-get when missing. Passwords reach the
tools through a pgpass file and MariaDB option files (mode 600, in the run's temp directory),
except sysbench, which only takes them on its command line (throwaway servers). Everything the
run creates (servers, directories, load generators) is removed at the end, on SIGTERM too.

    python bench/migrate.py [--rounds 3] [--pg-scale 30] [--maria-tables 8 --maria-rows 400000]
                            [--only pg|mariadb|online]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    WebSonic,
    background,
    machine,
    median,
    read_section,
    run,
    span,
    wait_until,
    write_section,
)

sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from testbed.databases import DatabaseServer, MariaDBServer, PostgresServer  # noqa: E402

SECTION = "Database migrations"
PG_DB, SB_DB = "bench", "sb"
APP_USER, APP_PASSWORD = "bench_app", "bench-app-secret-1"
#: Debian packages of the tools, installed when a command is missing.
PACKAGES = {"pgcopydb": "pgcopydb", "mydumper": "mydumper", "myloader": "mydumper",
            "sysbench": "sysbench", "pgbench": "postgresql-15"}  # fmt: skip
#: The constant write loads of the online runs (besides the writer).
PGBENCH_LOAD = ["-c", "4", "-j", "2", "-R", "200"]
SYSBENCH_LOAD = ["--threads=4", "--rate=200"]
WRITE_EVERY = 0.005  # the writer's pause between two INSERTs (seconds)
ENOUGH_TARGET_WRITES = 100  # writes on the target before the writer stops
WEBSONIC = "`websonic db migrate --jobs 2 --no-verify`"
WEBSONIC_VERIFIED = "`websonic db migrate --jobs 2` (verified)"
PG_DUMP = "`pg_dump -Fc \\| pg_restore`"
PG_DUMP_DIR = "`pg_dump -Fd -j2` + `pg_restore -j2`"
PGCOPYDB = "`pgcopydb clone --table-jobs 2 --index-jobs 2`"
MARIADB_DUMP = "`mariadb-dump --single-transaction \\| mariadb`"
MYDUMPER = "`mydumper -t 2` + `myloader -t 2`"
PARTS = {"pg": "PostgreSQL, offline", "mariadb": "MariaDB, offline",
         "online": "Online, under a constant write load"}  # fmt: skip


def ensure_tools() -> None:
    """pgcopydb, mydumper/myloader and sysbench come from Debian's packages."""
    missing = sorted({pkg for command, pkg in PACKAGES.items() if not shutil.which(command)})
    if not missing:
        return
    try:
        run(["apt-get", "install", "-y", "-q", *missing])
    except RuntimeError:
        run(["apt-get", "update", "-q"])
        run(["apt-get", "install", "-y", "-q", *missing])


# --- running the tools --------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """What `websonic db verify` said of a target (not timed)."""

    ok: bool
    rows: int  # rows of the benchmark tables on the target
    detail: str = ""


@dataclass(frozen=True)
class Measured:
    seconds: float  # the command's wall time
    check: Check = Check(True, 0)
    report: dict[str, Any] | None = None  # WebSonic's JSON report
    load: float = 0.0  # 1-minute load average when the run started


Offline = dict[str, list[Measured]]  # tool -> its runs
Tools = dict[str, Callable[[str], Measured]]  # tool -> run it into this target database


@dataclass(frozen=True)
class DataSet:
    description: str
    rows: int
    size: int  # bytes of data and indexes on the source


def websonic(ws: WebSonic, *args: str) -> tuple[int, dict[str, Any]]:
    """`websonic ARGS --json`: exit code and report (a failed run's report too)."""
    proc = subprocess.run([sys.executable, "-m", "websonic.cli.main", *args, "--json"],
                          env={**os.environ, **ws.env}, capture_output=True, text=True)  # fmt: skip
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, {"ok": False, "errors": [proc.stderr.strip()[-2000:]]}


def verify(ws: WebSonic, source: str, target: str, rows_of: Callable[[], int]) -> Check:
    code, report = websonic(ws, "db", "verify", "--from", source, "--to", target)
    if code == 0 and report.get("ok"):
        return Check(True, rows_of())
    found = "; ".join([*report.get("errors", [])[:2], differences({"verify": report})])
    return Check(False, rows_of(), found or f"exit {code}")


def differences(report: dict[str, Any]) -> str:
    """What a verification found, in short: tables that differ and objects (changed words)."""
    found = report.get("verify") or {}
    bad = [f"{t['name']} {t.get('mismatched') or 'rows'}"
           for t in found.get("tables", []) if not t["ok"]]  # fmt: skip
    objects = [f"{d['kind']} {d['name']}: {_changed(d['source'], d['target'])}"
               for d in found.get("differences", [])]  # fmt: skip
    return "; ".join([*bad[:5], *objects[:5]])


def _changed(source: str | None, target: str | None) -> str:
    """The words of two definitions that differ, as source's / target's."""
    ours, theirs = (source or "(missing)").split(), (target or "(missing)").split()
    if len(ours) != len(theirs):
        return f"{source or '(missing)'} / {target or '(missing)'}"
    return ", ".join(f"{a} / {b}" for a, b in zip(ours, theirs, strict=True) if a != b)


def migrate_offline(ws: WebSonic, source: str, target: str, *, verified: bool) -> Measured:
    args = ["db", "migrate", "--from", source, "--to", target, "--mode", "offline", "--jobs", "2"]
    started = time.perf_counter()
    code, report = websonic(ws, *args, *([] if verified else ["--no-verify"]))
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"websonic db migrate exited {code}: {report.get('errors')}")
    return Measured(seconds, report=report)


def timed_argv(*argvs: list[str], env: dict[str, str] | None = None) -> Measured:
    started = time.perf_counter()
    for argv in argvs:
        run(argv, env=env)
    return Measured(time.perf_counter() - started)


def timed_pipe(first: list[str], second: list[str], log: Path, env: dict[str, str]) -> Measured:
    """``first | second`` (no shell, no file in between); both must succeed."""
    started = time.perf_counter()
    with log.open("w") as errors:
        producer = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=errors,
                                    env={**os.environ, **env})  # fmt: skip
        assert producer.stdout is not None
        consumer = subprocess.run(second, stdin=producer.stdout, capture_output=True, text=True,
                                  env={**os.environ, **env})  # fmt: skip
        producer.stdout.close()
        producer.wait()
    seconds = time.perf_counter() - started
    if producer.returncode or consumer.returncode:
        said = (log.read_text()[-999:], consumer.stderr[-999:])
        raise RuntimeError(f"{first[0]} exited {producer.returncode} ({said[0]}), "
                           f"{second[0]} exited {consumer.returncode} ({said[1]})")  # fmt: skip
    return Measured(seconds)


def rotated(names: list[str], turn: int) -> list[str]:
    """The tools' order in round ``turn``: each round starts with the next tool."""
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def bench_offline(tools: Tools, rounds: int, fresh: Callable[[str], object],
                  check: Callable[[str], Check], drop: Callable[[str], object],
                  ) -> Offline:  # fmt: skip
    """Every tool once per round into a fresh target database, checked, then dropped."""
    results: Offline = {name: [] for name in tools}
    for turn in range(rounds):
        for name in rotated(list(tools), turn):
            database = f"t{turn}_" + "_".join(re.findall(r"[a-z0-9]+", name.lower()))[:40]
            fresh(database)
            load = os.getloadavg()[0]
            try:
                one = tools[name](database)
                one = Measured(one.seconds, check(database), one.report, load)
            finally:
                drop(database)
            results[name].append(one)
            state = "verified" if one.check.ok else f"DIFFERS: {one.check.detail}"
            phases = f", phases {one.report['phases']}" if one.report else ""
            print(f"round {turn + 1} {name}: {one.seconds:.1f} s, target {state}, "
                  f"{one.check.rows:,} rows, load {load:.1f}{phases}", flush=True)  # fmt: skip
    return results


def websonic_tools(ws: WebSonic, source: str, target: Callable[[str], str]) -> Tools:
    def tool(verified: bool) -> Callable[[str], Measured]:
        return lambda db: migrate_offline(ws, source, target(db), verified=verified)

    return {WEBSONIC: tool(False), WEBSONIC_VERIFIED: tool(True)}


# --- PostgreSQL -------------------------------------------------------------------------------


@dataclass
class PgBed:
    source: PostgresServer
    target: PostgresServer
    ws: WebSonic
    work: Path

    @property
    def env(self) -> dict[str, str]:
        return {"PGPASSFILE": str(self.work / "pgpass")}

    def write_pgpass(self) -> None:
        path = self.work / "pgpass"
        path.touch(mode=0o600)
        servers = (self.source, self.target)
        path.write_text("".join(f"{s.host}:{s.port}:*:{s.user}:{s.password}\n" for s in servers))


def pg_login(server: DatabaseServer) -> list[str]:
    return ["-h", server.host, "-p", str(server.port), "-U", server.user]


def pg_uri(server: DatabaseServer, database: str) -> str:
    """A URI without the password (the pgpass file has it)."""
    return f"postgres://{server.user}@{server.host}:{server.port}/{database}"


@contextmanager
def pg_bed(work: Path, scale: int) -> Iterator[PgBed]:
    servers: list[DatabaseServer] = []
    try:
        servers.append(source := PostgresServer.start(wal_level="logical"))
        servers.append(target := PostgresServer.start())
        bed = PgBed(source, target, WebSonic(work / "home"), work)
        bed.write_pgpass()
        bed.ws("init")
        source.create_database(PG_DB)
        print(f"pgbench -i -s {scale} …", flush=True)
        run(["pgbench", *pg_login(source), "-i", "-q", "-s", str(scale), PG_DB], env=bed.env)
        source.execute("CHECKPOINT")
        yield bed
    finally:
        for server in servers:
            server.destroy()


def pg_data_set(bed: PgBed, scale: int) -> DataSet:
    size = bed.source.execute(f"SELECT pg_database_size('{PG_DB}')")[0][0]
    description = f"`pgbench -i -s {scale}` (4 tables; the rows counted are pgbench_accounts')"
    return DataSet(description, pg_rows(bed.source, PG_DB), int(size))


def pg_rows(server: DatabaseServer, database: str) -> int:
    return int(server.execute("SELECT count(*) FROM pgbench_accounts", database)[0][0])


def pg_tools(bed: PgBed) -> Tools:
    return {
        **websonic_tools(bed.ws, bed.source.url(PG_DB), bed.target.url),
        PG_DUMP: lambda db: pg_dump_restore(bed, db),
        PG_DUMP_DIR: lambda db: pg_dump_directory(bed, db),
        PGCOPYDB: lambda db: pgcopydb_clone(bed, db),
    }


def pg_dump_restore(bed: PgBed, database: str) -> Measured:
    dump = ["pg_dump", "-Fc", *pg_login(bed.source), "-d", PG_DB]
    restore = ["pg_restore", "--exit-on-error", *pg_login(bed.target), "-d", database]
    return timed_pipe(dump, restore, bed.work / "pg_dump.log", bed.env)


def pg_dump_directory(bed: PgBed, database: str) -> Measured:
    folder = bed.work / f"dump-{database}"
    try:
        return timed_argv(
            ["pg_dump", "-Fd", "-j2", *pg_login(bed.source), "-d", PG_DB, "-f", str(folder)],
            ["pg_restore", "-j2", "--exit-on-error", *pg_login(bed.target), "-d", database,
             str(folder)],
            env=bed.env,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pgcopydb_clone(bed: PgBed, database: str) -> Measured:
    folder = bed.work / f"pgcopydb-{database}"
    try:
        return timed_argv(
            ["pgcopydb", "clone", "--source", pg_uri(bed.source, PG_DB), "--target",
             pg_uri(bed.target, database), "--table-jobs", "2", "--index-jobs", "2",
             "--dir", str(folder)],
            env=bed.env,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_pg_offline(bed: PgBed, rounds: int) -> Offline:
    def check(database: str) -> Check:
        rows = lambda: pg_rows(bed.target, database)  # noqa: E731
        return verify(bed.ws, bed.source.url(PG_DB), bed.target.url(database), rows)

    def drop(database: str) -> None:
        bed.target.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        bed.target.execute("CHECKPOINT")  # the next run does not pay for this one's writes

    return bench_offline(pg_tools(bed), rounds, bed.target.create_database, check, drop)


# --- MariaDB ----------------------------------------------------------------------------------


@dataclass
class MariaBed:
    source: MariaDBServer
    target: MariaDBServer
    ws: WebSonic
    work: Path

    def login(self, server: DatabaseServer, option: str = "--defaults-extra-file") -> list[str]:
        """Options logging a client tool in; the password is in an option file (mode 600)."""
        path = self.work / f"client-{server.port}.cnf"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(f'[client]\nuser="{server.user}"\npassword="{server.password}"\n')
        return [f"{option}={path}", "-h", server.host, "-P", str(server.port)]


def sysbench(server: DatabaseServer, user: str, password: str, *args: str) -> list[str]:
    return ["sysbench", *args, "--db-driver=mysql", f"--mysql-host={server.host}",
            f"--mysql-port={server.port}", f"--mysql-user={user}",
            f"--mysql-password={password}", f"--mysql-db={SB_DB}"]  # fmt: skip


@contextmanager
def maria_bed(work: Path, tables: int, rows: int) -> Iterator[MariaBed]:
    servers: list[DatabaseServer] = []
    try:
        servers.append(source := MariaDBServer.start(server_id=1, log_bin=True))
        servers.append(target := MariaDBServer.start(server_id=2))
        source.create_database(SB_DB)
        print(f"sysbench prepare {tables} x {rows} …", flush=True)
        prepare = sysbench(source, source.user, source.password, "oltp_read_write",
                           f"--tables={tables}", f"--table-size={rows}", "--threads=2",
                           "prepare")  # fmt: skip
        subprocess.run(prepare, check=True, capture_output=True, timeout=3600)
        bed = MariaBed(source, target, WebSonic(work / "home"), work)
        bed.ws("init")
        yield bed
    finally:
        for server in servers:
            server.destroy()


def maria_data_set(bed: MariaBed, tables: int) -> DataSet:
    size = bed.source.execute("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema."
                              f"TABLES WHERE TABLE_SCHEMA = '{SB_DB}'")[0][0]  # fmt: skip
    description = f"sysbench `oltp_read_write prepare` ({tables} tables `sbtest*`)"
    return DataSet(description, maria_rows(bed.source, SB_DB), int(size))


def maria_rows(server: DatabaseServer, database: str) -> int:
    names = server.execute("SHOW TABLES LIKE 'sbtest%%'", database)
    counts = (server.execute(f"SELECT COUNT(*) FROM `{name}`", database) for (name,) in names)
    return sum(int(rows[0][0]) for rows in counts)


def maria_tools(bed: MariaBed) -> Tools:
    return {
        **websonic_tools(bed.ws, bed.source.url(SB_DB), bed.target.url),
        MARIADB_DUMP: lambda db: mariadb_dump(bed, db),
        MYDUMPER: lambda db: mydumper_myloader(bed, db),
    }


def mariadb_dump(bed: MariaBed, database: str) -> Measured:
    dump = ["mariadb-dump", *bed.login(bed.source), "--single-transaction", SB_DB]
    load = ["mariadb", *bed.login(bed.target), database]
    return timed_pipe(dump, load, bed.work / "mariadb-dump.log", {})


def mydumper_myloader(bed: MariaBed, database: str) -> Measured:
    folder = bed.work / f"mydumper-{database}"
    try:
        return timed_argv(
            ["mydumper", *bed.login(bed.source, "--defaults-file"), "-B", SB_DB, "-t", "2",
             "-o", str(folder)],
            ["myloader", *bed.login(bed.target, "--defaults-file"), "-d", str(folder),
             "-s", SB_DB, "-B", database, "-t", "2"],
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_maria_offline(bed: MariaBed, rounds: int) -> Offline:
    def check(database: str) -> Check:
        rows = lambda: maria_rows(bed.target, database)  # noqa: E731
        return verify(bed.ws, bed.source.url(SB_DB), bed.target.url(database), rows)

    def drop(database: str) -> None:
        bed.target.execute(f"DROP DATABASE IF EXISTS `{database}`")

    return bench_offline(maria_tools(bed), rounds, bed.target.create_database, check, drop)


# --- online: the application's writes through the cutover ---------------------------------------


class Writer:
    """The application: one INSERT with a new unique id every few ms, on the source until the
    switch file appears, then on the target. It records every acknowledged id (where and when)
    and the ids of the attempts that failed: an id is never retried, so a second row of one id
    can only come from the migration."""

    def __init__(self, connect: Callable[[str], Any], switch_file: Path) -> None:
        self.connect, self.switch_file = connect, switch_file
        self.acked: list[tuple[int, float, str]] = []  # (id, acknowledged at, source|target)
        self.failed: list[int] = []
        self.errors: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def on(self, where: str) -> int:
        return sum(1 for _, _, w in self.acked if w == where)

    def _run(self) -> None:
        conn, where = None, ""
        for ident in itertools.count(1):
            if self._stop.is_set():
                break
            now = "target" if self.switch_file.exists() else "source"
            if now != where:
                conn, where = _closed(conn), now
            try:
                conn = conn or self.connect(where)
                with _cursor(conn) as cursor:
                    cursor.execute("INSERT INTO bench_writes (write_id, origin) VALUES (%s, %s)",
                                   (ident, where))  # fmt: skip
                self.acked.append((ident, time.monotonic(), where))
            except Exception as exc:
                self.failed.append(ident)
                kind = f"{where}: {str(exc).strip().splitlines()[0][:120]}"
                self.errors[kind] = self.errors.get(kind, 0) + 1
                conn = _closed(conn)
            time.sleep(WRITE_EVERY)
        _closed(conn)

    def longest_gap(self) -> float:
        """The longest time between two acknowledged writes, over the whole run."""
        times = [at for _, at, _ in self.acked]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def switch_gap(self) -> float:
        """From the last write acknowledged by the source to the first one by the target."""
        last = max((at for _, at, w in self.acked if w == "source"), default=0.0)
        first = min((at for _, at, w in self.acked if w == "target"), default=last)
        return first - last


@contextmanager
def _cursor(conn: Any) -> Iterator[Any]:
    cursor = conn.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _closed(conn: Any) -> None:
    if conn is not None:
        with suppress(Exception):  # a dead connection is closed anyway
            conn.close()


@dataclass(frozen=True)
class OnlineRun:
    engine: str
    turn: int
    seconds: float  # the command's wall time
    report: dict[str, Any]
    steps: dict[str, float]  # the cutover window's steps (PostgreSQL's log)
    acked: int
    on_source: int
    on_target: int
    lost: int  # acknowledged, not on the target
    duplicated: int  # rows beyond the first of one id on the target
    unacked_written: int  # failed attempts whose row is on the target anyway (not an error)
    longest_gap: float
    switch_gap: float
    errors: dict[str, int]
    load: float

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok"))

    @property
    def downtime(self) -> float | None:
        return self.report.get("write_downtime_seconds")


@dataclass
class Round:
    """What one online round needs: the engine's URLs, writer, load and stored writes."""

    engine: str
    turn: int
    ws: WebSonic
    urls: tuple[str, str]
    writer: Writer
    load: tuple[list[str], Path, dict[str, str]]
    stored: Callable[[], list[tuple[int, int]]]  # (id, rows) on the target


def online_round(r: Round) -> OnlineRun:
    """One online migration under the load and the writer; the writes checked on the target."""
    command = ["db", "migrate", "--from", r.urls[0], "--to", r.urls[1], "--mode", "online",
               "--jobs", "2", "--on-switch", f"touch {r.writer.switch_file}"]  # fmt: skip
    writer = r.writer
    with background(*r.load):
        writer.start()
        if not wait_until(lambda: len(writer.acked) >= 100, 60):
            writer.finish()
            raise RuntimeError(f"the writer does not write: {writer.errors}")
        load = os.getloadavg()[0]
        started = time.perf_counter()
        code, report, steps = migrate_online(r.ws, command)
        seconds = time.perf_counter() - started
        wait_until(lambda: writer.on("target") >= ENOUGH_TARGET_WRITES, 30)
        writer.finish()
    if code != 0:
        print(f"!! online {r.engine}: exit {code}: {report.get('errors')} "
              f"{differences(report)}", flush=True)  # fmt: skip
    present = dict(r.stored())
    acked = {ident for ident, _, _ in writer.acked}
    return OnlineRun(
        r.engine, r.turn, seconds, report, steps, len(acked), writer.on("source"),
        writer.on("target"), lost=len(acked - present.keys()),
        duplicated=sum(count - 1 for count in present.values()),
        unacked_written=len(set(writer.failed) & present.keys()),
        longest_gap=writer.longest_gap(), switch_gap=writer.switch_gap(), errors=writer.errors,
        load=load,
    )  # fmt: skip


CUTOVER_STEP = re.compile(r"cutover: (\w+) ([\d.]+) s")


def migrate_online(ws: WebSonic, command: list[str]) -> tuple[int, dict, dict[str, float]]:
    """The online migration with its plain output (its log has the cutover window's steps and
    their times, which the JSON report has not), and its report from the run's record."""
    proc = subprocess.run([sys.executable, "-m", "websonic.cli.main", *command],
                          env={**os.environ, **ws.env, "COLUMNS": "200"}, capture_output=True,
                          text=True)  # fmt: skip
    steps = {name: float(seconds) for name, seconds in CUTOVER_STEP.findall(proc.stderr)}
    _code, listed = websonic(ws, "db", "runs")
    report = (listed.get("runs") or [{}])[0].get("report") or {}
    if proc.returncode and not report.get("errors"):
        report = {**report, "ok": False, "errors": [proc.stderr.strip()[-500:]]}
    return proc.returncode, report, steps


def abandon_unfinished(ws: WebSonic, source: str, target: str) -> None:
    """A failed online run is abandoned (what it set up removed), so that the next round, into
    a new target database of the same URL, does not resume it."""
    _code, listed = websonic(ws, "db", "runs")
    for one in listed.get("runs", []):
        if one["status"] not in ("succeeded", "abandoned"):
            argv = ["db", "abandon", str(one["id"]), "--from", source, "--to", target]
            run([sys.executable, "-m", "websonic.cli.main", *argv], env=ws.env)
            print(f"run {one['id']} ({one['status']}) abandoned", flush=True)


PG_WRITES = ("CREATE TABLE bench_writes (seq bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
             " write_id bigint NOT NULL, origin text NOT NULL,"
             " written_at timestamptz NOT NULL DEFAULT clock_timestamp())")  # fmt: skip
MARIA_WRITES = ("CREATE TABLE bench_writes (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                " write_id BIGINT NOT NULL, origin VARCHAR(10) NOT NULL,"
                " written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")  # fmt: skip
STORED = "SELECT write_id, COUNT(*) FROM bench_writes GROUP BY write_id"


def pg_online(bed: PgBed, turn: int) -> OnlineRun:
    import psycopg

    source, target = bed.source, bed.target
    source.execute(f'ALTER DATABASE "{PG_DB}" RESET default_transaction_read_only')
    source.execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL", PG_DB)  # the plan's remedy
    source.execute("DROP TABLE IF EXISTS bench_writes", PG_DB)
    source.execute(PG_WRITES, PG_DB)
    target.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    target.create_database(PG_DB)
    urls = (source.url(PG_DB), target.url(PG_DB))
    servers = {"source": source, "target": target}

    def connect(where: str) -> Any:
        return psycopg.connect(servers[where].url(PG_DB), autocommit=True, connect_timeout=2)

    writer = Writer(connect, bed.work / f"switched-pg-{turn}")
    pgbench = ["pgbench", *pg_login(source), "-n", *PGBENCH_LOAD, "-T", "3600", PG_DB]
    try:
        return online_round(Round("PostgreSQL", turn, bed.ws, urls, writer,
                                  (pgbench, bed.work / "pgbench.log", bed.env),
                                  lambda: target.execute(STORED, PG_DB)))  # fmt: skip
    finally:
        abandon_unfinished(bed.ws, *urls)
        target.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        target.execute("CHECKPOINT")


def maria_online(bed: MariaBed, turn: int) -> OnlineRun:
    import pymysql

    source, target = bed.source, bed.target
    source.execute("SET GLOBAL read_only = 0")
    source.execute(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
    source.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{SB_DB}`.* TO '{APP_USER}'@'%'")
    source.execute("DROP TABLE IF EXISTS bench_writes", SB_DB)
    source.execute(MARIA_WRITES, SB_DB)
    target.execute(f"DROP DATABASE IF EXISTS `{SB_DB}`")
    target.create_database(SB_DB)
    urls = (source.url(SB_DB), target.url(SB_DB))
    servers = {"source": source, "target": target}

    def connect(where: str) -> Any:
        server = servers[where]
        return pymysql.connect(host=server.host, port=server.port, user=APP_USER,
                               password=APP_PASSWORD, database=SB_DB, autocommit=True,
                               connect_timeout=2, read_timeout=5, write_timeout=5)  # fmt: skip

    writer = Writer(connect, bed.work / f"switched-maria-{turn}")
    tables = len(source.execute("SHOW TABLES LIKE 'sbtest%%'", SB_DB))
    load = sysbench(source, APP_USER, APP_PASSWORD, "oltp_write_only", f"--tables={tables}",
                    *SYSBENCH_LOAD, "--time=3600", "run")  # fmt: skip
    try:
        return online_round(Round("MariaDB", turn, bed.ws, urls, writer,
                                  (load, bed.work / "sysbench.log", {}),
                                  lambda: target.execute(STORED, SB_DB)))  # fmt: skip
    finally:
        abandon_unfinished(bed.ws, *urls)
        target.execute(f"DROP DATABASE IF EXISTS `{SB_DB}`")


def bench_online(beds: list[tuple[str, Any]], rounds: int) -> list[OnlineRun]:
    """Each round: every engine once, the engines' order alternating."""
    results = []
    for turn in range(rounds):
        for engine, bed in beds if turn % 2 == 0 else list(reversed(beds)):
            one = (pg_online if engine == "pg" else maria_online)(bed, turn)
            results.append(one)
            print(f"round {turn + 1} online {one.engine}: {one.seconds:.1f} s, downtime "
                  f"{one.downtime}, writer's pause at the switch {one.switch_gap:.3f} s, longest "
                  f"{one.longest_gap:.3f} s, {one.acked} acked, {one.lost} lost, "
                  f"{one.duplicated} duplicated, ok={one.ok}, phases "
                  f"{one.report.get('phases')}, window {one.steps}", flush=True)  # fmt: skip
    return results


# --- the section of docs/benchmarks.md ----------------------------------------------------------


def phase(runs: list[Measured], name: str) -> list[float]:
    return [float(r.report["phases"].get(name, 0.0)) for r in runs if r.report]


def verification(runs: list[Measured]) -> list[float]:
    """The verification's seconds: its phase (MariaDB), or the verify report's own time."""
    return [float(r.report["phases"].get("verify") or (r.report["verify"] or {}).get("seconds", 0))
            for r in runs if r.report]  # fmt: skip


def plain(name: str) -> str:
    """A tool's name outside a table (no escaped pipe)."""
    return name.replace("\\|", "|")


def offline_rows(results: Offline) -> list[str]:
    rows = []
    for name, runs in results.items():
        checked = f"{sum(r.check.ok for r in runs)}/{len(runs)} identical" + "".join(
            f"; **differs**: {r.check.detail}" for r in runs if not r.check.ok
        )
        seconds = span([r.seconds for r in runs])
        rows.append(f"| {name} | {seconds} | {runs[0].check.rows:,} | {checked} |")
    return rows


def where_websonic_time_goes(results: Offline) -> str:
    fast, verified = results[WEBSONIC], results[WEBSONIC_VERIFIED]
    names = (
        [name for name in fast[0].report["phases"] if name != "verify"] if fast[0].report else []
    )
    engine = [float(r.report["seconds"]) for r in fast if r.report]
    rest = [e - sum(r.report["phases"].values()) for e, r in zip(engine, fast, strict=True)]
    cli = [r.seconds - e for e, r in zip(engine, fast, strict=True)]
    parts = ", ".join(f"{name} {median(phase(fast, name)):.1f} s" for name in names)
    return (
        f"`--no-verify`: the run itself {span(engine)} ({parts}, the rest "
        f"{median(rest):.1f} s); before it, {median(cli):.1f} s of the command go to the CLI's "
        f"start, probing both servers and the plan. With verification: the verification "
        f"{span(verification(verified))}, the whole command {span([r.seconds for r in verified])}."
    )


def goal_line(results: Offline, rival: str) -> str:
    ours = median([r.seconds for r in results[WEBSONIC]])
    theirs = median([r.seconds for r in results[rival]])
    verified = median([r.seconds for r in results[WEBSONIC_VERIFIED]])
    verdict = "**met**" if ours < theirs else "**not met**"
    others = {name: median([r.seconds for r in runs]) for name, runs in results.items()
              if name not in (WEBSONIC, WEBSONIC_VERIFIED)}  # fmt: skip
    faster = [f"{plain(name)} ({seconds:.1f} s)" for name, seconds in others.items()
              if seconds < ours]  # fmt: skip
    ranking = (
        f" Faster than WebSonic without verification here: {', '.join(faster)}."
        if faster
        else " WebSonic without verification is the fastest here."
    )
    return (
        f"Goal, faster than {plain(rival)} here: {verdict} — {ours:.1f} s against "
        f"{theirs:.1f} s (medians; {verified:.1f} s with WebSonic's verification, which "
        f"{plain(rival)} does not do).{ranking}"
    )


def offline_section(title: str, data: DataSet, results: Offline, header: str, notes: str,
                    rival: str) -> str:  # fmt: skip
    return f"""### {title}

{header}

Data set: {data.description}, {data.rows:,} rows, {data.size / 2**20:.0f} MiB on the source \
(data and indexes, as the server counts them).

| tool | wall time: median (range) | rows on the target | `websonic db verify` of the target |
|---|---|---|---|
{chr(10).join(offline_rows(results))}

Where WebSonic's time goes (medians of its JSON reports' `phases`): \
{where_websonic_time_goes(results)}

{notes}

{goal_line(results, rival)}
"""


PG_NOTES = f"""- {plain(WEBSONIC)} / {plain(WEBSONIC_VERIFIED)}: one snapshot, schema \
pre-data through `pg_dump | psql`, 2 workers streaming binary `COPY` by key ranges, indexes \
and constraints built in parallel waves, sequences, `ANALYZE`; the verified run then \
compares exact row counts, checksums of every row (both servers) and every object.
- {plain(PG_DUMP)}: one process each, custom format streamed through a pipe, no file; \
indexes one by one.
- {plain(PG_DUMP_DIR)}: a directory dump with 2 jobs, then a restore with 2 jobs (data and \
indexes).
- {plain(PGCOPYDB)}: COPY streamed between the servers by 2 jobs, indexes by 2 jobs, then \
`VACUUM ANALYZE`.
- None of the reference tools checks what it copied; the last column is the benchmark's own \
check of every target."""

MARIA_NOTES = f"""- {plain(WEBSONIC)} / {plain(WEBSONIC_VERIFIED)}: a consistent snapshot \
shared by 2 workers (`BACKUP STAGE BLOCK_COMMIT` for an instant), tables created with their \
primary key only, rows as multi-row `INSERT`s whose values the source renders as hex \
literals, secondary indexes built after the data, `ANALYZE TABLE`; the verified run then \
compares exact row counts, checksums by key range and every object.
- {plain(MARIADB_DUMP)}: one stream of extended `INSERT`s (indexes maintained row by row).
- {plain(MYDUMPER)}: 2 threads dump the tables to files (`FLUSH TABLES WITH READ LOCK` for the \
snapshot), 2 threads load them (tables created with all their indexes).
- None of the reference tools checks what it copied; the last column is the benchmark's own \
check of every target."""


def online_rows(results: list[OnlineRun]) -> list[str]:
    rows = []
    for one in sorted(results, key=lambda one: (one.engine != "PostgreSQL", one.turn)):
        downtime = f"{one.downtime:.3f} s" if one.downtime is not None else "—"
        said = [error.rstrip(".") for error in one.report.get("errors", [])]
        found = "; ".join([*said, differences(one.report)])
        status = "ok" if one.ok else f"**failed**: {found}".replace("|", "\\|")
        rows.append(
            f"| {one.engine} | {one.turn + 1} | {one.seconds:.1f} s | {downtime} | "
            f"{one.switch_gap:.3f} s | {one.longest_gap:.3f} s | {one.acked:,} "
            f"({one.on_source:,} + {one.on_target:,}) | {one.lost} | {one.duplicated} | {status} |"
        )
    return rows


def per_engine(results: list[OnlineRun]) -> Iterator[tuple[str, list[OnlineRun]]]:
    for engine in ("PostgreSQL", "MariaDB"):
        runs = [one for one in results if one.engine == engine]
        if runs:
            yield engine, runs


PHASES = ["schema", "copy", "indexes", "objects", "verify", "catch-up", "cutover", "cleanup"]


def online_phases(results: list[OnlineRun]) -> str:
    lines = []
    for engine, runs in per_engine(results):
        names = sorted(
            runs[0].report.get("phases", {}), key=lambda n: PHASES.index(n) if n in PHASES else 99
        )
        parts = ", ".join(
            f"{name} {median([float(r.report['phases'].get(name, 0)) for r in runs]):.1f} s"
            for name in names
        )
        lines.append(f"- {engine}: {parts}.")
    runs = [one for one in results if one.steps]
    if runs:
        steps = ", ".join(f"{name} {span([one.steps.get(name, 0.0) for one in runs], 3)}"
                          for name in runs[0].steps)  # fmt: skip
        lines.append(f"- PostgreSQL's cutover window, step by step (its log; median (range)): "
                     f"{steps}. The drain is the wait until the target has confirmed the "
                     "source's last position.")  # fmt: skip
    return "\n".join(lines)


def writer_errors(results: list[OnlineRun]) -> str:
    lines = []
    for engine, runs in per_engine(results):
        seen: dict[str, int] = {}
        for one in runs:
            for kind, n in one.errors.items():
                seen[kind] = seen.get(kind, 0) + n
        listed = ", ".join(f"`{kind}` x{n}" for kind, n in sorted(seen.items())) or "none"
        unacked = sum(one.unacked_written for one in runs)
        lines.append(f"- {engine}: {listed}; failed attempts whose row was written anyway: "
                     f"{unacked}.")  # fmt: skip
    return "\n".join(lines)


def online_goals(results: list[OnlineRun]) -> str:
    downtimes = [one.downtime for one in results if one.downtime is not None]
    under = len(downtimes) == len(results) and max(downtimes) < 1.0
    lost = sum(one.lost for one in results)
    engines = "; ".join(
        f"{engine}: write downtime "
        f"{span([one.downtime or 0.0 for one in runs], 3)}, the writer's pause at the "
        f"switch {span([one.switch_gap for one in runs], 3)}"
        for engine, runs in per_engine(results)
    )
    return (
        f"- Goal, cutover write downtime under one second: {'**met**' if under else '**not met**'}"
        f" — {engines} (median (range)).\n"
        f"- Goal, zero lost writes: {'**met**' if lost == 0 else '**not met**'} — {lost} lost, "
        f"{sum(one.duplicated for one in results)} duplicated, over "
        f"{sum(one.acked for one in results):,} acknowledged writes in {len(results)} runs; "
        f"{sum(not one.ok for one in results)} of the runs ended with a failed report (see the "
        f"table).{counter_note(results)}"
    )


def counter_note(results: list[OnlineRun]) -> str:
    """Why a MariaDB run whose writes all arrived can still fail: the live AUTO_INCREMENT."""
    failed = [one for one in results if not one.ok and one.engine == "MariaDB"]
    only_counter = [one for one in failed if not one.lost and _only_auto_increment(one.report)]
    if not only_counter:
        return ""
    return (
        f"\n- {len(only_counter)} failed MariaDB report(s) lost nothing: the only difference "
        "found is the `auto_increment` of `bench_writes`, higher on the target by the "
        "application's first inserts there. The verification after the switch (a snapshot of "
        "the target taken before `--on-switch`) compares table options, and a table's "
        "AUTO_INCREMENT counter is not part of a snapshot: it is read live, after the "
        "application has moved it. Whether it shows depends on how soon the verification "
        "reaches that table. The command then exits 10, the run is recorded as failed and the "
        "target keeps its `_websonic_migration` marker until the same command is run again."
    )


def _only_auto_increment(report: dict[str, Any]) -> bool:
    found = report.get("verify") or {}
    if any(not table["ok"] for table in found.get("tables", [])):
        return False
    changed = [_changed(d["source"], d["target"]) for d in found.get("differences", [])]
    return bool(changed) and all(
        part.startswith("auto_increment=") for text in changed for part in text.split(", ")
    )


def online_section(results: list[OnlineRun], header: str) -> str:
    return f"""### Online, under a constant write load

{header}

`websonic db migrate --mode online --jobs 2 --on-switch 'touch FILE'` of the same data sets, \
engines alternating, a fresh empty target database each round. During each run the source gets \
a constant write load — PostgreSQL: `pgbench -n {" ".join(PGBENCH_LOAD)}` (tpcb-like; \
`pgbench_history` made `REPLICA IDENTITY FULL` first, the plan's remedy for a table without a \
primary key); MariaDB: sysbench `oltp_write_only {" ".join(SYSBENCH_LOAD)}` through an \
application account — and a writer (the application) inserts a row with a new unique id every \
{WRITE_EVERY * 1000:.0f} ms into `bench_writes` (a serial primary key of its own, no unique index \
on the id): on the source until `--on-switch` creates FILE, then on the target. An id is never \
retried, so a lost write is an acknowledged id missing on the target, and a duplicated write is \
a second row of one id. The load generators are not switched: they stop at the freeze.

| engine | round | migration (command) | write downtime (report) | writer: pause at the \
switch | writer: longest pause | writes acknowledged (source + target) | lost | duplicated | \
report |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(online_rows(results))}

"Write downtime" is the report's `write_downtime_seconds` (freeze → `--on-switch` done); the \
"pause at the switch" is the writer's last acknowledged write on the source → its first on the \
target; the "longest pause" is the longest time between two acknowledged writes over the whole \
run (pauses during the copy count: two servers, the load, the writer and WebSonic share two \
cores).

Where the time goes (medians of the reports' `phases`):

{online_phases(results)}

Errors the writer saw (each a failed attempt, not retried), all rounds together:

{writer_errors(results)}

{online_goals(results)}
"""


INTRO = """Throwaway servers of the test bed (`tests/testbed/databases.py`: PostgreSQL 15 and \
MariaDB 10.11 on loopback ports, tuned for tests — `fsync = off` / \
`innodb_flush_log_at_trx_commit = 2` — the same for every tool). Each run copies into a fresh \
empty target database, which is then checked with `websonic db verify` (not timed) and dropped, \
so no tool wins by copying less. Tools alternate: the order rotates every round. Wall times are \
the whole command, start-up included."""


def versions() -> str:
    """The reference tools' versions, as they print them."""
    found = []
    for argv in (["pg_dump", "--version"], ["pgcopydb", "--version"], ["mydumper", "--version"],
                 ["mariadb-dump", "--version"], ["sysbench", "--version"]):  # fmt: skip
        said = subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()
        found.append(said[0].split(", built")[0] if said else f"{argv[0]} (no version)")
    return "Tools: " + "; ".join(f"`{line}`" for line in found) + "."


def header(args: argparse.Namespace, minutes: float, loads: list[float]) -> str:
    only = f" --only {args.only}" if args.only else ""
    busy = f"median {median(loads):.1f}, max {max(loads):.1f}" if loads else "not measured"
    return (
        f"`python bench/migrate.py --rounds {args.rounds} --pg-scale {args.pg_scale} "
        f"--maria-tables {args.maria_tables} --maria-rows {args.maria_rows}{only}` — "
        f"{machine()}; this part took {minutes:.1f} min; 1-minute load average when the runs "
        f"started (the benchmark's own servers and tools count in it): {busy}."
    )


def merge(sections: dict[str, str]) -> str:
    """The section's text: this run's parts, and the others as an earlier run left them."""
    old = read_section(SECTION) or ""
    kept = {found[1]: found[0].strip()
            for found in re.finditer(r"^### (.+?)\n.*?(?=^### |\Z)", old, re.S | re.M)}  # fmt: skip
    parts = [sections.get(title, "").strip() or kept.get(title) for title in PARTS.values()]
    return INTRO + " " + versions() + "\n\n" + "\n\n".join(part for part in parts if part)


# --- main -------------------------------------------------------------------------------------

Rendered = tuple[Callable[[str], str], list[float]]  # the text given its header; load averages


def run_parts(args: argparse.Namespace, work: Path) -> dict[str, str]:
    """The parts asked for, each rendered with its own header line."""
    want = [args.only] if args.only else list(PARTS)
    sections: dict[str, str] = {}
    beds: dict[str, Any] = {}
    with ExitStack() as stack:
        if {"pg", "online"} & set(want):
            beds["pg"] = stack.enter_context(pg_bed(work / "pg", args.pg_scale))
        if "pg" in want:
            sections[PARTS["pg"]] = timed_part(args, lambda: pg_part(args, beds["pg"]))
        if {"mariadb", "online"} & set(want):
            bed = maria_bed(work / "maria", args.maria_tables, args.maria_rows)
            beds["mariadb"] = stack.enter_context(bed)
        if "mariadb" in want:
            sections[PARTS["mariadb"]] = timed_part(args, lambda: maria_part(args, beds["mariadb"]))
        if "online" in want:
            sections[PARTS["online"]] = timed_part(args, lambda: online_part(args, beds))
    return sections


def timed_part(args: argparse.Namespace, part: Callable[[], Rendered]) -> str:
    started = time.monotonic()
    render, loads = part()
    return render(header(args, (time.monotonic() - started) / 60, loads))


def pg_part(args: argparse.Namespace, bed: PgBed) -> Rendered:
    data = pg_data_set(bed, args.pg_scale)
    results = bench_pg_offline(bed, args.rounds)
    loads = [r.load for runs in results.values() for r in runs]
    return (lambda head: offline_section(PARTS["pg"], data, results, head, PG_NOTES,
                                         PGCOPYDB)), loads  # fmt: skip


def maria_part(args: argparse.Namespace, bed: MariaBed) -> Rendered:
    data = maria_data_set(bed, args.maria_tables)
    results = bench_maria_offline(bed, args.rounds)
    loads = [r.load for runs in results.values() for r in runs]
    return (lambda head: offline_section(PARTS["mariadb"], data, results, head, MARIA_NOTES,
                                         MYDUMPER)), loads  # fmt: skip


def online_part(args: argparse.Namespace, beds: dict[str, Any]) -> Rendered:
    results = bench_online(list(beds.items()), args.rounds)
    return (lambda head: online_section(results, head)), [one.load for one in results]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-scale", type=int, default=30)
    parser.add_argument("--maria-tables", type=int, default=8)
    parser.add_argument("--maria-rows", type=int, default=400_000)
    parser.add_argument("--only", choices=list(PARTS))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM too
    ensure_tools()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
        for part in ("pg", "maria"):
            (Path(tmp) / part).mkdir()
        sections = run_parts(args, Path(tmp))
    write_section(SECTION, merge(sections))
    print(f"the whole run took {(time.monotonic() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
