"""Pure parts of the PostgreSQL engine: argv builders, the dump parser, chunks, checksum SQL,
plans and blockers from catalog facts, resume decisions, connection error messages (no server).

The target server older than the source: only PostgreSQL 15 is installed on these machines, so
the downgrade blocker is tested here on a fake ServerInfo.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from websonic.core.errors import MigrationFailed
from websonic.migration.plan import MigrateOptions, ServerInfo
from websonic.migration.postgres import checksum, cutover, online, planning, replication, resume
from websonic.migration.postgres.catalog import Column, Facts, Table
from websonic.migration.postgres.chunks import Chunk, block_chunks, bounds_of, key_chunks
from websonic.migration.postgres.connect import connection_failed, conninfo
from websonic.migration.postgres.copy import chunk_condition, copy_in, copy_out
from websonic.migration.postgres.engine import same_binary_format
from websonic.migration.postgres.probe import info_from_row
from websonic.migration.postgres.schema import PostData
from websonic.migration.report import Difference, TableCheck, VerifyReport
from websonic.migration.urls import parse_database_url
from websonic.tools import postgres as pgtools

PASSWORD = "s3cret-Pa55"
LOGIN = pgtools.Login("db.example", 5433, "shop", "shop", PASSWORD, (("sslmode", "require"),))


def text(query: sql.Composable) -> str:
    return query.as_string(None)


# --- tools/postgres ---------------------------------------------------------------------------


def test_pg_dump_takes_the_snapshot_and_keeps_the_password_out_of_argv() -> None:
    command = pgtools.pg_dump(
        LOGIN, section="pre-data", snapshot="00000003-1", exclude_schemas=["websonic"]
    )
    assert command.argv[:9] == (
        "pg_dump",
        "--host",
        "db.example",
        "--port",
        "5433",
        "--username",
        "shop",
        "--dbname",
        "shop",
    )
    assert "--section=pre-data" in command.argv and "--snapshot=00000003-1" in command.argv
    assert "--no-subscriptions" in command.argv and "--exclude-schema=websonic" in command.argv
    assert PASSWORD not in " ".join(command.argv)
    assert command.env["PGPASSWORD"] == PASSWORD and command.env["PGSSLMODE"] == "require"
    assert PASSWORD in command.secrets and PASSWORD not in command.display()


def test_psql_apply_feeds_the_script_on_stdin_in_one_transaction() -> None:
    command = pgtools.psql_apply(LOGIN, "CREATE TABLE t (a int);")
    assert command.stdin == b"CREATE TABLE t (a int);"
    assert "--single-transaction" in command.argv and "ON_ERROR_STOP=1" in command.argv
    assert PASSWORD not in " ".join(command.argv)


POST_DATA = """--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: orders orders_pkey; Type: CONSTRAINT; Schema: shop; Owner: postgres
--

ALTER TABLE ONLY shop.orders
    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);


--
-- Name: events_kind; Type: INDEX; Schema: shop; Owner: postgres
--

CREATE INDEX events_kind ON ONLY shop.events USING btree (kind);


--
-- Name: events_2024_kind_idx; Type: INDEX ATTACH; Schema: shop; Owner: postgres
--

ALTER INDEX shop.events_kind ATTACH PARTITION shop.events_2024_kind_idx;


--
-- Name: orders orders_logged; Type: TRIGGER; Schema: shop; Owner: postgres
--

CREATE TRIGGER orders_logged AFTER INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.log();


--
-- Name: product_sales; Type: MATERIALIZED VIEW DATA; Schema: shop; Owner: postgres
--

REFRESH MATERIALIZED VIEW shop.product_sales;


--
-- PostgreSQL database dump complete
--

\\unrestrict abc
"""


def test_split_dump_finds_every_entry_and_the_session_preamble() -> None:
    preamble, entries = pgtools.split_dump(POST_DATA)
    assert preamble.splitlines() == [
        "SET statement_timeout = 0;",
        "SELECT pg_catalog.set_config('search_path', '', false);",
    ]
    assert [(e.kind, e.name) for e in entries] == [
        ("CONSTRAINT", "orders orders_pkey"),
        ("INDEX", "events_kind"),
        ("INDEX ATTACH", "events_2024_kind_idx"),
        ("TRIGGER", "orders orders_logged"),
        ("MATERIALIZED VIEW DATA", "product_sales"),
    ]
    assert entries[-1].sql == "REFRESH MATERIALIZED VIEW shop.product_sales;"
    assert "unrestrict" not in entries[-1].sql and "dump complete" not in entries[-1].sql


def test_post_data_waves_build_indexes_before_what_needs_them() -> None:
    _, entries = pgtools.split_dump(POST_DATA)
    assert pgtools.post_data_order(entries) == ([[0, 1], [2, 3]], [4])


def test_server_version_numbers() -> None:
    assert pgtools.server_version(150004) == (15, 4)
    assert pgtools.server_version(90624) == (9, 6)


# --- chunks, copy and checksum SQL ------------------------------------------------------------


def test_key_chunks_are_open_at_both_ends_and_cover_the_range() -> None:
    chunks = key_chunks("s.t", 1, 1000, rows=1000, chunk_rows=250)
    assert [(c.lo, c.hi) for c in chunks] == [(None, 251), (251, 501), (501, 751), (751, None)]
    assert bounds_of(chunks) == [251, 501, 751]
    assert key_chunks("s.t", None, None, rows=10**6, chunk_rows=10)[0].kind == "whole"
    assert key_chunks("s.t", 1, 100, rows=50, chunk_rows=100) == [Chunk("s.t", 0, "whole")]


def test_block_chunks_split_a_big_table_without_a_key() -> None:
    chunks = block_chunks("s.t", table_bytes=8192 * 1000, rows=300_000, chunk_rows=100_000)
    assert [(c.kind, c.lo, c.hi) for c in chunks] == [
        ("ctid", None, 334),
        ("ctid", 334, 667),
        ("ctid", 667, None),
    ]


TABLE = Table(
    "shop",
    "orders",
    "r",
    1000,
    8192,
    (
        Column("id", "bigint"),
        Column("note", "text"),
        Column("total_tax", "numeric", generated=True),
    ),
    ("id",),
    "bigint",
)


def test_copy_sql_leaves_generated_columns_to_the_target() -> None:
    chunk = Chunk("shop.orders", 1, "key", 251, 501)
    assert text(copy_out(TABLE, chunk, "binary")) == (
        'COPY (SELECT "id", "note" FROM ONLY "shop"."orders" WHERE "id" >= 251 AND "id" < 501) '
        "TO STDOUT (FORMAT binary)"
    )
    assert text(copy_in(TABLE, "binary", freeze=True)) == (
        'COPY "shop"."orders" ("id", "note") FROM STDIN (FORMAT binary, FREEZE)'
    )
    ctid = Chunk("shop.orders", 0, "ctid", None, 334)
    assert text(chunk_condition(TABLE, ctid)) == "ctid < '(334,0)'::tid"


def test_chunk_checksums_are_one_scan_grouped_by_key_range() -> None:
    query = text(checksum.chunk_sums("shop", "orders", ["id", "note"], "id", [251, 501]))
    assert query == (
        'SELECT width_bucket(t."id", ARRAY[251, 501]::bigint[]) AS chunk, count(*), '
        'coalesce(sum(hashtextextended(ROW(t."id", t."note")::text, 0)::numeric), 0) '
        'FROM ONLY "shop"."orders" AS t GROUP BY 1'
    )
    whole = text(checksum.chunk_sums("public", "log", ["at"], None, []))
    assert whole.startswith("SELECT 0 AS chunk")


def test_checksum_comparison_finds_the_chunk_that_differs() -> None:
    source = checksum.parse_sums([(0, 10, 123), (1, 10, 456), (2, 5, 9)], 3)
    target = checksum.parse_sums([(0, 10, 123), (1, 10, 457)], 3)
    assert checksum.mismatched(source, target) == [1, 2]
    duplicated = checksum.parse_sums([(0, 11, 123 + 42)], 1)
    assert checksum.mismatched(checksum.parse_sums([(0, 10, 123)], 1), duplicated) == [0]


# --- plans and blockers -----------------------------------------------------------------------


def server(major: int = 15, **settings: str) -> ServerInfo:
    base = {
        "wal_level": "logical",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "replication_slots_used": "0",
        "wal_senders_used": "0",
        "superuser": "on",
        "replication": "on",
        "can_subscribe": "on",
        "free_disk_bytes": str(10**12),
        "createrole": "on",
        "server_encoding": "UTF8",
    }
    return ServerInfo("postgresql", (major, 4), f"{major}.4", 10**6, {**base, **settings})


NO_KEY = Table("public", "audit log", "r", 10, 8192, (Column("at", "timestamptz"),))


def sides(
    source: ServerInfo | None = None, target: ServerInfo | None = None, **facts: object
) -> planning.Sides:
    source_facts = Facts(tables=[TABLE, NO_KEY], extensions={"citext": "1.6"})
    for key, value in facts.items():
        setattr(source_facts, key, value)
    target_facts = facts.get("target_facts", Facts())
    return planning.Sides(
        source or server(), target or server(), source_facts, target_facts, {"citext": ["1.6"]}
    )  # type: ignore[arg-type]


def codes(found: list) -> dict[str, bool]:
    return {b.code: b.fatal for b in found}


def test_a_clean_offline_plan_has_no_blockers_and_an_estimate() -> None:
    plan = planning.build_plan(sides(), MigrateOptions(jobs=2, chunk_rows=500))
    assert plan.blockers == []
    assert [(t.name, t.chunks) for t in plan.tables] == [
        ("shop.orders", 2),
        ("public.audit log", 1),
    ]
    assert plan.estimated_seconds >= planning.OVERHEAD_SECONDS


def test_a_target_older_than_the_source_is_refused() -> None:
    found = planning.blockers(sides(server(16), server(15)), MigrateOptions())
    assert codes(found) == {"downgrade": True}
    assert "PostgreSQL 15, older than the source's 16" in found[0].message


def test_online_blockers_name_the_setting_and_the_remedy() -> None:
    source = server(wal_level="replica", replication="off", replication_slots_used="10")
    found = planning.blockers(sides(source), MigrateOptions(mode="online"))
    assert codes(found) == {
        "wal-level": True,
        "no-slot": True,
        "no-replication-right": True,
        "no-primary-key": True,
    }
    wal = next(b for b in found if b.code == "wal-level")
    assert "wal_level = logical" in wal.message and "RESTART" in wal.hint
    key = next(b for b in found if b.code == "no-primary-key")
    assert key.hint == 'ALTER TABLE "public"."audit log" REPLICA IDENTITY FULL;'
    assert planning.blockers(sides(source), MigrateOptions()) == []


def test_target_not_empty_missing_extension_disk_and_large_objects() -> None:
    full = Facts(user_objects=12)
    small = server(free_disk_bytes="1000")
    found = planning.blockers(
        planning.Sides(
            server(), small, Facts(extensions={"hstore": "1.8"}, large_objects=3), full, {}
        ),
        MigrateOptions(mode="online"),
    )
    assert codes(found) == {
        "not-empty": True,
        "extension-missing": True,
        "disk": True,
        "large-objects": True,
    }
    forced = planning.blockers(
        planning.Sides(server(), server(), Facts(large_objects=3), full, {}),
        MigrateOptions(force=True),
    )
    assert codes(forced) == {"not-empty": False, "large-objects": False}
    unknown_disk = planning.blockers(sides(target=server(free_disk_bytes="")), MigrateOptions())
    assert codes(unknown_disk) == {"disk": False}


def test_our_own_unfinished_copy_is_not_a_blocker() -> None:
    ours = Facts(user_objects=40, marker={"run": 3, "source": "id-1", "state": "copying"})
    sides_ = planning.Sides(server(), server(), Facts(), ours, {}, source_identity="id-1")
    assert codes(planning.blockers(sides_, MigrateOptions())) == {"unfinished": False}
    other = planning.Sides(server(), server(), Facts(), ours, {}, source_identity="id-2")
    assert codes(planning.blockers(other, MigrateOptions())) == {"not-empty": True}


def test_probe_row_becomes_server_info() -> None:
    row = (150004, "15.4", 1234, "logical", "10", "10", 1, 0, False, True, False, "UTF8", "")
    info = info_from_row(row, local=False)
    assert info.version == (15, 4) and info.database_bytes == 1234
    assert info.settings["replication"] == "on" and info.settings["can_subscribe"] == "off"
    assert info.settings["free_disk_bytes"] == ""


# --- resume and cutover decisions -------------------------------------------------------------


def sums(*pairs: tuple[int, int]) -> dict[int, checksum.Sum]:
    return {i: checksum.Sum(rows, total) for i, (rows, total) in enumerate(pairs)}


def test_resume_keeps_only_copied_chunks_that_still_match() -> None:
    chunks = key_chunks("shop.orders", 1, 300, rows=300, chunk_rows=100)
    done = {chunks[0].id, chunks[1].id}
    source = sums((100, 1), (100, 2), (100, 3))
    target = sums((100, 1), (100, 9), (40, 7))  # chunk 1 changed since; chunk 2 not recorded
    kept, stale, wipe = resume.decide(TABLE, chunks, done, source, target)
    assert [c.index for c in kept] == [0]
    assert [c.index for c in stale] == [1, 2] and not wipe


def test_resume_recopies_tables_without_key_chunks_unless_complete_and_equal() -> None:
    chunks = block_chunks("public.log", 8192 * 100, 300, 100)
    all_done = {c.id for c in chunks}
    assert resume.decide(NO_KEY, chunks, set(), None, None) == ([], [], True)
    assert resume.decide(NO_KEY, chunks, {chunks[0].id}, None, None) == ([], [], True)
    same = sums((300, 5))
    assert resume.decide(NO_KEY, chunks, all_done, same, same) == (chunks, [], False)
    assert resume.decide(NO_KEY, chunks, all_done, same, sums((299, 5))) == ([], [], True)


def test_the_cutover_window_checksums_only_small_tables() -> None:
    scope = cutover.window_scope()
    big = Table("public", "big", "r", 10**7, cutover.WINDOW_CHECKSUM_BYTES + 1, ())
    assert scope.checksums(TABLE) and not scope.checksums(big) and scope.sequences
    assert "RESET default_transaction_read_only" in cutover.undo_hint("shop")


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            f'FATAL:  password authentication failed for user "shop" {PASSWORD}',
            "wrong user or password",
        ),
        ('FATAL:  database "shop" does not exist', "has no database 'shop'"),
        ("connection to server at 127.0.0.1, port 1 failed: Connection refused", "Cannot reach"),
    ],
)
def test_connection_errors_say_what_is_wrong_without_the_password(error: str, says: str) -> None:
    url = parse_database_url(f"postgresql://shop:{PASSWORD}@db.example:5433/shop")
    failed = connection_failed(url, error)
    assert says in str(failed) and PASSWORD not in str(failed)
    assert "db.example:5433" in str(failed)


class Unreachable:
    """A target whose CREATE SUBSCRIPTION cannot connect back to the source."""

    def execute(self, _statement: object) -> None:
        raise psycopg.OperationalError(
            f'could not connect to the publisher: password "{PASSWORD}" host 10.0.0.9 refused'
        )


def test_a_target_that_cannot_reach_the_source_says_so() -> None:
    url = parse_database_url(f"postgresql://shop:{PASSWORD}@db.example:5433/shop")
    with pytest.raises(MigrationFailed) as failed:
        replication.create_subscription(Unreachable(), url, replication.Names.of_run(7))  # type: ignore[arg-type]
    text = str(failed.value)
    assert "The target server cannot reach the source at db.example:5433" in text
    assert "pg_hba.conf" in text and PASSWORD not in text


def test_the_subscription_connection_string_is_built_from_the_url() -> None:
    url = parse_database_url(f"postgresql://shop:{PASSWORD}@db.example:5433/shop?sslmode=require")
    info = conninfo(url)
    assert "host=db.example" in info and "port=5433" in info and "sslmode=verify-full" in info
    assert "dbname=shop" in info


def test_roles_the_target_lacks_need_a_user_that_may_create_them() -> None:
    lacking = planning.Sides(
        server(),
        server(createrole="off"),
        Facts(),
        Facts(),
        {},
        missing_roles=("shop_app", "shop_reader"),
    )
    found = planning.blockers(lacking, MigrateOptions())
    assert codes(found) == {"roles": True} and "shop_app, shop_reader" in found[0].message
    able = planning.Sides(
        server(), server(createrole="on"), Facts(), Facts(), {}, missing_roles=("shop_app",)
    )
    assert planning.blockers(able, MigrateOptions()) == []


@pytest.mark.parametrize(
    ("saved", "step"),
    [
        ({}, "copy"),
        ({"mode": "online", "phase": "copy", "done": ["public.t#0"]}, "start-over"),
        ({"mode": "online", "phase": "indexes"}, "start-over"),
        ({"mode": "online", "phase": "catch-up"}, "reattach"),
        ({"mode": "online", "phase": "cutover", "frozen": True}, "reattach"),
        ({"mode": "online", "phase": "cutover", "switched": True}, "clean-up"),
        ({"mode": "offline", "phase": "copy"}, "start-over"),
    ],
)
def test_what_a_resumed_online_run_does(saved: dict, step: str) -> None:
    assert online.next_step(saved) == step


def test_the_window_verification_survives_in_the_checkpoint() -> None:
    report = VerifyReport(
        [TableCheck("shop.orders", 10, 10, 2)],
        [Difference("index", "shop.i", "CREATE INDEX …", None)],
        0.25,
    )
    again = online.window_report(json.loads(json.dumps(report.to_json())))
    assert again is not None and again.to_json() == report.to_json() and not again.ok
    assert online.window_report(None) is None


class NeverConfirms:
    """A source whose slot never reaches the frozen position."""

    def __init__(self) -> None:
        self.pings = 0

    def execute(self, query: str, *_params: object) -> NeverConfirms:
        self.pings += "emit_message" in query
        return self

    def fetchone(self) -> tuple[bool]:
        return (False,)


def test_the_drain_gives_up_after_the_cutover_timeout() -> None:
    source = NeverConfirms()
    with pytest.raises(MigrationFailed, match=r"did not confirm .* within 0 s"):
        cutover.wait_for_target(source, "websonic_1", "0/1000", 0.05)  # type: ignore[arg-type]
    assert source.pings > 0


def test_unlogged_tables_and_other_encodings_are_found_before_anything_changes() -> None:
    unlogged = Table("public", "cache", "r", 1, 8192, (), ("id",), "integer", unlogged=True)
    found = planning.blockers(
        planning.Sides(
            server(), server(server_encoding="LATIN1"), Facts(tables=[unlogged]), Facts(), {}
        ),
        MigrateOptions(mode="online"),
    )
    assert codes(found) == {"encoding": False, "unlogged-table": True}
    assert next(b for b in found if b.fatal).hint.startswith(
        'ALTER TABLE "public"."cache" SET LOGGED'
    )
    assert not same_binary_format(server(server_encoding="UTF8"), server(server_encoding="LATIN1"))
    assert not same_binary_format(server(16), server(17))
    assert same_binary_format(server(), server())


def test_our_ddl_guard_is_left_out_of_the_copied_post_data() -> None:
    dump = POST_DATA.replace(
        "--\n-- PostgreSQL database dump complete",
        "--\n-- Name: websonic_ddl_guard; Type: EVENT TRIGGER; Schema: -; Owner: postgres\n--\n\n"
        "CREATE EVENT TRIGGER websonic_ddl_guard ON ddl_command_end\n"
        "   EXECUTE FUNCTION websonic.refuse_ddl();\n\n\n"
        "--\n-- Name: audit; Type: EVENT TRIGGER; Schema: -; Owner: postgres\n--\n\n"
        "CREATE EVENT TRIGGER audit ON ddl_command_end EXECUTE FUNCTION public.audit();\n\n\n"
        "--\n-- PostgreSQL database dump complete",
    )
    kinds = [(e.kind, e.name) for e in PostData.parse(dump).entries]
    assert ("EVENT TRIGGER", "audit") in kinds
    assert ("EVENT TRIGGER", "websonic_ddl_guard") not in kinds
