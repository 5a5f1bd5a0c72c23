"""Offline MariaDB migrations on real servers, through the real `websonic db` command: the
fixture copied and verified, each kind of difference found (exit 10), bad inputs refused
clearly, a copy killed with SIGKILL resumed, and the engine in-process with small ranges."""

from __future__ import annotations

import json
import signal
from typing import Any

import pymysql
import pytest
from mariadb_bed import (
    APP_PASSWORD,
    APP_USER,
    background,
    checkpoint,
    load_fixture,
    migrate,
    wait_for,
)

from websonic.migration.engine import RunContext
from websonic.migration.mariadb import MariadbEngine
from websonic.migration.mariadb.connect import connect
from websonic.migration.plan import MigrateOptions
from websonic.migration.urls import parse_database_url

from conftest import Cli
from testbed import DatabaseServer

pytestmark = pytest.mark.databases

BIG_TABLE = """
CREATE TABLE big (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
  pad CHAR(60) NOT NULL, KEY k (k)) ENGINE=InnoDB;
INSERT INTO big SELECT seq, seq * 7 % 100003, REPEAT(MD5(seq), 3), LEFT(SHA1(seq), 60)
  FROM seq_1_to_300000;
ANALYZE TABLE big;
"""


def tables(server: DatabaseServer, database: str = "shop") -> list[str]:
    return [r[0] for r in server.execute("SHOW FULL TABLES", database)]


def verify(cli: Cli, source: str, target: str) -> tuple[int, str]:
    proc = cli.run("db", "verify", "--from", source, "--to", target, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_fixture_offline_then_every_difference_exits_10(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer
) -> None:
    source = load_fixture(maria_source)
    target = maria_target.create_database("shop")

    dry = cli.run("db", "migrate", "--from", source, "--to", target, "--dry-run")
    assert "offline mode, 7 tables" in dry.stdout and "Dry run: nothing was changed" in dry.stdout
    assert "log_lines has no primary key" in dry.stdout
    assert tables(maria_target) == []

    report = migrate(cli, source, target, "--jobs", "3")
    assert report["status"] == "succeeded" and report["verify"]["ok"], report
    assert {t["name"]: t["rows"] for t in report["tables"]}["orders"] == 3004
    assert maria_source.password not in json.dumps(report)
    assert verify(cli, source, target)[0] == 0

    name = maria_target.execute("SELECT HEX(name) FROM customers WHERE id = 1", "shop")[0][0]
    assert name == "Zoë 😀".encode().hex().upper()
    assert maria_target.execute("SELECT email FROM customers WHERE id = 0", "shop")
    app = pymysql.connect(
        host=maria_target.host,
        port=maria_target.port,
        user=APP_USER,
        password=APP_PASSWORD,
        database="shop",
    )  # the account came along
    app.close()

    maria_target.execute("UPDATE customers SET note = 'changed' WHERE id = 3", "shop")
    code, out = verify(cli, source, target)
    assert code == 10 and "customers" in out and "id [start .. end)" in out and "MISMATCH" in out
    maria_target.execute("UPDATE customers SET note = '' WHERE id = 3", "shop")
    assert verify(cli, source, target)[0] == 0

    maria_target.execute("ALTER TABLE orders DROP INDEX placed", "shop")
    code, out = verify(cli, source, target)
    assert code == 10 and "differs index orders.placed" in out, out
    maria_target.execute("ALTER TABLE orders ADD KEY placed (placed DESC)", "shop")

    maria_target.execute("ALTER TABLE orders AUTO_INCREMENT = 999999", "shop")
    code, out = verify(cli, source, target)
    assert code == 10 and "differs table orders" in out and "auto_increment=999999" in out


def test_bad_inputs_are_refused_clearly(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer
) -> None:
    source = load_fixture(maria_source)
    target = maria_target.create_database("shop")
    wrong = source.replace(maria_source.password, "not-the-password-42")
    out = cli.fails("db", "migrate", "--from", wrong, "--to", target, code=12)
    assert "refused the login of user 'root': wrong user or password" in out
    assert "not-the-password-42" not in out and maria_target.password not in out

    closed = target.replace(f":{maria_target.port}/", ":1/")
    out = cli.fails("db", "migrate", "--from", source, "--to", closed, code=12)
    assert "Cannot reach the MariaDB/MySQL server at 127.0.0.1:1" in out
    out = cli.fails(
        "db", "verify", "--from", source.replace("/shop", "/nope"), "--to", target, code=12
    )
    assert "has no database 'nope'" in out

    maria_target.execute("CREATE TABLE theirs (id INT PRIMARY KEY)", "shop")
    out = cli.fails("db", "migrate", "--from", source, "--to", target, code=15)
    assert "is not empty" in out and "--force" in out
    assert tables(maria_target) == [("theirs")]
    report = migrate(cli, source, target, "--force")
    assert report["status"] == "succeeded"
    assert "theirs" not in tables(maria_target)


def test_a_copy_killed_with_sigkill_resumes_and_keeps_what_it_can(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer
) -> None:
    source = load_fixture(maria_source, extra=BIG_TABLE)
    target = maria_target.create_database("shop")
    proc = background(cli, "db", "migrate", "--from", source, "--to", target)

    def some_ranges_copied() -> bool:
        # The ranges come from the table's row estimate (ANALYZEd: 3 or more of them); two
        # workers finish the first two at about the same time, so stop while any are left.
        state = checkpoint(cli).get("tables", {}).get("big", {})
        return 1 <= len(state.get("done", [])) < len(state.get("chunks", []))

    wait_for(some_ranges_copied, timeout=120, what="part of the big table copied")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    code, out = verify(cli, source, target)
    assert code == 10 and "unfinished migration" in out  # it never looks complete

    maria_source.execute("UPDATE visits SET page = 'changed after the kill' WHERE id = 7", "shop")
    resumed = cli.run("db", "migrate", "--from", source, "--to", target)
    assert "succeeded" in resumed.stdout and "the target matches the source" in resumed.stdout
    assert "visits changed since the interrupted copy" in resumed.stderr
    assert "keep the ranges already copied" in resumed.stderr
    assert verify(cli, source, target)[0] == 0


def run_engine(source: str, target: str, **options: Any) -> Any:
    progress: list[Any] = []
    run = RunContext(None, {}, progress.append, lambda _c: None, lambda _line: None)
    engine = MariadbEngine()
    src, dst = parse_database_url(source), parse_database_url(target)
    outcome = engine.migrate(src, dst, MigrateOptions(**options), run)
    return engine, src, dst, outcome


def test_small_ranges_another_database_name_and_utf8mb4(
    maria_source: DatabaseServer, maria_target: DatabaseServer
) -> None:
    source = load_fixture(maria_source)
    target = maria_target.create_database("shop_copy")
    engine, src, dst, outcome = run_engine(source, target, jobs=3, chunk_rows=7)
    assert outcome.verify.ok, outcome.verify
    checks = {t.name: t for t in outcome.verify.tables}
    assert checks["orders"].chunks > 100 and checks["countries"].chunks == 2  # string key
    assert checks["log_lines"].chunks == 1 and checks["log_lines"].target_rows == 6

    maria_target.execute(
        "UPDATE countries SET label = 'Frankreich' WHERE code = 'FRA'", "shop_copy"
    )
    report = engine.verify(src, dst, MigrateOptions(chunk_rows=7), lambda _p: None)
    bad = [t for t in report.tables if not t.ok]
    assert [t.name for t in bad] == ["countries"]
    assert bad[0].mismatched == ["code [start .. _latin1 X'495441')"]  # AUT..FRA < ITA

    # a 3-byte utf8 connection turns the emoji into '?'; WebSonic's connections do not
    narrow = pymysql.connect(
        host=maria_target.host,
        port=maria_target.port,
        user="root",
        password=maria_target.password,
        database="shop_copy",
        charset="utf8",
    )
    with narrow.cursor() as cursor:
        cursor.execute("SELECT name FROM customers WHERE id = 1")
        assert cursor.fetchone()[0] == "Zoë ?"
    narrow.close()
    ours = connect(dst)
    with ours.cursor() as cursor:
        cursor.execute("SELECT name, @@character_set_client FROM customers WHERE id = 1")
        assert cursor.fetchone() == ("Zoë 😀", "utf8mb4")
    ours.close()
