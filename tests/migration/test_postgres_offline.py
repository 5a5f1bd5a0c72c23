"""Offline PostgreSQL migrations through the real `websonic db` commands, on disposable
PostgreSQL 15 servers: the fixture database with the hard cases, verification that fails when
it must (exit 10), dry runs, and every bad input."""

from __future__ import annotations

import json

import psycopg
import pytest
from postgres_bed import load_fixture, migrate, psql, rows

from conftest import Cli
from testbed import DatabaseServer

pytestmark = pytest.mark.databases

VERIFY_FAILED = 10
CONNECTION_FAILED = 12
MIGRATION_REFUSED = 15


def test_the_fixture_database_is_copied_whole_and_verify_catches_any_change(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source, large_objects=True)
    target = pg_target.create_database("shop")

    planned = migrate(cli, source, target, "--dry-run")
    assert planned["status"] == "planned"
    plan = planned["plan"]
    assert {t["name"] for t in plan["tables"]} >= {
        "shop.orders",
        "public.audit_log",
        "shop.events_2024",
    }
    assert plan["objects"]["large objects"] == 5 and plan["objects"]["materialized views"] == 1
    assert [b["code"] for b in plan["blockers"]] == ["large-objects"]
    assert rows(pg_target, "shop", "SELECT count(*) FROM pg_class WHERE relnamespace > 16384") == [
        (0,)
    ]

    report = migrate(cli, source, target, "--jobs", "2")
    assert report["status"] == "succeeded" and report["ok"], report["errors"]
    assert report["verify"]["ok"] and report["rows"] >= 290_000
    orders = next(t for t in report["verify"]["tables"] if t["name"] == "shop.orders")
    assert orders["chunks"] == 2 and orders["target_rows"] == 120_000

    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0

    psql(pg_target, "shop", sql="UPDATE shop.orders SET note = 'changed' WHERE id = 119000")
    psql(pg_target, "shop", sql="DROP INDEX shop.orders_customer")
    psql(pg_target, "shop", sql="SELECT setval('shop.orders_id_seq', 500000)")
    proc = cli.run("db", "verify", "--from", source, "--to", target, "--json", check=False)
    assert proc.returncode == VERIFY_FAILED, proc.stderr
    found = json.loads(proc.stdout)
    assert not found["ok"]
    bad = [t for t in found["tables"] if not t["ok"]]
    assert [(t["name"], t["mismatched"]) for t in bad] == [("shop.orders", ["id 60001.."])]
    assert {(d["kind"], d["name"]) for d in found["differences"]} == {
        ("index", "shop.orders_customer"),
        ("sequence value", "shop.orders_id_seq"),
    }
    text = cli.run("db", "verify", "--from", source, "--to", target, check=False)
    assert text.returncode == VERIFY_FAILED and "MISMATCH" in text.stdout
    _hard_cases_survived(pg_source, pg_target, target)


def _hard_cases_survived(pg_source: DatabaseServer, pg_target: DatabaseServer, target: str) -> None:
    query = "SELECT name, name_de FROM shop.customers WHERE id IN (1, 2) ORDER BY id"
    assert rows(pg_target, "shop", query) == rows(pg_source, "shop", query)
    assert "✨" in rows(pg_target, "shop", query)[0][0]
    # identity and serial columns go on where the source stopped
    inserted = rows(
        pg_target,
        "shop",
        "INSERT INTO shop.customers (email, name) VALUES ('new@example.com', 'new') RETURNING id",
    )
    assert inserted == [(2001,)]
    assert rows(pg_target, "shop", "SELECT nextval('shop.products_id_seq')") == [(501,)]
    assert rows(pg_target, "shop", "SELECT price_with_tax FROM shop.products WHERE id = 1") == (
        rows(pg_source, "shop", "SELECT price_with_tax FROM shop.products WHERE id = 1")
    )
    large = "SELECT md5(lo_get(content)) FROM public.documents ORDER BY id"
    assert rows(pg_target, "shop", large) == rows(pg_source, "shop", large)
    assert rows(pg_target, "shop", "SELECT count(*) FROM shop.product_sales") == [(500,)]
    assert rows(pg_target, "shop", "SELECT to_regnamespace('websonic')") == [(None,)]
    # the application's role came along with its password and grants
    app = target.replace(f"{pg_target.user}:{pg_target.password}", "shop_app:shop-app-password")
    with psycopg.connect(app) as conn:
        assert conn.execute("SELECT count(*) FROM shop.orders").fetchone() == (120_000,)


def test_bad_inputs_are_clear_errors_and_change_nothing(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    source = load_fixture(pg_source)
    target = pg_target.create_database("shop")
    wrong = source.replace(pg_source.password, "not-the-password")
    stderr = cli.fails("db", "migrate", "--from", wrong, "--to", target, code=CONNECTION_FAILED)
    assert "wrong user or password" in stderr and "not-the-password" not in stderr
    assert pg_source.password not in stderr and pg_target.password not in stderr

    closed = target.replace(f":{pg_target.port}/", ":1/")
    stderr = cli.fails("db", "migrate", "--from", source, "--to", closed, code=CONNECTION_FAILED)
    assert "Cannot reach the PostgreSQL server at 127.0.0.1:1" in stderr
    stderr = cli.fails(
        "db",
        "verify",
        "--from",
        source.replace("/shop", "/nope"),
        "--to",
        target,
        code=CONNECTION_FAILED,
    )
    assert "has no database 'nope'" in stderr

    psql(pg_target, "shop", sql="CREATE TABLE leftover (id int); INSERT INTO leftover VALUES (1)")
    stderr = cli.fails("db", "migrate", "--from", source, "--to", target, code=MIGRATION_REFUSED)
    assert "target database is not empty" in stderr and "--force" in stderr
    assert rows(pg_target, "shop", "SELECT count(*) FROM leftover") == [(1,)]

    report = migrate(cli, source, target, "--force")
    assert report["ok"], report["errors"]
    assert rows(pg_target, "shop", "SELECT to_regclass('public.leftover')") == [(None,)]
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0


def test_an_owner_without_superuser_migrates_offline_and_is_told_what_online_needs(
    cli: Cli, pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    urls = []
    for server in (pg_source, pg_target):
        psql(server, "postgres", sql="CREATE ROLE app LOGIN CREATEROLE PASSWORD 'app-password'")
        psql(server, "postgres", sql="CREATE DATABASE appdb OWNER app")
        urls.append(f"postgresql://app:app-password@{server.host}:{server.port}/appdb")
    source, target = urls
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE ROLE app_reader")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 1000) i")
        conn.execute("GRANT SELECT ON items TO app_reader")
        conn.execute("SELECT lo_from_bytea(0, 'a large object')")
    online = migrate(cli, source, target, "--mode", "online", "--dry-run")["plan"]["blockers"]
    assert {(b["code"], b["fatal"]) for b in online} == {
        ("no-replication-right", True),
        ("ddl-guard", False),
        ("no-subscription-right", True),
        ("disk", False),
        ("large-objects", True),
    }

    report = migrate(cli, source, target)
    assert report["ok"], report["errors"]
    assert rows(
        pg_target, "appdb", "SELECT has_table_privilege('app_reader', 'items', 'SELECT')"
    ) == [(True,)]
    assert cli.run("db", "verify", "--from", source, "--to", target).returncode == 0
