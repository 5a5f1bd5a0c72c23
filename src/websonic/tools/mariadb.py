"""mariadb and mariadb-dump: argv builders, option files and parsers of server texts (no I/O).

Passwords never go on a command line. A tool gets them from an option file given with
``--defaults-extra-file`` (which must be its first option): :func:`option_file` renders that
file's text, and the caller writes it mode 600 in a private temporary folder and removes it as
soon as the tool has ended. Every command also carries the password as a secret, so the runner
masks it should a tool ever print it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from websonic.core.runner import Command

#: URL options of mariadb:// passed on to the client tools.
SSL_OPTIONS = {"ssl_ca": "ssl-ca", "ssl_cert": "ssl-cert", "ssl_key": "ssl-key"}
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


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
        return tuple({self.password, quote(self.password, safe="")} - {""})


def option_file(login: Login) -> str:
    """The ``[client]`` option file that logs a tool in to ``login`` (password included)."""
    lines = ["[client]", f"user={_option_value(login.user)}",
             f"password={_option_value(login.password)}"]  # fmt: skip
    options = dict(login.params)
    for key, name in SSL_OPTIONS.items():
        if key in options:
            lines.append(f"{name}={_option_value(options[key])}")
    if options.get("ssl") in ("1", "true", "on") or "ssl_ca" in options:
        lines.append("ssl")
    if options.get("ssl_verify") in ("1", "true", "on"):
        lines.append("ssl-verify-server-cert")
    return "\n".join(lines) + "\n"


def _option_value(value: str) -> str:
    """A value as an option file reads it back exactly (double quotes, backslash escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _connection(login: Login, defaults: Path) -> list[str]:
    return [f"--defaults-extra-file={defaults}", "--host", login.host, "--port",
            str(login.port), "--protocol=TCP", "--default-character-set=utf8mb4"]  # fmt: skip


def client_script(login: Login, defaults: Path, script: str) -> Command:
    """``mariadb DATABASE < script``: a SQL script with DELIMITER lines, stopping at an error."""
    argv = ["mariadb", *_connection(login, defaults), "--batch", "--database", login.database]
    return Command(tuple(argv), secrets=login.secrets(), stdin=script.encode())


def dump(login: Login, defaults: Path, *, data: bool = True) -> Command:
    """``mariadb-dump --single-transaction`` of the database with its routines, triggers and
    events (``data=False``: the schema only), as SQL on stdout."""
    argv = ["mariadb-dump", *_connection(login, defaults), "--single-transaction",
            "--routines", "--triggers", "--events", "--hex-blob", "--skip-comments"]  # fmt: skip
    if not data:
        argv.append("--no-data")
    argv += ["--databases", login.database]
    return Command(tuple(argv), secrets=login.secrets())


def parse_version(text: str) -> tuple[tuple[int, int, int], str]:
    """``SELECT VERSION()`` -> ((10, 11, 6), "mariadb"|"mysql"); MariaDB says so in the text."""
    match = VERSION.match(text)
    if match is None:
        raise ValueError(f"not a MariaDB/MySQL version: {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch), "mariadb" if "mariadb" in text.lower() else "mysql"
