"""MariaDB engine, the pure parts: SQL builders, CREATE TABLE splitting, key ranges, binlog
events, replication settings, plans and their blockers, privileges, grants, tool argv."""

from __future__ import annotations

import pytest

from websonic.core.errors import MigrationFailed
from websonic.migration.mariadb import (
    binlog,
    chunks,
    closing,
    cutover,
    grants,
    inventory,
    online,
    schema,
    sql,
)
from websonic.migration.mariadb.catalog import Table
from websonic.migration.mariadb.connect import connection_failed
from websonic.migration.mariadb.planning import Facts, build_plan
from websonic.migration.mariadb.probe import database_privileges, global_privileges, has_privilege
from websonic.migration.plan import MigrateOptions, ServerInfo
from websonic.migration.report import Difference
from websonic.migration.urls import parse_database_url
from websonic.tools import mariadb as tool

C = sql.Column


# --- values and checksums ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (C("id", "int"), "IFNULL(`id`, 'NULL')"),
        (C("price", "decimal"), "IFNULL(`price`, 'NULL')"),
        (C("ratio", "float"), "IFNULL(CAST(`ratio` AS DOUBLE), 'NULL')"),
        (C("flags", "bit"), "IFNULL(`flags`+0, 'NULL')"),
        (C("data", "longblob"), "IFNULL(CONCAT('X''', HEX(`data`), ''''), 'NULL')"),
        (
            C("name", "varchar", "latin1"),
            "IFNULL(CONCAT('_latin1 X''', HEX(`name`), ''''), 'NULL')",
        ),
        (C("at", "datetime"), "IFNULL(QUOTE(`at`), 'NULL')"),
    ],
)
def test_values_travel_as_exact_literals(column: sql.Column, expected: str) -> None:
    assert sql.literal_expr(column) == expected


def test_float_is_checksummed_through_double_and_null_differs_from_empty() -> None:
    assert "CAST(`r` AS DOUBLE)" in sql.checksum_value_expr(C("r", "float"))
    text = sql.checksum_value_expr(C("s", "varchar", "utf8mb4"))
    assert text == "IFNULL(CONCAT('v', HEX(`s`)), 'n')"  # '' -> 'v', NULL -> 'n'
    query = sql.checksum_query("shop", "t", [C("id", "int"), C("s", "text", "utf8mb4")], "1")
    assert query.startswith("SELECT COUNT(*), CAST(COALESCE(SUM(CAST(CONV(LEFT(SHA2(CONCAT_WS('|'")
    assert "FROM `shop`.`t` WHERE 1" in query


def test_identifiers_and_strings_are_quoted() -> None:
    assert sql.ident("we`ird") == "`we``ird`"
    assert sql.string_literal("it's a \\ path") == "'it''s a \\\\ path'"


def test_key_ranges_are_written_out_for_the_optimizer() -> None:
    assert sql.compare_key(["id"], ["5"], ">=") == "((`id` >= 5))"
    two = sql.compare_key(["a", "b"], ["1", "'x'"], ">")
    assert two == "((`a` > 1) OR (`a` = 1 AND `b` > 'x'))"
    low_high = sql.key_range(["a", "b"], ["1", "2"], ["3", "4"])
    assert low_high == (
        "((`a` > 1) OR (`a` = 1 AND `b` >= 2)) AND ((`a` < 3) OR (`a` = 3 AND `b` < 4))"
    )
    assert sql.key_range(["a"], None, None) == "1"
    with pytest.raises(ValueError, match="same"):
        sql.compare_key(["a", "b"], ["1"], ">")


def test_integer_ranges_and_chunks() -> None:
    assert chunks.integer_bounds(1, 100, 4) == ["26", "51", "76"]
    assert chunks.integer_bounds(5, 5, 3) == []
    assert chunks.integer_bounds(1, 10, 1) == []
    parts = chunks.from_bounds("t", ["26", "51"])
    assert [(c.low, c.high) for c in parts] == [(None, ["26"]), (["26"], ["51"]), (["51"], None)]
    assert parts[1].where(["id"]) == "((`id` >= 26)) AND ((`id` < 51))"
    assert parts[0].label(["id"]) == "id [start .. 26)"
    assert chunks.Chunk("t", 0, None, None).label([]) == "whole table"


# --- schema -------------------------------------------------------------------------------------

CREATE = """CREATE TABLE `orders` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `seq` int(11) NOT NULL,
  `customer_id` int(11) NOT NULL,
  `body` text DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `seq` (`seq`),
  KEY `customer` (`customer_id`),
  FULLTEXT KEY `body` (`body`),
  CONSTRAINT `fk_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`),
  CONSTRAINT `positive` CHECK (`seq` > 0)
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4
 PARTITION BY HASH (`id`)
PARTITIONS 2"""


def test_big_tables_get_their_secondary_indexes_after_the_data() -> None:
    ddl = schema.split_create("orders", CREATE, defer_indexes=True, auto_increment="id")
    assert ddl.indexes == ("ADD UNIQUE KEY `seq` (`seq`)", "ADD KEY `customer` (`customer_id`)")
    assert ddl.foreign_keys == (
        "ADD CONSTRAINT `fk_customer` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`)",
    )
    assert "FULLTEXT KEY `body`" in ddl.create and "PRIMARY KEY (`id`)," in ddl.create
    assert "CHECK (`seq` > 0)\n) ENGINE=InnoDB" in ddl.create  # the last comma fixed
    assert ddl.create.endswith("PARTITION BY HASH (`id`)\nPARTITIONS 2")


def test_small_tables_keep_indexes_and_the_auto_increment_index_stays() -> None:
    small = schema.split_create("orders", CREATE, defer_indexes=False)
    assert small.indexes == () and "KEY `customer`" in small.create
    assert "FOREIGN KEY" not in small.create  # foreign keys always come last
    text = CREATE.replace("PRIMARY KEY (`id`),", "PRIMARY KEY (`seq`),").replace(
        "UNIQUE KEY `seq` (`seq`)", "KEY `by_id` (`id`)"
    )
    ddl = schema.split_create("orders", text, defer_indexes=True, auto_increment="id")
    assert "KEY `by_id` (`id`)" in ddl.create  # InnoDB needs it for the AUTO_INCREMENT column
    assert ddl.indexes == ("ADD KEY `customer` (`customer_id`)",)
    again = schema.from_dict(schema.to_dict(ddl))
    assert again == ddl


# --- binlog -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "info", "expected"),
    [
        ("Table_map", "table_id: 33 (shop.orders)", ("table", "orders")),
        ("Table_map", "table_id: 34 (shop2.orders)", None),
        ("Table_map", "table_id: 35 (other.shop)", None),
        ("Query", "BEGIN", None),
        ("Query", "COMMIT", None),
        ("Query", "use `shop`; ALTER TABLE t ADD c INT", ("statement", "ALTER TABLE t ADD c INT")),
        (
            "Query",
            "alter table shop.x add column w int",
            ("statement", "alter table shop.x add column w int"),
        ),
        ("Query", "use `other`; DROP TABLE `shop`.`t`", ("statement", "DROP TABLE `shop`.`t`")),
        ("Query", "use `other`; ALTER TABLE myshop.t ADD c INT", None),
        ("Query", "use `shop2`; CREATE TABLE t (id INT)", None),
        ("Gtid", "BEGIN GTID 0-1-5", None),
        ("Write_rows_v1", "table_id: 33 flags: STMT_END_F", None),
    ],
)
def test_binlog_events_of_one_database(
    event_type: str, info: str, expected: tuple[str, str] | None
) -> None:
    assert binlog.classify(event_type, info, "shop") == expected


# --- replication --------------------------------------------------------------------------------


def test_lag_is_counted_across_binlog_files() -> None:
    logs = [("b.000001", 1000), ("b.000002", 5000), ("b.000003", 300)]
    assert online.lag_bytes(logs, ("b.000003", 300), ("b.000003", 100)) == 200
    assert online.lag_bytes(logs, ("b.000003", 300), ("b.000001", 900)) == 100 + 5000 + 300
    assert online.lag_bytes(logs, ("b.000003", 300), ("", 0)) == 300
    assert online.lag_bytes(logs, ("b.000001", 10), ("b.000001", 50)) == 0


def test_change_master_carries_the_url_and_its_ssl_options() -> None:
    url = parse_database_url("mariadb://rep:pa'ss@db.example:3307/shop?ssl=1&ssl_ca=/ca.pem")
    text = online.change_master_sql("websonic_shop", url)
    assert text.startswith("CHANGE MASTER 'websonic_shop' TO MASTER_HOST = 'db.example'")
    assert "MASTER_PORT = 3307" in text and "MASTER_PASSWORD = 'pa''ss'" in text
    assert "MASTER_USE_GTID = slave_pos" in text and "MASTER_SSL_CA = '/ca.pem'" in text
    assert "MASTER_SSL = 1" in text


def test_only_the_migrated_database_is_replicated() -> None:
    assert online.wild_pattern("shop_db") == "shop\\_db.%"
    same = online.filter_statements("websonic_shop", "shop", "shop")
    assert same == ["SET GLOBAL `websonic_shop`.replicate_wild_do_table = 'shop.%'"]
    renamed = online.filter_statements("c", "shop", "shop_new")
    assert renamed == [
        "SET GLOBAL `c`.replicate_wild_do_table = 'shop\\\\_new.%'",
        "SET GLOBAL `c`.replicate_rewrite_db = 'shop->shop_new'",
    ]


def test_replication_problems_are_named() -> None:
    url = parse_database_url("mariadb://rep:s3cret-pw@10.0.0.9:3306/shop")
    online.check_replica({"Slave_IO_Running": "Connecting", "Last_IO_Error": "x"}, url, 1.0)
    with pytest.raises(MigrationFailed, match=r"cannot replicate from the source at 10\.0\.0\.9"):
        online.check_replica(
            {"Slave_IO_Running": "Connecting", "Last_IO_Error": "error connecting (s3cret-pw)"},
            url,
            20.0,
        )
    with pytest.raises(MigrationFailed, match="Duplicate entry") as raised:
        online.check_replica({"Last_SQL_Errno": 1062, "Last_SQL_Error": "Duplicate entry"}, url, 0)
    assert "s3cret" not in str(raised.value)
    with pytest.raises(MigrationFailed, match="gone"):
        online.check_replica(None, url, 0)


# --- plans --------------------------------------------------------------------------------------

ALL = {"privileges": "ALL PRIVILEGES", "flavor": "mariadb"}
ONLINE_SOURCE = {**ALL, "log_bin": "ON", "binlog_format": "ROW", "server_id": "1"}


def server(version: tuple[int, ...] = (10, 11, 6), **settings: str) -> ServerInfo:
    text = ".".join(map(str, version)) + "-MariaDB"
    return ServerInfo("mariadb", version, text, 1 << 20, {**ALL, **settings})


def table(
    name: str = "t",
    key: tuple[str, ...] = ("id",),
    engine: str = "InnoDB",
    rows: int = 10,
    kind: str = "BASE TABLE",
) -> Table:
    return Table(name, kind, engine, rows, rows * 100, 0, 100, None, (C("id", "int"),), key, True)


def plan_for(
    mode: str = "offline",
    source: ServerInfo | None = None,
    target: ServerInfo | None = None,
    **facts: object,
) -> list[tuple[str, bool]]:
    defaults: dict[str, object] = {"tables": [table()]}
    given = Facts(
        source or server(**ONLINE_SOURCE),
        target or server(server_id="2"),
        "shop",
        "shop",
        **{**defaults, **facts},
    )  # type: ignore[arg-type]
    plan = build_plan(given, MigrateOptions(mode=mode))  # type: ignore[arg-type]
    return [(b.code, b.fatal) for b in plan.blockers]


def test_a_clean_pair_has_no_blockers_online() -> None:
    assert plan_for("online") == []


def test_an_older_target_is_refused() -> None:
    # Only MariaDB 10.11 is installed here: the refusal is tested on a made-up ServerInfo.
    assert plan_for(target=server((10, 6, 16), server_id="2")) == [("downgrade", True)]
    assert plan_for(target=server((10, 11, 2), server_id="2")) == [("downgrade", False)]
    assert plan_for(target=server((11, 4, 2), server_id="2")) == []


def test_a_target_that_is_not_empty() -> None:
    assert plan_for(target_objects=3) == [("not-empty", True)]
    assert plan_for(target_objects=3, target_marked=True) == []  # our own unfinished run
    given = Facts(server(), server(), "shop", "shop", [table()], target_objects=3)
    plan = build_plan(given, MigrateOptions(force=True))
    assert [(b.code, b.fatal) for b in plan.blockers] == [("not-empty", False)]
    assert "emptied" in plan.blockers[0].message


@pytest.mark.parametrize(
    ("settings", "code", "words"),
    [
        ({"log_bin": "OFF"}, "log-bin", "log_bin = OFF"),
        ({"binlog_format": "MIXED"}, "binlog-format", "binlog_format is MIXED"),
        ({"server_id": "2"}, "server-id", "same server_id (2)"),
    ],
)
def test_online_needs_row_binlogs_and_distinct_server_ids(
    settings: dict[str, str], code: str, words: str
) -> None:
    given = Facts(
        server(**{**ONLINE_SOURCE, **settings}), server(server_id="2"), "shop", "shop", [table()]
    )
    plan = build_plan(given, MigrateOptions(mode="online"))
    assert [(b.code, b.fatal) for b in plan.blockers] == [(code, True)]
    assert words in plan.blockers[0].message
    assert build_plan(given, MigrateOptions()).blockers == []  # offline does not care


def test_tables_without_a_key_or_innodb() -> None:
    assert plan_for(tables=[table(key=())]) == [("no-primary-key", False)]
    assert plan_for("online", tables=[table(key=())]) == [("no-primary-key", False)]
    assert plan_for(tables=[table(engine="MyISAM")]) == [("engine", False)]
    assert plan_for("online", tables=[table(engine="Aria")]) == [("engine", True)]
    assert plan_for(tables=[table(kind="SEQUENCE")]) == [("unsupported", True)]


def test_privileges_disk_and_replication_already_running() -> None:
    weak = server(**{**ONLINE_SOURCE, "privileges": "SELECT,RELOAD,REPLICATION SLAVE"})
    found = plan_for("online", source=weak)
    # BINLOG MONITOR, LOCK TABLES, PROCESS, CONNECTION ADMIN
    assert ("privileges", True) in found and len(found) == 4
    assert plan_for(target_free_bytes=1000) == [("disk", True)]
    busy = server(server_id="2", replicating="(default)")
    assert plan_for("online", target=busy) == [("replicating", True)]
    no_reload = server(**{**ONLINE_SOURCE, "privileges": "SELECT"})
    assert plan_for(source=no_reload) == [("privileges", False)]


def test_finding8_the_plan_names_the_privileges_of_a_database_freeze() -> None:
    """The cutover locks the database's tables (LOCK TABLES, on the database is enough) and ends
    the sessions using it (PROCESS to see them, CONNECTION ADMIN to end them); it no longer
    needs READ ONLY ADMIN, which froze the whole server."""
    needs = "RELOAD,REPLICATION SLAVE,BINLOG MONITOR,PROCESS,CONNECTION ADMIN"
    lines = ["GRANT SELECT, LOCK TABLES ON `shop`.* TO `migrator`@`%`"]
    on_database = ",".join(database_privileges(lines, "shop"))
    held = server(**ONLINE_SOURCE | {"privileges": needs, "database_privileges": on_database})
    assert plan_for("online", source=held) == []
    lacking = server(**ONLINE_SOURCE | {"privileges": needs})
    given = Facts(lacking, server(server_id="2"), "shop", "shop", [table()])
    blockers = build_plan(given, MigrateOptions(mode="online")).blockers
    assert [(b.code, b.message, b.hint) for b in blockers] == [
        (
            "privileges",
            "The source user lacks LOCK TABLES (to freeze the database's tables at the cutover).",
            "GRANT LOCK TABLES ON `shop`.* TO the user.",
        )
    ]
    assert database_privileges(lines, "other") == set()
    assert cutover.lock_tables_sql("shop", ["a", "b`c"]) == (
        "LOCK TABLES `shop`.`a` READ, `shop`.`b``c` READ"
    )


def test_finding8_after_the_switch_the_source_database_is_closed_to_writes() -> None:
    """The switch revokes the accounts' write privileges on the database, its tables and columns
    (each written as the GRANT that undoes it), so the report can say how to reopen it; reads
    are not revoked, and a role is named without a host."""
    rows = [
        ("'shop_app'@'%'", "`shop`.*", "DELETE"),
        ("'shop_app'@'%'", "`shop`.*", "INSERT"),
        ("'o'k'@'10.0.0.%'", "`shop`.`t`", "UPDATE (`a`, `id`)"),
        ("'writer'@''", "`shop`.*", "INSERT"),
    ]
    found = closing.group(rows)
    assert [(g.revoke_sql(), g.grant_sql()) for g in found] == [
        (
            "REVOKE UPDATE (`a`, `id`) ON `shop`.`t` FROM 'o''k'@'10.0.0.%'",
            "GRANT UPDATE (`a`, `id`) ON `shop`.`t` TO 'o''k'@'10.0.0.%'",
        ),
        (
            "REVOKE INSERT, DELETE ON `shop`.* FROM 'shop_app'@'%'",
            "GRANT INSERT, DELETE ON `shop`.* TO 'shop_app'@'%'",
        ),
        ("REVOKE INSERT ON `shop`.* FROM 'writer'", "GRANT INSERT ON `shop`.* TO 'writer'"),
    ]
    assert closing.users(found) == {"o'k", "shop_app", "writer"}
    assert closing.privilege_names(found) == ["INSERT", "UPDATE", "DELETE"]
    assert "SELECT" not in closing.WRITES and "EXECUTE" not in closing.WRITES
    assert closing.exact_names("my_db") == {"my_db", "my\\_db"}
    notes = closing.reopen_notes("shop", [found[1].grant_sql()], ["'root'@'localhost'"])
    assert notes[1] == "GRANT INSERT, DELETE ON `shop`.* TO 'shop_app'@'%';"
    assert "'root'@'localhost'" in notes[2]
    assert "nothing on the source was closed" in closing.reopen_notes("shop", [], [])[0]


def test_finding8_the_plan_names_what_the_switch_cannot_close_and_what_closing_needs() -> None:
    """Accounts writing through *.* (or a pattern) cannot be closed for one database: a warning
    names them. Revoking needs GRANT OPTION and the revoked privileges (global or on the
    database): without them the run would fail after the switch, so the plan refuses it."""
    needs = "RELOAD,REPLICATION SLAVE,BINLOG MONITOR,PROCESS,CONNECTION ADMIN,LOCK TABLES"
    writes = ("INSERT", "UPDATE", "DELETE")
    lines = ["GRANT SELECT, INSERT, UPDATE, DELETE ON `shop`.* TO `m`@`%` WITH GRANT OPTION"]
    on_database = ",".join(database_privileges(lines, "shop"))
    able = server(**ONLINE_SOURCE | {"privileges": needs, "database_privileges": on_database})
    assert "GRANT OPTION" in on_database
    assert plan_for("online", source=able, closing=writes) == []
    unable = server(**ONLINE_SOURCE | {"privileges": needs})
    given = Facts(unable, server(server_id="2"), "shop", "shop", [table()], closing=writes)
    blockers = build_plan(given, MigrateOptions(mode="online")).blockers
    assert [(b.code, b.message, b.hint) for b in blockers] == [
        (
            "privileges",
            "The source user lacks GRANT OPTION, INSERT, UPDATE, DELETE on 'shop' (to revoke the "
            "application's write privileges there after the switch).",
            "GRANT INSERT, UPDATE, DELETE ON `shop`.* TO the user WITH GRANT OPTION.",
        )
    ]
    writers = ["'admin'@'%'", "'root'@'localhost'"]
    given = Facts(able, server(server_id="2"), "shop", "shop", [table()], open_writers=writers)
    (warning,) = build_plan(given, MigrateOptions(mode="online")).blockers
    assert (warning.code, warning.fatal) == ("open-writers", False)
    assert "'admin'@'%', 'root'@'localhost'" in warning.message
    assert build_plan(given, MigrateOptions()).blockers == []  # offline closes nothing
    blind = Facts(able, server(server_id="2"), "shop", "shop", [table()], hidden_grants=True)
    (blocker,) = build_plan(blind, MigrateOptions(mode="online")).blockers
    assert blocker.fatal and blocker.hint == "GRANT SELECT ON mysql.* TO the user."
    assert "GRANT OPTION" in global_privileges(
        ["GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION"]
    )


def test_plan_sizes_chunks_and_estimate() -> None:
    given = Facts(
        server(),
        server(),
        "shop",
        "shop",
        [table("small", rows=10), table("big", rows=250_000), table("bare", key=(), rows=5)],
        objects={"views": 2},
    )
    plan = build_plan(given, MigrateOptions(chunk_rows=100_000))
    assert [t.name for t in plan.tables] == ["big", "small", "bare"]  # largest first
    assert [t.chunks for t in plan.tables] == [3, 1, 1]
    assert plan.objects == {"tables": 3, "views": 2}
    assert 2 < plan.estimated_seconds < 60


# --- privileges, grants, tools, errors ----------------------------------------------------------


def test_global_privileges_from_show_grants() -> None:
    lines = [
        "GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `rep`@`%`",
        "GRANT SELECT ON `shop`.* TO `rep`@`%`",
    ]
    assert global_privileges(lines) == {"RELOAD", "REPLICATION SLAVE", "BINLOG MONITOR"}
    assert has_privilege(["ALL PRIVILEGES"], "READ ONLY ADMIN", (10, 11, 6))
    assert has_privilege(["SUPER"], "REPLICATION SLAVE ADMIN", (10, 11, 6))
    assert has_privilege(["SUPER"], "READ ONLY ADMIN", (10, 6, 1))
    assert not has_privilege(["SUPER"], "READ ONLY ADMIN", (10, 11, 0))  # MDEV-29596
    assert has_privilege(["READ_ONLY ADMIN"], "READ ONLY ADMIN", (10, 11, 0))


def test_grants_on_the_database_only() -> None:
    lines = [
        "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'",
        "GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`",
        "GRANT SELECT (`id`) ON `shop`.`customers` TO `app`@`%`",
        "GRANT EXECUTE ON FUNCTION `shop`.`total` TO `app`@`%`",
        "GRANT ALL PRIVILEGES ON `shop2`.* TO `app`@`%`",
        "GRANT SELECT ON `other`.* TO `app`@`%`",
    ]
    assert grants.database_grants(lines, "shop") == lines[1:4]
    assert grants.database_grants(["GRANT SELECT ON `my\\_db`.* TO `a`@`%`"], "my_db")
    assert grants.parse_grantee("'o''brien'@'%'") == ("o'brien", "%")
    assert grants.account("o'brien", "10.%") == "'o''brien'@'10.%'"


def test_option_files_keep_any_password_and_argv_never_has_it() -> None:
    login = tool.Login("127.0.0.1", 3306, "root", "shop", 'p"a\\ss #x', (("ssl_ca", "/ca.pem"),))
    text = tool.option_file(login)
    assert 'password="p\\"a\\\\ss #x"' in text and "ssl-ca=" in text and "\nssl\n" in text
    from pathlib import Path

    command = tool.client_script(login, Path("/tmp/x/client.cnf"), "SELECT 1")
    assert command.argv[1] == "--defaults-extra-file=/tmp/x/client.cnf"
    assert not any('p"a' in arg for arg in command.argv)
    assert 'p"a\\ss #x' in command.secrets
    dump = tool.dump(login, Path("/tmp/x/client.cnf"), data=False)
    assert "--no-data" in dump.argv and dump.argv[-1] == "shop"
    assert tool.parse_version("10.11.6-MariaDB-0+deb12u1-log") == ((10, 11, 6), "mariadb")
    assert tool.parse_version("8.0.36") == ((8, 0, 36), "mysql")


def test_connection_errors_say_which_and_hide_the_password() -> None:
    url = parse_database_url("mariadb://app:Hunter2pw@db.example:3306/shop")
    denied = connection_failed(url, Exception(1045, "Access denied for user 'app' (Hunter2pw)"))
    assert "wrong user or password" in str(denied) and "Hunter2pw" not in str(denied)
    unknown = connection_failed(url, Exception(1049, "Unknown database 'shop'"))
    assert "has no database 'shop'" in str(unknown)
    down = connection_failed(url, Exception(2003, "Can't connect to MySQL server"))
    assert str(down).startswith("Cannot reach the MariaDB/MySQL server at db.example:3306")


def test_inventories_compare_with_the_database_name_neutralised() -> None:
    text = inventory.definition({"definition": "select `a`.`t`.`id` from `a`.`t`"}, "a")
    assert text == "definition=select `$db`.`t`.`id` from `$db`.`t`"
    source = {("index", "t.k"): "x", ("view", "v"): "1"}
    target = {("index", "t.k"): "y", ("trigger", "g"): "2"}
    assert inventory.compare(source, target) == [
        Difference("index", "t.k", "x", "y"),
        Difference("trigger", "g", None, "2"),
        Difference("view", "v", "1", None),
    ]


def test_a_batch_deadlocked_on_the_target_is_written_again() -> None:
    """InnoDB rolls a deadlocked autocommit INSERT back whole: the batch is run again (seen in
    a full run with small ranges: error 1213); any other error fails at once."""
    from types import SimpleNamespace

    import pymysql

    from websonic.core.errors import MigrationFailed
    from websonic.migration.mariadb import copy as mariadb_copy

    class Conn:
        def __init__(self, *errors: Exception) -> None:
            self.errors, self.calls = list(errors), 0

        def cursor(self) -> Conn:
            return self

        def __enter__(self) -> Conn:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def execute(self, _sql: bytes) -> int:
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return 2

    table = SimpleNamespace(name="visits", stored_columns=[SimpleNamespace(name="id")])
    job = SimpleNamespace(tables={"visits": table}, target_db="shop")
    batch = SimpleNamespace(chunk=SimpleNamespace(table="visits"), values=b"(1),(2)", rows=2)
    deadlock = pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
    conn = Conn(deadlock, deadlock)
    mariadb_copy.insert(conn, job, batch)  # type: ignore[arg-type]
    assert conn.calls == 3
    duplicate = Conn(pymysql.err.IntegrityError(1062, "Duplicate entry"))
    with pytest.raises(MigrationFailed, match="Writing visits on the target failed"):
        mariadb_copy.insert(duplicate, job, batch)  # type: ignore[arg-type]
    assert duplicate.calls == 1
    endless = Conn(*[deadlock] * (mariadb_copy.DEADLOCK_RETRIES + 1))
    with pytest.raises(MigrationFailed, match="Deadlock"):
        mariadb_copy.insert(endless, job, batch)  # type: ignore[arg-type]
