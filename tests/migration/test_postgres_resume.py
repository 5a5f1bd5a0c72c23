"""A PostgreSQL migration killed with SIGKILL resumes on the next identical command and ends
verified: during the offline bulk copy (chunks that still match are kept, a chunk changed on
the source since is copied again), during the online bulk copy (started over, no slot left),
while catching up (the subscription kept applying; reattached), and inside the cutover window
(the frozen source is made writable again first)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from postgres_bed import background, checkpoint, load_fixture, psql, rows, slots, wait_for

from conftest import Cli
from testbed import DatabaseServer

pytestmark = pytest.mark.databases

REMEDY = 'ALTER TABLE "public"."audit_log" REPLICA IDENTITY FULL;'
BIG = """
CREATE TABLE public.big (id bigint PRIMARY KEY, payload text NOT NULL);
INSERT INTO public.big SELECT i, repeat(md5(i::text), 2) FROM generate_series(1, 1200000) AS i;
ANALYZE public.big;
"""
MARKER = "SELECT to_regclass('websonic.migration_marker') IS NOT NULL"


def kill_when(process: subprocess.Popen[str], cli: Cli, condition: object, what: str) -> None:
    try:
        wait_for(lambda: process.poll() is None and condition(checkpoint(cli)), what=what)  # type: ignore[operator]
    finally:
        process.kill()
        process.wait()


def big_chunks_done(saved: dict) -> bool:
    return sum(1 for c in saved.get("done", []) if c.startswith("public.big#")) >= 3


def test_offline_killed_during_the_copy_keeps_what_still_matches(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source, extra=BIG)
    target = pg_target.create_database("shop")
    command = ("db", "migrate", "--from", source, "--to", target)
    kill_when(background(cli, *command), cli, big_chunks_done, "three chunks of public.big")
    assert rows(pg_target, "shop", MARKER) == [(True,)], "a partial copy must stay marked"
    assert cli.run("db", "verify", "--from", source, "--to", target, check=False).returncode == 10

    psql(pg_source, "shop", sql="UPDATE public.big SET payload = 'changed since' WHERE id = 1")
    psql(
        pg_source, "shop", sql="INSERT INTO shop.customers (email, name) VALUES ('late@x', 'late')"
    )
    resumed = cli.run(*command)
    assert (
        "Resumed:" in resumed.stderr and "chunk(s) match the source and are kept" in resumed.stderr
    )
    kept = int(resumed.stderr.split("Resumed: ")[1].split()[0])
    assert kept >= 2, resumed.stderr
    assert rows(pg_target, "shop", "SELECT payload FROM public.big WHERE id = 1") == [
        ("changed since",)
    ]
    assert rows(pg_target, "shop", MARKER) == [(False,)]
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_online_killed_during_the_copy_starts_over_and_leaves_no_slot(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source, extra=REMEDY + BIG)
    target = pg_target.create_database("shop")
    command = ("db", "migrate", "--from", source, "--to", target, "--mode", "online")
    kill_when(background(cli, *command), cli, big_chunks_done, "three chunks of public.big")
    assert len(slots(pg_source)) == 1  # the killed run's slot, until the next run drops it

    again = cli.run(*command)
    assert "Starting the copy over" in again.stderr
    assert slots(pg_source) == []
    assert rows(pg_target, "shop", "SELECT subname FROM pg_subscription") == []
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_online_killed_while_catching_up_reattaches_and_finishes(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source, extra=REMEDY)
    target = pg_target.create_database("shop")
    command = ("db", "migrate", "--from", source, "--to", target, "--mode", "online")
    process = background(cli, *command)
    holder = None
    try:
        # changes after the slot's snapshot: they reach the target through the subscription
        wait_for(lambda: "slot_lsn" in checkpoint(cli), what="the replication slot")
        psql(pg_source, "shop", sql="UPDATE public.audit_log SET who = 'x' WHERE what = 'order 1'")
        psql(
            pg_source,
            "shop",
            sql="INSERT INTO shop.orders (customer_id, note, ordered_at) "
            "SELECT 1, repeat('late ', 20), now() FROM generate_series(1, 20000)",
        )
        # hold the row the first change needs: the target's apply waits, the lag stays high
        wait_for(lambda: checkpoint(cli).get("phase") == "indexes", what="the copy to end")
        holder = psycopg.connect(target)
        holder.execute("SELECT * FROM public.audit_log WHERE what = 'order 1' FOR UPDATE")
        kill_when(process, cli, lambda saved: saved.get("phase") == "catch-up", "catch-up")
        assert len(slots(pg_source)) == 1
        assert len(rows(pg_target, "shop", "SELECT subname FROM pg_subscription")) == 1
    finally:
        if holder is not None:
            holder.close()  # the apply goes on by itself
        if process.poll() is None:
            process.kill()
    resumed = cli.run(*command)
    assert "the subscription kept applying" in resumed.stderr
    assert slots(pg_source) == []
    assert rows(pg_target, "shop", "SELECT who FROM public.audit_log WHERE what = 'order 1'") == [
        ("x",)
    ]
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_online_killed_inside_the_cutover_window_unfreezes_and_switches_on_the_next_run(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer, tmp_path: Path
) -> None:
    source = load_fixture(pg_source, extra=REMEDY)
    target = pg_target.create_database("shop")
    first, switched = tmp_path / "first-try", tmp_path / "switched"
    on_switch = f"if [ -e {first} ]; then touch {switched}; else touch {first}; sleep 300; fi"
    command = (
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
    )
    process = background(cli, *command)
    kill_when(process, cli, lambda _saved: first.exists(), "the switch command")
    read_only = "SELECT current_setting('default_transaction_read_only')"
    assert rows(pg_source, "shop", read_only) == [("on",)]  # killed while frozen

    cli.run(*command)
    assert switched.exists()
    assert slots(pg_source) == []
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_abandon_removes_the_slot_guard_and_the_partial_copy(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source, extra=REMEDY + BIG)
    target = pg_target.create_database("shop")
    command = ("db", "migrate", "--from", source, "--to", target, "--mode", "online")
    kill_when(background(cli, *command), cli, big_chunks_done, "three chunks of public.big")
    run = cli.json("db", "runs")["runs"][0]
    assert run["status"] == "copying" and len(slots(pg_source)) == 1
    assert rows(pg_source, "shop", "SELECT count(*) FROM pg_event_trigger") == [(2,)]

    cli.run("db", "abandon", str(run["id"]), "--from", source, "--to", target)
    assert slots(pg_source) == []
    assert rows(pg_source, "shop", "SELECT count(*) FROM pg_publication") == [(0,)]
    assert rows(pg_source, "shop", "SELECT count(*) FROM pg_event_trigger") == [(0,)]
    assert rows(pg_source, "shop", "SELECT to_regnamespace('websonic')") == [(None,)]
    assert rows(pg_target, "shop", "SELECT to_regclass('public.big')") == [(None,)]
    assert rows(pg_target, "shop", MARKER) == [(False,)]
    assert cli.json("db", "runs")["runs"][0]["status"] == "abandoned"
