"""The SQLite engine through the real `websonic db` commands, on files with the hard cases.

Fast: everything is local files (no marker). The fixture database has a table without a primary
key, WITHOUT ROWID tables, a TEXT key that holds a NULL, generated columns (stored and virtual),
foreign keys, a trigger, a view, a partial index, an FTS5 table, BLOBs, emoji and a quoted name.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from websonic.migration.engine import RunContext, Stopped
from websonic.migration.plan import MigrateOptions
from websonic.migration.sqlite import SqliteEngine
from websonic.migration.urls import parse_database_url

from conftest import Cli

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA user_version = 7;
PRAGMA application_id = 1234;
CREATE TABLE customers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  email TEXT UNIQUE,
  note TEXT COLLATE NOCASE
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
  total REAL,
  status TEXT NOT NULL,
  total_cents INTEGER GENERATED ALWAYS AS (CAST(round(total * 100) AS INTEGER)) STORED,
  label TEXT GENERATED ALWAYS AS (status || ':' || id) VIRTUAL
);
CREATE TABLE events (at TEXT, kind TEXT, payload BLOB);
CREATE TABLE settings (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE order_tags (order_id INTEGER, tag TEXT, PRIMARY KEY (order_id, tag)) WITHOUT ROWID;
CREATE TABLE tags (name TEXT PRIMARY KEY, weight);
CREATE TABLE "odd ""name"" table" (id INTEGER PRIMARY KEY, "select" TEXT);
CREATE INDEX orders_open ON orders (customer_id) WHERE status = 'open';
CREATE VIEW open_orders AS SELECT o.id, c.name FROM orders o JOIN customers c
  ON c.id = o.customer_id WHERE o.status = 'open';
CREATE TRIGGER orders_audit AFTER UPDATE ON orders BEGIN
  INSERT INTO events VALUES ('trigger', 'order-updated', NULL);
END;
CREATE VIRTUAL TABLE notes USING fts5(body);
"""


def make_database(path: Path, *, orders: int = 3000, journal: str = "wal") -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA.replace("WAL", journal))
    conn.execute("BEGIN")
    names = ["Zoë 🎉", "Ana-María", "O'Brien", "Łukasz", "山田", "plain"]
    for i in range(1, 501):
        conn.execute(
            "INSERT INTO customers (name, email, note) VALUES (?, ?, ?)",
            (f"{names[i % 6]} {i}", f"c{i}@example.com", None if i % 7 else "VIP"),
        )
    for i in range(1, orders + 1):
        status = ("open", "paid", "shipped")[i % 3]
        conn.execute(
            "INSERT INTO orders (id, customer_id, total, status) VALUES (?, ?, ?, ?)",
            (i, 1 + i % 500, round(i * 1.37, 2), status),
        )
        conn.execute("INSERT INTO order_tags VALUES (?, ?)", (i, ("a", "b", "ü")[i % 3]))
    for i in range(200):
        payload = None if i % 10 == 0 else (b"" if i % 10 == 1 else os.urandom(i * 40))
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?)", (f"2024-01-{i % 28 + 1:02}", "x", payload)
        )
    for value in (1, 1.0, "1", b"1", None, 2**62, -0.5, "🙂" * 100):
        conn.execute("INSERT INTO settings VALUES (?, ?)", (f"k{len(repr(value))}{value!r}", value))
    conn.executemany("INSERT INTO tags VALUES (?, ?)", [(None, 0), ("news", 1), ("Sale", 2)])
    conn.execute("""INSERT INTO "odd ""name"" table" ("select") VALUES ('a "quoted" value')""")
    conn.execute("INSERT INTO notes (body) VALUES ('hello world'), ('le café est prêt')")
    conn.execute("COMMIT")
    conn.close()
    return path


def url(path: Path) -> str:
    return f"sqlite://{path}"


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def pragmas(path: Path, *names: str) -> list[object]:
    conn = sqlite3.connect(path)
    try:
        return [conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names]
    finally:
        conn.close()


def migrate(cli: Cli, source: Path, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.run(
        "db", "migrate", "--from", url(source), "--to", url(target), "--json", *args, check=False
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_database(tmp_path / "site.db")


@pytest.fixture
def target(tmp_path: Path) -> Path:
    (tmp_path / "new").mkdir()
    return tmp_path / "new" / "site copy é.db"


def test_migrate_and_verify_a_database_with_the_hard_cases(
    cli: Cli, source: Path, target: Path
) -> None:
    source.chmod(0o640)
    os.chown(source, 10001, 10001)  # the site's user (the tests run as root)
    proc = migrate(cli, source, target)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "succeeded" and report["ok"] and report["verify"]["ok"]
    tables = {t["name"]: t["rows"] for t in report["tables"]}
    assert tables["orders"] == 3000 and tables["events"] == 200 and tables["tags"] == 3
    assert tables["sqlite_sequence"] == 1 and tables["notes_content"] == 2
    checks = {t["name"]: t for t in report["verify"]["tables"]}
    assert checks["events"]["chunks"] == 1 and checks["tags"]["chunks"] == 2  # + the NULL key
    assert set(report["phases"]) == {"copy", "verify"}
    assert "writes made after that are not in it" in report["notes"][0]

    assert dump(target) == dump(source)
    assert pragmas(target, "integrity_check", "journal_mode", "user_version", "application_id") == [
        "ok",
        "wal",
        7,
        1234,
    ]
    assert target.stat().st_mode & 0o777 == 0o640
    assert (target.stat().st_uid, target.stat().st_gid) == (10001, 10001)
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".")) == []

    verified = cli.json("db", "verify", "--from", url(source), "--to", url(target))
    assert verified["ok"] and not verified["differences"]
    human = cli.run("db", "verify", "--from", url(source), "--to", url(target))
    assert "the target matches the source" in human.stdout


def test_verify_exits_10_when_one_row_differs(cli: Cli, source: Path, target: Path) -> None:
    assert migrate(cli, source, target).returncode == 0
    conn = sqlite3.connect(target)
    conn.execute("DROP TRIGGER orders_audit")  # so the update below changes one row only
    conn.execute("UPDATE orders SET total = total + 0.01 WHERE id = 1234")
    conn.commit()
    conn.close()
    proc = cli.run(
        "db", "verify", "--from", url(source), "--to", url(target), "--json", check=False
    )
    assert proc.returncode == 10, proc.stderr
    report = json.loads(proc.stdout)
    assert not report["ok"]
    bad = {t["name"]: t["mismatched"] for t in report["tables"] if not t["ok"]}
    assert bad == {"orders": ["id (all)"]}
    assert [(d["kind"], d["name"], d["target"]) for d in report["differences"]] == [
        ("trigger", "orders_audit", None)
    ]
    human = cli.run("db", "verify", "--from", url(source), "--to", url(target), check=False)
    assert human.returncode == 10 and "MISMATCH" in human.stdout and "orders_audit" in human.stdout
    assert "Traceback" not in human.stderr


def test_checksums_locate_the_range_that_differs(source: Path, target: Path) -> None:
    engine, options = SqliteEngine(), MigrateOptions(chunk_rows=100)
    src, dst = parse_database_url(url(source)), parse_database_url(url(target))
    conn = sqlite3.connect(source)
    conn.backup(sqlite3.connect(target))  # an exact copy to start from
    conn.close()
    assert engine.verify(src, dst, options, lambda _p: None).ok
    conn = sqlite3.connect(target)
    conn.executescript("""
        UPDATE orders SET status = 'lost' WHERE id = 1234;   -- fires the trigger: events grows
        UPDATE order_tags SET tag = 'z' WHERE order_id = 2000;
        UPDATE tags SET weight = 9 WHERE name IS NULL;
        UPDATE settings SET value = 1.0 WHERE value = 1 AND typeof(value) = 'integer';
        UPDATE customers SET note = 'vip' WHERE id = 7;     -- NOCASE: still a change
        PRAGMA user_version = 8;
    """)
    conn.close()
    report = engine.verify(src, dst, options, lambda _p: None)
    bad = {t.name: t.mismatched for t in report.tables if not t.ok}
    assert bad["orders"] == ["id [1201, 1301)"]
    assert bad["order_tags"] == ["(order_id, tag) [(1901, 'ü'), (2001, 'a'))"]
    assert bad["tags"] == ["name IS NULL"]
    assert bad["settings"] == ["key (all)"]
    assert bad["customers"] == ["id [-inf, 101)"]
    events = next(t for t in report.tables if t.name == "events")
    assert (events.source_rows, events.target_rows, events.mismatched) == (
        200,
        201,
        ["whole table"],
    )
    assert [(d.kind, d.name, d.source, d.target) for d in report.differences] == [
        ("pragma", "user_version", "7", "8")
    ]
    checks = {t.name: t.chunks for t in report.tables}
    assert checks["orders"] == 30 and checks["order_tags"] == 30


def test_dry_run_plans_and_changes_nothing(cli: Cli, source: Path, target: Path) -> None:
    plan = cli.json("db", "migrate", "--from", url(source), "--to", url(target), "--dry-run")
    assert plan["status"] == "planned" and not target.exists()
    tables = {t["name"]: t for t in plan["plan"]["tables"]}
    assert tables["orders"]["rows"] == 3000 and tables["orders"]["bytes"] > 3000 * 20
    assert tables["orders"]["primary_key"] == ["id"] and tables["events"]["primary_key"] == []
    assert tables["order_tags"]["primary_key"] == ["order_id", "tag"]
    assert "notes" not in tables and "notes_data" in tables
    assert plan["plan"]["objects"] == {"tables": 14, "indexes": 3, "views": 1, "triggers": 1}
    assert [b["code"] for b in plan["plan"]["blockers"]] == ["snapshot"]
    assert plan["plan"]["source_version"].startswith("SQLite 3.")
    assert plan["plan"]["target_version"].endswith("(new file)")
    human = cli.run("db", "migrate", "--from", url(source), "--to", url(target), "--dry-run")
    assert "Dry run: nothing was changed." in human.stdout and "writes" in human.stdout


def test_online_mode_is_refused_with_the_offline_alternative(
    cli: Cli, source: Path, target: Path
) -> None:
    err = cli.fails(
        "db", "migrate", "--from", url(source), "--to", url(target), "--mode", "online", code=15
    )
    assert "no change capture" in err and "--mode offline" in err
    assert "writes made after the snapshot are not carried" in " ".join(err.split())
    assert not target.exists()
    plan = cli.json(
        "db", "migrate", "--from", url(source), "--to", url(target), "--mode", "online", "--dry-run"
    )
    assert [b["code"] for b in plan["plan"]["blockers"] if b["fatal"]] == ["online-unsupported"]


def test_target_not_empty_is_refused_then_replaced_with_force(
    cli: Cli, source: Path, target: Path
) -> None:
    _with_stale_wal(target)
    assert target.with_name(target.name + "-wal").stat().st_size > 0
    err = cli.fails("db", "migrate", "--from", url(source), "--to", url(target), code=15)
    assert "already holds a database" in err and "--force" in err
    assert pragmas(target, "user_version") == [99]  # untouched
    proc = migrate(cli, source, target, "--force")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verify"]["ok"]
    # the old target's write-ahead log was not replayed into the copy
    assert dump(target) == dump(source)
    assert pragmas(target, "integrity_check") == ["ok"]


def _with_stale_wal(path: Path) -> None:
    """A database killed with committed pages still in its -wal file (not checkpointed)."""
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute('PRAGMA user_version=99')\n"
        "c.execute('CREATE TABLE old (x)')\n"
        "c.executemany('INSERT INTO old VALUES (?)', [(i,) for i in range(5000)])\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], check=False)
    assert proc.returncode == -signal.SIGKILL


def test_an_empty_target_file_is_replaced_without_force(
    cli: Cli, source: Path, target: Path
) -> None:
    target.touch()
    assert migrate(cli, source, target).returncode == 0
    assert dump(target) == dump(source)


def test_bad_sources_and_targets_are_clear_errors(
    cli: Cli, source: Path, target: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    err = cli.fails("db", "migrate", "--from", url(missing), "--to", url(target), code=12)
    assert f"The source database {missing} does not exist" in err
    err = cli.fails("db", "migrate", "--from", url(tmp_path), "--to", url(target), code=2)
    assert "is a folder, not a SQLite database file" in err
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a database\n" * 10)
    err = cli.fails("db", "migrate", "--from", url(text), "--to", url(target), code=2)
    assert "is not a SQLite database" in err
    err = cli.fails("db", "migrate", "--from", url(source), "--to", url(text), code=2)
    assert "is not a SQLite database" in err
    err = cli.fails(
        "db",
        "migrate",
        "--from",
        url(source),
        "--to",
        url(tmp_path / "no" / "such" / "x.db"),
        code=2,
    )
    assert "The target folder" in err and "does not exist" in err and "mkdir -p" in err
    err = cli.fails(
        "db", "migrate", "--from", url(tmp_path / "no" / "x.db"), "--to", url(target), code=12
    )
    assert "does not exist, nor does its folder" in err
    (tmp_path / "link.db").symlink_to(source)
    err = cli.fails(
        "db", "migrate", "--from", url(source), "--to", url(tmp_path / "link.db"), code=2
    )
    assert "the same file" in err
    err = cli.fails("db", "verify", "--from", url(source), "--to", url(missing), code=12)
    assert "does not exist" in err
    assert not list(target.parent.iterdir())


def test_rollback_journal_source_keeps_its_mode(cli: Cli, tmp_path: Path, target: Path) -> None:
    source = make_database(tmp_path / "plain.db", journal="DELETE")
    plan = cli.json("db", "migrate", "--from", url(source), "--to", url(target), "--dry-run")
    assert "journal-mode" in [b["code"] for b in plan["plan"]["blockers"]]
    assert migrate(cli, source, target).returncode == 0
    assert pragmas(target, "journal_mode") == ["delete"]
    assert dump(target) == dump(source)


# --- a live source, a killed run ----------------------------------------------------------------

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
while True:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO ledger (amount) VALUES (1)")
    conn.execute("UPDATE balance SET total = total + 1, entries = entries + 1")
    conn.execute("COMMIT")
"""


def make_big(path: Path, rows: int, *, journal: str = "wal") -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.executescript("""
        CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER, memo BLOB);
        CREATE TABLE balance (total INTEGER, entries INTEGER);
    """)
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO ledger (amount, memo) SELECT 1, randomblob(1000) FROM n",
        (rows,),
    )
    conn.execute("INSERT INTO balance VALUES (?, ?)", (rows, rows))
    conn.close()
    return path


def entries(path: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT (SELECT count(*) FROM ledger), total, entries FROM balance")
        return tuple(row.fetchone())  # type: ignore[return-value]
    finally:
        conn.close()


def test_wal_source_written_during_the_copy_gives_a_consistent_snapshot(
    cli: Cli, tmp_path: Path, target: Path
) -> None:
    source = make_big(tmp_path / "live.db", 100_000)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source)])
    try:
        _wait_for(lambda: entries(source)[0] > 100_050)
        before = entries(source)[0]
        proc = migrate(cli, source, target)
        after = entries(source)[0]
    finally:
        writer.kill()
        writer.wait()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verify"]["ok"]  # the copy equals its snapshot
    count, total, counted = entries(target)
    assert count == total == counted  # every transaction whole, none half
    assert before < count < after  # a snapshot taken while the writer ran
    assert pragmas(target, "integrity_check", "journal_mode") == ["ok", "wal"]
    # writes made after the snapshot are not in the copy: verify says so
    err = cli.fails("db", "verify", "--from", url(source), "--to", url(target), code=10)
    assert "differ" in err


def test_a_killed_run_leaves_only_its_partial_file_and_the_next_run_starts_over(
    cli: Cli, tmp_path: Path, target: Path
) -> None:
    source = make_big(tmp_path / "big.db", 250_000)
    partial = target.with_name(f".{target.name}.websonic-partial")
    args = ["db", "migrate", "--from", url(source), "--to", url(target)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", *args],
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: partial.exists() and partial.stat().st_size > 10 << 20, step=0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert partial.exists() and not target.exists()
    runs = cli.json("db", "runs")["runs"]
    assert runs[0]["status"] in ("copying", "verifying") and runs[0]["target"] == url(target)

    plan = cli.json("db", "migrate", "--from", url(source), "--to", url(target), "--dry-run")
    assert "partial-copy" in [b["code"] for b in plan["plan"]["blockers"]]
    again = cli.run("db", "migrate", "--from", url(source), "--to", url(target))
    assert "Removed the partial copy of an interrupted run" in again.stderr
    assert not partial.exists() and entries(target) == (250_000, 250_000, 250_000)
    run = cli.json("db", "runs")["runs"][0]
    assert run["id"] == runs[0]["id"] and run["status"] == "succeeded"
    assert run["report"]["resumed"] and run["report"]["verify"]["ok"]


def test_abandon_removes_the_partial_file(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.websonic-partial")
    partial.write_bytes(b"half a copy")  # as a killed run leaves it
    engine = SqliteEngine()
    engine.abandon(parse_database_url(url(source)), parse_database_url(url(target)), {})
    assert not partial.exists()


def _wait_for(condition: object, timeout: float = 60, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def test_a_stop_request_ends_the_copy_at_a_step_and_leaves_nothing(
    tmp_path: Path, target: Path
) -> None:
    source = make_big(tmp_path / "big.db", 30_000)
    run = RunContext(None, {}, lambda _p: None, lambda _c: None, lambda _line: None)
    run.stop_requested.set()
    with pytest.raises(Stopped):
        SqliteEngine().migrate(
            parse_database_url(url(source)), parse_database_url(url(target)),
            MigrateOptions(), run,
        )  # fmt: skip
    assert run.checkpoint["phase"] == "copy"
    assert list(target.parent.iterdir()) == []
