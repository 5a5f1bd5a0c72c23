"""Database URLs: parsed, checked, and shown with their password masked.

    postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE[?sslmode=require&sslrootcert=/ca.pem]
    mariadb://USER:PASSWORD@HOST[:PORT]/DATABASE[?ssl=1&ssl_ca=/ca.pem]    (or mysql://)
    sqlite:///absolute/path/site.db
    …?ssh=CUSTOMER/HOST   reach HOST:PORT through an SSH tunnel to a registered host

A password is never printed: ``masked()`` is what logs, reports and the state database keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from websonic.core.errors import InvalidInput

SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "mariadb": "mariadb",
           "mysql": "mariadb", "sqlite": "sqlite"}  # fmt: skip
DEFAULT_PORTS = {"postgresql": 5432, "mariadb": 3306}
MASK = "********"
#: Query parameters understood (anything else is refused: a typo must not be ignored).
PARAMS = {
    "postgresql": {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "ssh"},
    "mariadb": {"ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify", "connect_timeout", "ssh"},
    "sqlite": set(),
}
DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,63}$")
HOST_REF = re.compile(r"^[a-z0-9-]+/[a-z0-9-]+$")


@dataclass(frozen=True)
class DatabaseUrl:
    engine: str  # postgresql | mariadb | sqlite
    database: str  # the database name; for sqlite the file's absolute path
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    params: tuple[tuple[str, str], ...] = ()

    @property
    def options(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def ssh_host(self) -> str | None:
        """CUSTOMER/HOST of the registered server to tunnel through, if any."""
        return self.options.get("ssh")

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return Path(self.database)

    def masked(self) -> str:
        """The URL as it may be shown, logged and stored: the password replaced."""
        return self._render(MASK if self.password else "")

    def secret(self) -> str:
        """The full URL, password included: for connecting only, never for display."""
        return self._render(self.password)

    def secrets(self) -> tuple[str, ...]:
        """What a runner must mask in logs (the password, raw and URL-quoted)."""
        return tuple({self.password, quote(self.password, safe="")} - {""})

    def through(self, host: str, port: int) -> DatabaseUrl:
        """The same database reached at another address (the local end of a tunnel)."""
        params = tuple((k, v) for k, v in self.params if k != "ssh")
        return replace(self, host=host, port=port, params=params)

    def _render(self, password: str) -> str:
        if self.engine == "sqlite":
            return f"sqlite:///{self.database.lstrip('/')}"
        credentials = quote(self.user, safe="")
        if password:
            credentials += ":" + (password if password == MASK else quote(password, safe=""))
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"{self.engine}://{credentials}@{host}:{self.port}/{self.database}{query}"


def parse_database_url(text: str, *, what: str = "database URL") -> DatabaseUrl:
    """Parse and check a URL; errors say what is wrong without showing the password."""
    scheme, sep, _ = text.partition("://")
    engine = SCHEMES.get(scheme.lower())
    if not sep or engine is None:
        raise InvalidInput(
            f"The {what} must start with postgresql://, mariadb://, mysql:// or sqlite:///.",
            hint="e.g. postgresql://user:password@db.example:5432/shop",
        )
    if engine == "sqlite":
        return _sqlite(text, what)
    return _server(text, engine, what)


def _sqlite(text: str, what: str) -> DatabaseUrl:
    parts = urlsplit(text)
    if parts.netloc or parts.query:
        raise InvalidInput(f"The {what} must be sqlite:///ABSOLUTE/PATH (three slashes).")
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        raise InvalidInput(f"The {what} must name an absolute file path: sqlite:///srv/site.db")
    return DatabaseUrl(engine="sqlite", database=path)


def _server(text: str, engine: str, what: str) -> DatabaseUrl:
    parts = urlsplit(text)
    try:
        port = parts.port or DEFAULT_PORTS[engine]
    except ValueError:
        raise InvalidInput(f"The {what} has an invalid port (1 to 65535).") from None
    if not parts.hostname:
        raise InvalidInput(f"The {what} names no host: {engine}://USER:PASSWORD@HOST/DATABASE")
    database = unquote(parts.path.lstrip("/"))
    if not DATABASE_NAME.match(database):
        raise InvalidInput(f"The {what} names no valid database after the host (/DATABASE).")
    if not parts.username:
        raise InvalidInput(f"The {what} names no user: {engine}://USER:PASSWORD@HOST/DATABASE")
    return DatabaseUrl(
        engine=engine,
        database=database,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        params=_params(parts.query, engine, what),
    )


def _params(query: str, engine: str, what: str) -> tuple[tuple[str, str], ...]:
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    for key, value in pairs:
        if key not in PARAMS[engine]:
            known = ", ".join(sorted(PARAMS[engine]))
            raise InvalidInput(f"Unknown option {key!r} in the {what} (known: {known}).")
        if key == "ssh" and not HOST_REF.match(value):
            raise InvalidInput(f"ssh={value!r} in the {what} must be a registered CUSTOMER/HOST.")
    return tuple(pairs)
