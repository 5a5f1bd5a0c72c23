"""What a server is and may do: version, flavour, binlog settings, the user's privileges.

``ServerInfo.settings`` holds strings only (it is shown and stored as JSON): the variables that
decide whether a migration can run, ``privileges`` (the user's global privileges, comma
separated, as SHOW GRANTS lists them), ``database_privileges`` (those granted on the database
itself) and ``replicating`` (the replication connections the server already runs, comma
separated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from websonic.migration.mariadb.connect import Connection, dict_rows, rows, value
from websonic.migration.plan import ServerInfo
from websonic.tools.mariadb import parse_version

VARIABLES = ("log_bin", "binlog_format", "binlog_row_image", "server_id", "gtid_strict_mode",
             "gtid_binlog_pos", "read_only", "max_allowed_packet", "datadir",
             "lower_case_table_names", "version_comment", "gtid_domain_id")  # fmt: skip
SIZE_SQL = """SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0)
FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"""
GRANT_LINE = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<target>\S+) TO ", re.IGNORECASE)
WITH_GRANT_OPTION = re.compile(r" WITH\b.* GRANT OPTION\b", re.IGNORECASE)
#: Privileges that SUPER still implies on MariaDB 10.5 to 10.11 (READ ONLY ADMIN left SUPER in
#: 10.11.0: since then SUPER users are stopped by read_only like everybody else).
SUPER_IMPLIES = {"REPLICATION SLAVE ADMIN", "BINLOG MONITOR", "BINLOG ADMIN",
                 "CONNECTION ADMIN", "REPLICATION MASTER ADMIN", "SET USER", "FEDERATED ADMIN",
                 "SLAVE MONITOR"}  # fmt: skip


def probe(conn: Connection, database: str) -> ServerInfo:
    version_text = str(value(conn, "SELECT VERSION()"))
    version, flavor = parse_version(version_text)
    settings = read_variables(conn)
    settings["flavor"] = flavor
    lines = grant_lines(conn)
    settings["privileges"] = ",".join(sorted(global_privileges(lines)))
    settings["database_privileges"] = ",".join(sorted(database_privileges(lines, database)))
    settings["replicating"] = ",".join(replication_connections(conn))
    size = int(value(conn, SIZE_SQL, (database,)) or 0)
    return ServerInfo("mariadb", version, version_text, size, settings)


def read_variables(conn: Connection) -> dict[str, str]:
    found = {}
    for name in VARIABLES:
        result = rows(conn, "SHOW GLOBAL VARIABLES LIKE %s", (name,))
        found[name] = str(result[0][1]) if result else ""
    return found


def grant_lines(conn: Connection) -> list[str]:
    return [str(r[0]) for r in rows(conn, "SHOW GRANTS FOR CURRENT_USER()")]


def global_privileges(lines: Iterable[str]) -> set[str]:
    """The privileges granted ``ON *.*`` in SHOW GRANTS lines (normalised: upper case, spaces)."""
    found: set[str] = set()
    for line in lines:
        match = GRANT_LINE.match(line)
        if match is None or match["target"] != "*.*":
            continue
        found |= line_privileges(line, match["privileges"])
    return found


def database_privileges(lines: Iterable[str], database: str) -> set[str]:
    """The privileges granted ``ON `database`.*`` in SHOW GRANTS lines (pure)."""
    names = {f"`{database}`.*", f"`{database.replace('_', chr(92) + '_')}`.*"}
    found: set[str] = set()
    for line in lines:
        match = GRANT_LINE.match(line)
        if match is not None and match["target"] in names:
            found |= line_privileges(line, match["privileges"])
    return found


def line_privileges(line: str, privileges: str) -> set[str]:
    """The privileges of one GRANT line, ``GRANT OPTION`` included when it has it (pure)."""
    found = {normalise(p) for p in privileges.split(",")}
    if WITH_GRANT_OPTION.search(line):
        found.add("GRANT OPTION")
    return found


def normalise(privilege: str) -> str:
    return " ".join(privilege.replace("_", " ").upper().split())


def has_privilege(privileges: Iterable[str], needed: str, version: tuple[int, ...]) -> bool:
    """Whether a user with these global privileges has ``needed`` on a server of ``version``."""
    held = {normalise(p) for p in privileges}
    wanted = normalise(needed)
    if "ALL PRIVILEGES" in held or "ALL" in held or wanted in held:
        return True
    if "SUPER" in held:
        if wanted in SUPER_IMPLIES:
            return True
        if wanted == "READ ONLY ADMIN":
            return tuple(version[:2]) < (10, 11)
    return False


def replication_connections(conn: Connection) -> list[str]:
    """The replication connections configured on this server (multi-source names)."""
    try:
        status = dict_rows(conn, "SHOW ALL SLAVES STATUS")
    except Exception:  # MySQL, or no privilege to see them: nothing known
        return []
    return [str(s.get("Connection_name", "")) or "(default)" for s in status]
