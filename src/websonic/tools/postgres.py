"""pg_dump and psql: argv builders, and a parser of pg_dump's plain output (no I/O).

Passwords never go on a command line: ``libpq_env`` puts them in ``PGPASSWORD`` of the command's
environment, and every command carries the URL's secrets so the runner masks them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from websonic.core.runner import Command

#: URL options passed on to libpq as environment variables.
LIBPQ_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}
APPLICATION = "websonic"


@dataclass(frozen=True)
class Login:
    """Where and as whom to connect (``DatabaseUrl`` has the same fields)."""

    host: str
    port: int
    user: str
    database: str
    password: str = field(default="", repr=False)
    params: tuple[tuple[str, str], ...] = ()

    def secrets(self) -> tuple[str, ...]:
        """What the runner masks: the password, raw and URL-quoted."""
        return tuple({self.password, quote(self.password, safe="")} - {""})


def libpq_env(url: Login) -> dict[str, str]:
    """The environment that lets pg_dump/psql log in to ``url`` (password included)."""
    env = {"PGAPPNAME": APPLICATION, "PGCONNECT_TIMEOUT": "10"}
    env.update({LIBPQ_ENV[key]: value for key, value in url.params if key in LIBPQ_ENV})
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def _login(url: Login) -> list[str]:
    return ["--host", url.host, "--port", str(url.port), "--username", url.user]


def pg_dump(
    url: Login,
    *,
    section: str,
    snapshot: str | None = None,
    exclude_schemas: Iterable[str] = (),
) -> Command:
    """``pg_dump --section=SECTION`` of ``url``'s database as plain SQL on stdout (UTF-8).

    Subscriptions and publications are replication settings of the source: never copied.
    """
    argv = [
        "pg_dump",
        *_login(url),
        "--dbname",
        url.database,
        f"--section={section}",
        "--encoding=UTF8",
        "--no-subscriptions",
        "--no-publications",
    ]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    argv += [f"--exclude-schema={schema}" for schema in exclude_schemas]
    return Command(tuple(argv), env=libpq_env(url), secrets=url.secrets())


def psql_apply(url: Login, sql: str) -> Command:
    """Run ``sql`` (a pg_dump script) on ``url`` in one transaction, stopping at the first error."""
    argv = (
        "psql",
        *_login(url),
        "--dbname",
        url.database,
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set",
        "ON_ERROR_STOP=1",
        "--file",
        "-",
    )
    return Command(argv, env=libpq_env(url), secrets=url.secrets(), stdin=sql.encode())


# --- pg_dump's plain output -------------------------------------------------------------------

HEADER = re.compile(
    r"^--\n-- (?:Data for )?Name: (?P<name>.*?); Type: (?P<type>[^;]+); Schema: (?P<schema>[^;]*);"
    r"[^\n]*\n--\n",
    re.MULTILINE,
)
END = "--\n-- PostgreSQL database dump complete\n--"


@dataclass(frozen=True)
class DumpEntry:
    """One object of a dump (one TOC entry): its kind (INDEX, FK CONSTRAINT…) and its SQL."""

    kind: str
    name: str
    schema: str
    sql: str


def split_dump(text: str) -> tuple[str, list[DumpEntry]]:
    """A plain-format dump as (preamble of SET statements, entries in dump order)."""
    text = text.replace("\r\n", "\n")
    matches = list(HEADER.finditer(text))
    head = text[: matches[0].start()] if matches else text.split(END)[0]
    entries = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        body = text[match.end() : following.start() if following else len(text)]
        body = body.split(END)[0].strip()
        entries.append(DumpEntry(match["type"], match["name"], match["schema"], body))
    return _preamble(head), entries


def _preamble(head: str) -> str:
    """The session settings of a dump's head (psql meta-commands and comments dropped)."""
    lines = [
        line for line in head.splitlines() if line.strip() and not line.startswith(("--", "\\"))
    ]
    return "\n".join(lines)


#: Post-data kinds built first, in parallel (FKs and attachments need their indexes).
FIRST_WAVE = {"INDEX", "CONSTRAINT"}
#: Then these, in parallel; anything else follows one by one in dump order.
SECOND_WAVE = {"INDEX ATTACH", "FK CONSTRAINT", "TRIGGER", "RULE", "POLICY"}


def post_data_order(entries: list[DumpEntry]) -> tuple[list[list[int]], list[int]]:
    """Post-data entries (by position): waves whose entries may run in parallel (a wave starts
    when the previous one is done), then the rest, one by one in dump order."""
    first = [i for i, e in enumerate(entries) if e.kind in FIRST_WAVE]
    second = [i for i, e in enumerate(entries) if e.kind in SECOND_WAVE]
    rest = [i for i, e in enumerate(entries) if e.kind not in FIRST_WAVE | SECOND_WAVE]
    return [wave for wave in (first, second) if wave], rest


def server_version(version_num: int) -> tuple[int, int]:
    """``server_version_num`` (150004) as (major, minor): (15, 4); 9.6 style for old servers."""
    if version_num >= 100000:
        return version_num // 10000, version_num % 10000
    return version_num // 10000, (version_num // 100) % 100
