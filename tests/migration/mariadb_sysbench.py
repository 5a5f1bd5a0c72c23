"""Informal measurement (not a test): sysbench's 8 tables x 400k rows between two local
MariaDB 10.11 servers — `websonic db migrate` offline against `mariadb-dump | mariadb`, and the
write downtime of an online migration under a small write load.

    .venv/bin/python tests/migration/mariadb_sysbench.py [ROWS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from mariadb_bed import APP_PASSWORD, APP_USER, Writer, login, option_file  # noqa: E402

from testbed.databases import MariaDBServer  # noqa: E402

TABLE = """CREATE TABLE sbtest{n} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '',
  KEY k_{n} (k)) ENGINE=InnoDB"""
ROWS = """INSERT INTO sbtest{n} SELECT seq, FLOOR(RAND() * {rows}),
  CONCAT_WS('-', LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0'),
  LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0'),
  LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0'),
  LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0'),
  LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0')),
  CONCAT_WS('-', LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0'),
  LPAD(FLOOR(RAND() * 1e11), 11, '0'), LPAD(FLOOR(RAND() * 1e11), 11, '0'),
  LPAD(FLOOR(RAND() * 1e11), 11, '0')) FROM seq_1_to_{rows}"""


def websonic(home: Path, *args: str) -> dict:
    env = {"WEBSONIC_HOME": str(home), "WEBSONIC_ADMIN_PASSWORD": "x" * 20,
           "WEBSONIC_ENVIRONMENT": "development", "PATH": "/usr/bin:/bin"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "websonic.cli.main", *args], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout) if proc.stdout.startswith("{") else {}


def dump_pipe(source: MariaDBServer, target: MariaDBServer) -> float:
    with option_file(login(source, "sb")) as src, option_file(login(target, "sb")) as dst:
        started = time.monotonic()
        subprocess.run(f"mariadb-dump --defaults-extra-file={src} -h127.0.0.1 -P{source.port} "
                       f"--single-transaction sb | mariadb --defaults-extra-file={dst} "
                       f"-h127.0.0.1 -P{target.port} sb", shell=True, check=True)  # fmt: skip
        return time.monotonic() - started


def main(rows: int) -> None:
    source = MariaDBServer.start(server_id=1, log_bin=True)
    targets = [MariaDBServer.start(server_id=n) for n in (2, 3, 4)]
    home = Path(tempfile.mkdtemp(prefix="websonic-bench-"))
    try:
        source.execute("CREATE DATABASE sb")
        for n in range(1, 9):
            source.execute(TABLE.format(n=n), "sb")
            source.execute(ROWS.format(n=n, rows=rows), "sb")
        source.execute("CREATE TABLE ledger (id BIGINT PRIMARY KEY, note VARCHAR(60))", "sb")
        source.execute(f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        source.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON sb.* TO '{APP_USER}'@'%'")
        size = source.execute(
            "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM "
            "information_schema.TABLES WHERE TABLE_SCHEMA = 'sb'"
        )[0][0]
        print(f"source: 8 tables x {rows} rows, {int(size) >> 20} MiB")
        websonic(home, "init")
        for target in targets:
            target.execute("CREATE DATABASE sb")
        started = time.monotonic()
        report = websonic(home, "db", "migrate", "--from", source.url("sb"), "--to",
                          targets[0].url("sb"), "--jobs", "2", "--json")  # fmt: skip
        print(
            f"websonic offline (jobs 2, verified): {time.monotonic() - started:.1f} s "
            f"{report['phases']}"
        )
        print(f"mariadb-dump | mariadb: {dump_pipe(source, targets[1]):.1f} s")
        switch = home / "switched"
        writer = Writer(source, targets[2], switch, database="sb").start()
        time.sleep(1)
        started = time.monotonic()
        report = websonic(home, "db", "migrate", "--from", source.url("sb"), "--to",
                          targets[2].url("sb"), "--mode", "online", "--on-switch",
                          f"touch {switch}", "--json")  # fmt: skip
        time.sleep(1)
        writer.finish()
        print(
            f"websonic online: {time.monotonic() - started:.1f} s {report['phases']}, "
            f"write downtime {report['write_downtime_seconds']:.3f} s, the writer's longest "
            f"gap {writer.gap():.3f} s, {len(writer.acked)} writes acknowledged"
        )
    finally:
        for server in [source, *targets]:
            server.destroy()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400_000)
