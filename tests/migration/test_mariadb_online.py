"""Online MariaDB migrations on real servers through the real `websonic db migrate`: under a
write load (nothing lost, nothing doubled, the downtime the application saw), killed during
change capture and resumed, DDL refused, and sources that cannot replicate refused."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mariadb_bed import (
    APP_PASSWORD,
    APP_USER,
    Writer,
    background,
    checkpoint,
    load_fixture,
    read_only,
    replication,
    wait_for,
)

from conftest import Cli
from testbed import DatabaseServer

pytestmark = pytest.mark.databases

LEDGER = "\nCREATE TABLE ledger (id BIGINT NOT NULL PRIMARY KEY, note VARCHAR(60) NOT NULL);\n"
BIG_TABLE = """
CREATE TABLE big (id INT NOT NULL PRIMARY KEY, c CHAR(120) NOT NULL) ENGINE=InnoDB;
INSERT INTO big SELECT seq, REPEAT(MD5(seq), 3) FROM seq_1_to_300000;
"""


def online(cli: Cli, source: str, target: str, switch_file: Path, *args: str) -> list[str]:
    return ["db", "migrate", "--from", source, "--to", target, "--mode", "online",
            "--on-switch", f"touch {switch_file}", *args]  # fmt: skip


def assert_every_write_once(writer: Writer, target: DatabaseServer) -> None:
    acked = [ident for ident, _at, _where in writer.acked]
    assert len(acked) == len(set(acked))
    stored = [r[0] for r in target.execute("SELECT id FROM ledger ORDER BY id", "shop")]
    assert stored == sorted(acked), (len(stored), len(acked))


def test_online_under_writes_loses_nothing_and_reports_the_downtime_seen(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(maria_source, extra=LEDGER)
    target = maria_target.create_database("shop")
    switch_file = tmp_path / "switched"
    writer = Writer(maria_source, maria_target, switch_file).start()
    wait_for(lambda: len(writer.acked) > 50, what="writes on the source")

    report = json.loads(cli.run(*online(cli, source, target, switch_file), "--json").stdout)
    wait_for(lambda: sum(w == "target" for _, _, w in writer.acked) > 50, what="target writes")
    writer.finish()

    assert report["status"] == "succeeded" and report["verify"]["ok"], report
    assert_every_write_once(writer, maria_target)
    assert {w for _, _, w in writer.acked} == {"source", "target"}
    downtime = report["write_downtime_seconds"]
    assert 0 < downtime < 1.0
    assert abs(writer.gap() - downtime) < 0.3, (writer.gap(), downtime)
    assert not read_only(maria_source)  # only the database was frozen, and only in the window
    assert replication(maria_target) == []  # RESET SLAVE ALL: the password is gone too
    names = [r[0] for r in maria_target.execute("SHOW TABLES", "shop")]
    assert "_websonic_migration" not in names


OTHER_APP = ("other_app", "other-secret-1")
OTHER_DATABASE = """
CREATE DATABASE other;
CREATE TABLE other.ledger (id BIGINT NOT NULL PRIMARY KEY, note VARCHAR(60) NOT NULL);
CREATE TABLE other.seen (note VARCHAR(60) NOT NULL);
CREATE USER 'other_app'@'%' IDENTIFIED BY 'other-secret-1';
GRANT SELECT, INSERT ON other.* TO 'other_app'@'%';
GRANT INSERT ON other.seen TO 'shop_app'@'%';
"""
REOPEN = "GRANT INSERT, UPDATE, DELETE ON `shop`.* TO 'shop_app'@'%'"


def window_probe(server: DatabaseServer, folder: Path, switch_file: Path) -> str:
    """The --on-switch command: inside the window, write to the other database (must work), try
    a write to the migrated one (must wait on its locks), leave one waiting from a session using
    another database (its privileges already checked: the switch must end it), read read_only;
    then switch."""
    client = f"mariadb -h127.0.0.1 -P{server.port}"
    folder.mkdir()
    script = folder / "switch.sh"
    script.write_text(
        "set -e\n"
        f"{client} -u{OTHER_APP[0]} -p{OTHER_APP[1]} other"
        " -e \"INSERT INTO seen VALUES ('written in the window')\"\n"
        f'{client} -u{APP_USER} -p{APP_PASSWORD} shop -e "SET SESSION lock_wait_timeout = 1;'
        f" INSERT INTO ledger VALUES (-1, 'in the window')\" 2> {folder}/shop.err || true\n"
        f'setsid {client} -u{APP_USER} -p{APP_PASSWORD} other -e "SET SESSION lock_wait_timeout'
        f" = 60; INSERT INTO shop.ledger VALUES (-5, 'waited from other')\""
        f" < /dev/null > /dev/null 2> {folder}/cross.err &\n"
        f"{client} -u{server.user} -p{server.password} -N -e 'SELECT @@GLOBAL.read_only'"
        f" > {folder}/read_only\n"
        "sleep 0.5\n"
        f"touch {switch_file}\n"
    )
    return f"sh {script}"


def test_finding8_the_cutover_freezes_only_the_migrated_database(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer, tmp_path: Path
) -> None:
    """The window locks the migrated database's tables, not the server: another database of the
    same source (another application's account) keeps taking writes before, during and after
    the cutover, while a write to the migrated database waits; nothing acknowledged is lost."""
    source = load_fixture(maria_source, extra=LEDGER)
    for statement in filter(str.strip, OTHER_DATABASE.split(";")):
        maria_source.execute(statement)
    target = maria_target.create_database("shop")
    switch_file = tmp_path / "switched"
    writer = Writer(maria_source, maria_target, switch_file).start()
    other = Writer(maria_source, maria_source, tmp_path / "never", "other", account=OTHER_APP)
    other.start()
    wait_for(lambda: len(writer.acked) > 50 and len(other.acked) > 50, what="writes")

    report_grants = maria_source.execute("SHOW GRANTS FOR 'shop_report'@'localhost'")
    stray = app_session(maria_source, "shop")  # a second instance never repointed: it stays
    on_switch = window_probe(maria_source, tmp_path / "probe", switch_file)
    report = json.loads(
        cli.run(
            "db",
            "migrate",
            "--from",
            source,
            "--to",
            target,
            "--mode",
            "online",
            "--on-switch",
            on_switch,
            "--json",
        ).stdout
    )
    wait_for(lambda: sum(w == "target" for _, _, w in writer.acked) > 50, what="target writes")
    written = len(other.acked)
    wait_for(lambda: len(other.acked) > written + 50, what="other writes after the cutover")
    writer.finish()
    other.finish()

    assert report["status"] == "succeeded" and report["verify"]["ok"], report
    window = maria_source.execute("SELECT note FROM other.seen")
    assert window == [("written in the window",)]  # another application wrote in the window
    assert "Lock wait timeout exceeded" in (tmp_path / "probe" / "shop.err").read_text()
    cross = wait_for(lambda: (tmp_path / "probe" / "cross.err").read_text(), what="ended")
    assert "ERROR" in cross  # killed after the revoke, not written after the locks
    assert (tmp_path / "probe" / "read_only").read_text().strip() == "0"
    assert not read_only(maria_source)
    assert_every_write_once(writer, maria_target)  # -1 (the write that waited) is not there
    assert other.errors == []  # not one write of the other application failed, nor was killed
    stored = maria_source.execute("SELECT id FROM other.ledger ORDER BY id")
    assert [r[0] for r in stored] == [ident for ident, _at, _where in other.acked]
    assert_closed_after_the_switch(maria_source, stray, report, cli)
    assert maria_source.execute("SHOW GRANTS FOR 'shop_report'@'localhost'") == report_grants


def app_session(server: DatabaseServer, database: str) -> Any:
    import pymysql

    conn = pymysql.connect(host=server.host, port=server.port, user=APP_USER,
                           password=APP_PASSWORD, database=database, autocommit=True)  # fmt: skip
    conn.cursor().execute("SELECT 1")
    return conn


def insert_error(conn: Any, sql: str) -> int | None:
    """The error code of ``sql`` on ``conn`` (None: it wrote)."""
    import pymysql

    try:
        conn.cursor().execute(sql)
    except pymysql.err.MySQLError as exc:
        return int(exc.args[0])
    return None


def assert_closed_after_the_switch(
    server: DatabaseServer, stray: Any, report: dict[str, Any], cli: Cli
) -> None:
    """Finding 8's follow-up: the migrated database on the source stays closed to the
    application's writes after the switch (like PostgreSQL's read-only database), its account
    still writes to another database there, and the report gives the GRANT that reopens it."""
    fresh = app_session(server, "shop")
    assert insert_error(fresh, "INSERT INTO ledger VALUES (-2, 'after the switch')") == 1142
    # the session opened before keeps its USE's database privileges: it was ended (2006/2013)
    assert insert_error(stray, "INSERT INTO ledger VALUES (-3, 'stray')") in (1927, 2006, 2013)
    assert server.execute("SELECT id FROM shop.ledger WHERE id < 0") == []
    elsewhere = app_session(server, "other")
    assert insert_error(elsewhere, "INSERT INTO seen VALUES ('shop_app elsewhere')") is None
    assert f"{REOPEN};" in report["notes"]
    assert cli.json("db", "runs")["runs"][0]["report"]["notes"] == report["notes"]  # kept
    (warning,) = [b for b in report["plan"]["blockers"] if b["code"] == "open-writers"]
    assert "'root'@'localhost'" in warning["message"] and not warning["fatal"]
    server.execute(REOPEN)  # what the report says reopens it
    assert insert_error(app_session(server, "shop"), "INSERT INTO ledger VALUES (-4, 'x')") is None


def test_finding8_a_failed_switch_and_abandon_revoke_and_grant_nothing(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer, tmp_path: Path
) -> None:
    """The database is closed only after a switch: a switch that fails leaves every grant as it
    was (the application keeps its source), and abandoning the run grants nothing either."""
    source = load_fixture(maria_source, extra=LEDGER)
    target = maria_target.create_database("shop")
    before = maria_source.execute("SHOW GRANTS FOR 'shop_app'@'%'")
    args = ["db", "migrate", "--from", source, "--to", target, "--mode", "online"]
    err = cli.fails(*args, "--on-switch", "exit 3", code=15)
    assert "--on-switch failed (exit 3)" in err
    assert maria_source.execute("SHOW GRANTS FOR 'shop_app'@'%'") == before
    assert "closed" not in checkpoint(cli)
    app = app_session(maria_source, "shop")  # the application still writes to its source
    assert insert_error(app, "INSERT INTO ledger VALUES (1, 'a')") is None

    run_id = cli.json("db", "runs")["runs"][0]["id"]
    cli.run("db", "abandon", str(run_id), "--from", source, "--to", target)
    assert maria_source.execute("SHOW GRANTS FOR 'shop_app'@'%'") == before


def test_killed_during_change_capture_replication_goes_on_and_the_rerun_finishes(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(maria_source, extra=LEDGER)
    target = maria_target.create_database("shop")
    switch_file = tmp_path / "switched"
    writer = Writer(maria_source, maria_target, switch_file).start()
    proc = background(cli, *online(cli, source, target, switch_file))
    paused = kill_in_change_capture(cli, proc, maria_target)
    print("killed in", "the verification's pause" if paused else "the catch-up loop")

    assert not switch_file.exists() and not read_only(maria_source)
    assert checkpoint(cli).get("phase") == "catch-up"
    written = len(writer.acked)
    wait_for(lambda: len(writer.acked) > written + 100, what="more writes")
    highest = writer.acked[-1][0]
    if paused:  # replication stops at the verification's position, cleanly, and waits there
        threads = ("Slave_IO_Running", "Slave_SQL_Running")  # for the next run to start it
        wait_for(lambda: [replication(maria_target)[0][t] for t in threads] == ["No", "No"],
                 timeout=30, what="replication stopped at the verification's position")  # fmt: skip
        status = replication(maria_target)[0]
        assert not status["Last_SQL_Error"] and not status["Last_IO_Error"]
    else:  # replication goes on without WebSonic
        wait_for(lambda: maria_target.execute(f"SELECT 1 FROM ledger WHERE id = {highest}",
                                              "shop"),
                 timeout=30, what="replication without WebSonic")  # fmt: skip
        assert replication(maria_target)[0]["Slave_SQL_Running"] == "Yes"

    rerun = json.loads(cli.run(*online(cli, source, target, switch_file), "--json").stdout)
    assert rerun["status"] == "succeeded" and rerun["resumed"] and rerun["verify"]["ok"], rerun
    wait_for(lambda: sum(w == "target" for _, _, w in writer.acked) > 20, what="target writes")
    writer.finish()
    assert_every_write_once(writer, maria_target)
    assert replication(maria_target) == []


@contextmanager
def ledger_held(target: DatabaseServer) -> Iterator[None]:
    """A test connection holds the target's ledger table: the replica falls behind, and a run
    cannot leave its catch-up loop (it waits for at most 1 s of lag) while the lock is held."""
    lock = target.connect("shop")
    try:
        lock.cursor().execute("LOCK TABLES ledger WRITE")
        yield
    finally:
        lock.cursor().execute("UNLOCK TABLES")
        lock.close()


def behind(target: DatabaseServer) -> int:
    rows = replication(target)
    return int((rows[0]["Seconds_Behind_Master"] if rows else None) or 0)


def kill(proc: Any) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def kill_in_change_capture(cli: Cli, proc: Any, target: DatabaseServer) -> bool:
    """SIGKILL the run while it captures changes; True if that was in the pause of its
    verification at one position (the checkpoint says so), False in its catch-up loop.

    The replica 3 s behind under the lock and no pause recorded means the run is in its
    catch-up loop: a run that had left it would have recorded its pause at once, seconds
    before. (A run's catch-up can end before the lock is taken: then it is in the pause.)"""
    wait_for(lambda: replication(target), what="the target's replication")
    with ledger_held(target):
        paused = lambda: bool(checkpoint(cli).get("replication_paused"))  # noqa: E731
        wait_for(lambda: behind(target) >= 3 or paused(), what="the replica held behind")
        was_paused = paused()
        kill(proc)
    return was_paused


def test_ddl_during_an_online_migration_is_refused_not_lost(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(maria_source, extra=BIG_TABLE)
    target = maria_target.create_database("shop")
    switch_file = tmp_path / "switched"
    proc = background(cli, *online(cli, source, target, switch_file))
    wait_for(lambda: checkpoint(cli).get("tables", {}).get("big", {}).get("done"),
             what="the copy under way")  # fmt: skip
    maria_source.execute("ALTER TABLE customers ADD COLUMN loyalty INT", "shop")
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 15, err
    assert "A schema change ran on the source" in err
    assert "ALTER TABLE customers ADD COLUMN loyalty INT" in err
    assert not switch_file.exists() and not read_only(maria_source)

    again = cli.fails(*online(cli, source, target, switch_file), code=15)
    assert "ADD COLUMN loyalty" in again  # still refused: never switched with a lost change

    run_id = cli.json("db", "runs")["runs"][0]["id"]
    cli.run("db", "abandon", str(run_id), "--from", source, "--to", target)
    assert replication(maria_target) == []
    started = time.monotonic()
    report = json.loads(cli.run(*online(cli, source, target, switch_file), "--force",
                                "--json").stdout)  # fmt: skip
    assert report["status"] == "succeeded", report
    columns = [r[0] for r in maria_target.execute("SHOW COLUMNS FROM customers", "shop")]
    assert "loyalty" in columns and time.monotonic() - started < 120


def test_sources_that_cannot_replicate_are_refused_before_anything_changes(
    cli: Cli, mariadb_server_factory, tmp_path: Path
) -> None:
    mixed = mariadb_server_factory(server_id=1, log_bin=True, settings={"binlog-format": "MIXED"})
    same_id = mariadb_server_factory(server_id=1)
    source = mixed.create_database("shop")
    mixed.execute("CREATE TABLE t (id INT PRIMARY KEY)", "shop")
    target = same_id.create_database("shop")
    out = cli.fails(*online(cli, source, target, tmp_path / "switched"), code=15)
    assert "binlog_format is MIXED, not ROW" in out
    assert "the same server_id (1)" in out and "nothing was changed" in out
    assert same_id.execute("SHOW TABLES", "shop") == []
    dry = cli.run(*online(cli, source, target, tmp_path / "switched"), "--dry-run")
    assert "blocker: The source's binlog_format is MIXED" in dry.stdout


def test_the_application_writing_on_the_target_after_the_switch_is_not_a_difference(
    cli: Cli, maria_source: DatabaseServer, maria_target: DatabaseServer, tmp_path: Path
) -> None:
    """AUTO_INCREMENT counters move as soon as the application writes on the target; the
    verification after the switch (which compares the frozen data) must not call that a
    difference (it did: exit 10 and the target left marked unfinished)."""
    maria_source.execute("CREATE DATABASE shop")
    maria_source.execute(
        "CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))"
    )
    maria_source.execute("INSERT INTO shop.orders (note) VALUES ('a'), ('b')")
    target = maria_target.create_database("shop")
    insert = (
        f"mariadb -h127.0.0.1 -P{maria_target.port} -u{maria_target.user} "
        f"-p{maria_target.password} shop -e \"INSERT INTO orders (note) VALUES ('new')\""
    )  # the application's first writes on its new database, inside the switch
    report = json.loads(
        cli.run(
            "db",
            "migrate",
            "--from",
            maria_source.url("shop"),
            "--to",
            target,
            "--mode",
            "online",
            "--on-switch",
            insert,
            "--json",
        ).stdout
    )
    assert report["status"] == "succeeded" and report["verify"]["ok"], report["verify"]
    marker = maria_target.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = '_websonic_migration'"
    )
    assert marker == [(0,)]
