"""Online PostgreSQL migrations (snapshot + logical replication + cutover) through the real
`websonic db migrate --mode online`, on disposable PostgreSQL 15 servers: the fixture database,
the blockers and their remedies, continuous writes through the cutover (none lost, none
duplicated, the downtime measured), and DDL refused while it runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from postgres_bed import (
    background,
    checkpoint,
    load_fixture,
    migrate,
    psql,
    rows,
    slots,
    wait_for,
)

from conftest import Cli
from testbed import DatabaseServer

pytestmark = pytest.mark.databases

MIGRATION_REFUSED = 15
REMEDY = 'ALTER TABLE "public"."audit_log" REPLICA IDENTITY FULL;'
WRITES = "CREATE TABLE public.writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"


def assert_nothing_left(pg_source: DatabaseServer, pg_target: DatabaseServer) -> None:
    assert slots(pg_source) == []
    assert rows(pg_source, "shop", "SELECT pubname FROM pg_publication") == []
    assert rows(pg_source, "shop", "SELECT evtname FROM pg_event_trigger") == []
    assert rows(pg_target, "shop", "SELECT subname FROM pg_subscription") == []
    assert rows(pg_target, "shop", "SELECT to_regnamespace('websonic')") == [(None,)]


def test_the_fixture_database_moves_online_after_the_planned_remedy(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(pg_source)
    target = pg_target.create_database("shop")
    planned = migrate(cli, source, target, "--mode", "online", "--dry-run")
    blockers = planned["plan"]["blockers"]
    assert [(b["code"], b["hint"]) for b in blockers] == [("no-primary-key", REMEDY)]
    shown = cli.run(
        "db", "migrate", "--from", source, "--to", target, "--mode", "online", "--dry-run"
    ).stdout
    assert "blocker" in shown and REMEDY in shown and "shop.orders" in shown
    assert "Dry run: nothing was changed." in shown
    stderr = cli.fails(
        "db",
        "migrate",
        "--from",
        source,
        "--to",
        target,
        "--mode",
        "online",
        code=MIGRATION_REFUSED,
    )
    assert REMEDY in stderr and "nothing was changed" in stderr
    assert slots(pg_source) == []

    psql(pg_source, "shop", sql=REMEDY)
    switched = tmp_path / "switched"
    report = migrate(cli, source, target, "--mode", "online", "--on-switch", f"touch {switched}")
    assert report["ok"], report["errors"]
    assert switched.exists()
    assert 0 < report["write_downtime_seconds"] < 5
    assert report["verify"]["ok"] and {"copy", "catch-up", "cutover"} <= set(report["phases"])
    assert_nothing_left(pg_source, pg_target)
    read_only = "SELECT current_setting('default_transaction_read_only')"
    assert rows(pg_source, "shop", read_only) == [("on",)]
    assert rows(pg_target, "shop", read_only) == [("off",)]
    assert any("RESET default_transaction_read_only" in note for note in report["notes"])
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_a_source_without_logical_wal_is_refused_naming_the_setting(
    cli: Cli, postgres_server_factory: object, pg_target: DatabaseServer
) -> None:
    plain = postgres_server_factory(wal_level="replica")  # type: ignore[operator]
    source = plain.create_database("shop")
    psql(plain, "shop", sql="CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    target = pg_target.create_database("shop")
    stderr = cli.fails(
        "db",
        "migrate",
        "--from",
        source,
        "--to",
        target,
        "--mode",
        "online",
        code=MIGRATION_REFUSED,
    )
    assert "wal_level = replica" in stderr and "wal_level = logical" in stderr
    assert "RESTART" in stderr
    assert rows(
        pg_target, "shop", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    ) == [(0,)]
    assert migrate(cli, source, target)["ok"]  # offline needs no logical WAL


@dataclass
class Writer:
    """A small write load: one INSERT every few ms with a unique id, on the source until the
    switch file appears, then on the target; it records which writes were acknowledged."""

    source: str
    target: str
    switched: Path
    acked: dict[int, tuple[str, float]] = field(default_factory=dict)
    attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, limit: float = 240) -> None:
        url, conn, deadline = self.source, None, time.monotonic() + limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn = conn or psycopg.connect(url, autocommit=True, connect_timeout=5)
                self.attempts += 1
                conn.execute("INSERT INTO public.writes (id) VALUES (%s)", (self.attempts,))
                self.acked[self.attempts] = (url, time.monotonic())
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
                if self.switched.exists():
                    url = self.target
            time.sleep(0.004)
        if conn is not None:
            conn.close()

    def gap(self) -> float:
        """From the last write acknowledged by the source to the first one by the target."""
        last_source = max(t for u, t in self.acked.values() if u == self.source)
        first_target = min(t for u, t in self.acked.values() if u == self.target)
        return first_target - last_source


def test_continuous_writes_lose_nothing_and_the_downtime_is_what_the_writer_saw(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(pg_source, extra=f"{REMEDY} {WRITES}")
    target = pg_target.create_database("shop")
    switched = tmp_path / "switched"
    writer = Writer(source, target, switched)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(writer.acked) > 50, what="the writer to start")
        report = migrate(
            cli, source, target, "--mode", "online", "--on-switch", f"touch {switched}"
        )
        wait_for(lambda: any(u == target for u, _ in writer.acked.values()), what="target writes")
        time.sleep(0.3)
    finally:
        writer.stop.set()
        thread.join()
    assert report["ok"], report["errors"]
    on_target = {i for (i,) in rows(pg_target, "shop", "SELECT id FROM public.writes")}
    assert set(writer.acked) <= on_target, "acknowledged writes are missing on the target"
    assert max(on_target) <= writer.attempts
    assert rows(pg_target, "shop", "SELECT count(*) = count(DISTINCT id) FROM public.writes") == [
        (True,)
    ]
    on_source = [i for i, (u, _) in writer.acked.items() if u == source]
    assert len(on_source) > 50 and len(writer.acked) > len(on_source)
    downtime, gap = report["write_downtime_seconds"], writer.gap()
    print(f"write downtime: report {downtime:.3f} s, writer saw {gap:.3f} s")
    assert downtime < 2.0
    assert abs(gap - downtime) < 0.25, (gap, downtime)
    assert_nothing_left(pg_source, pg_target)


def test_ddl_during_an_online_migration_is_refused_and_the_copy_stays_consistent(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source, extra=REMEDY)
    target = pg_target.create_database("shop")
    guarded = "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'websonic%'"
    process = background(cli, "db", "migrate", "--from", source, "--to", target, "--mode", "online")
    try:
        wait_for(lambda: rows(pg_source, "shop", guarded) == [(2,)], what="the DDL guard")
        with psycopg.connect(source, autocommit=True) as conn:
            with pytest.raises(psycopg.Error, match="DDL is refused while WebSonic migrates"):
                conn.execute("ALTER TABLE shop.products ADD COLUMN colour text")
            with pytest.raises(psycopg.Error, match="DDL is refused while WebSonic migrates"):
                conn.execute("DROP VIEW shop.order_totals")
            conn.execute("CREATE TEMP TABLE scratch (a int)")  # temporary objects are fine
        _out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert rows(pg_source, "shop", guarded) == [(0,)]
    columns = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'colour'"
    assert rows(pg_target, "shop", columns) == [(0,)] == rows(pg_source, "shop", columns)
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_a_failing_switch_unfreezes_the_source_and_the_next_run_switches(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer, tmp_path: Path
) -> None:
    source = pg_source.create_database("shop")
    psql(
        pg_source,
        "shop",
        sql="CREATE TABLE items (id int PRIMARY KEY, name text); "
        "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 1000) AS i",
    )
    target = pg_target.create_database("shop")
    command = ("db", "migrate", "--from", source, "--to", target, "--mode", "online")
    stderr = cli.fails(*command, "--on-switch", "echo cannot switch >&2; exit 3", code=15)
    assert "--on-switch command failed (exit 3: cannot switch)" in stderr
    read_only = "SELECT current_setting('default_transaction_read_only')"
    assert rows(pg_source, "shop", read_only) == [("off",)]  # the application keeps its source
    psql(pg_source, "shop", sql="INSERT INTO items VALUES (1001, 'written after the failure')")
    assert len(slots(pg_source)) == 1  # the replication goes on

    switched = tmp_path / "switched"
    cli.run(*command, "--on-switch", f"touch {switched}")
    assert switched.exists()
    assert rows(pg_target, "shop", "SELECT name FROM items WHERE id = 1001") == [
        ("written after the failure",)
    ]
    assert slots(pg_source) == []
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_a_difference_found_in_the_cutover_window_keeps_the_application_on_its_source(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(pg_source, extra=REMEDY)
    target = pg_target.create_database("shop")
    switched = tmp_path / "switched"
    process = background(
        cli,
        "db",
        "migrate",
        "--from",
        source,
        "--to",
        target,
        "--mode",
        "online",
        "--on-switch",
        f"touch {switched}",
    )
    holder = None
    try:
        wait_for(lambda: "slot_lsn" in checkpoint(cli), what="the replication slot")
        psql(pg_source, "shop", sql="UPDATE public.audit_log SET who = 'x' WHERE what = 'order 1'")
        wait_for(lambda: checkpoint(cli).get("phase") == "indexes", what="the copy to end")
        holder = psycopg.connect(target)  # holds the catch-up back while the target is changed
        holder.execute("SELECT * FROM public.audit_log WHERE what = 'order 1' FOR UPDATE")
        wait_for(lambda: checkpoint(cli).get("phase") == "catch-up", what="catch-up")
        psql(
            pg_target,
            "shop",
            sql="UPDATE shop.products SET title = 'changed on the target' WHERE id = 7",
        )
        holder.close()
        _out, err = process.communicate(timeout=300)
    finally:
        if holder is not None:
            holder.close()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 10, err
    assert "Cutover given up: the source is writable again." in err
    assert not switched.exists()
    read_only = "SELECT current_setting('default_transaction_read_only')"
    assert rows(pg_source, "shop", read_only) == [("off",)]
    assert len(slots(pg_source)) == 1  # replication goes on: fix the target, run again
