"""Database URLs: parsed, checked, and shown with their password masked.

    postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE[?sslmode=require&sslrootcert=/ca.pem]
    mariadb://USER:PASSWORD@HOST[:PORT]/DATABASE[?ssl=1&ssl_ca=/ca.pem]    (or mysql://)
    sqlite:///absolute/path/site.db
    …?ssh=CUSTOMER/HOST   reach HOST:PORT through an SSH tunnel to a registered host

A password is never printed: ``masked()`` is what logs, reports and the state database keep.

TLS is used when the URL asks for it (PostgreSQL ``sslmode=require|verify-ca|verify-full``;
MariaDB ``ssl=1`` or a certificate option), and then the server's certificate and host name are
always verified (``connection_params``: libpq ``verify-full``; MariaDB ``ssl_verify=1``). Only
``tls_insecure=1`` (what ``--tls-insecure`` adds) connects without checking. A URL that does not
ask for TLS connects without it (no silent, unverified "opportunistic" TLS).
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
    "postgresql": {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "connect_timeout",
        "ssh",
        "tls_insecure",
    },
    "mariadb": {
        "ssl",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_verify",
        "connect_timeout",
        "ssh",
        "tls_insecure",
    },
    "sqlite": set(),
}
TRUE = ("1", "true", "on", "yes")
FALSE = ("0", "false", "off", "no")
TLS_INSECURE = "tls_insecure"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MARIADB_TLS_FILES = ("ssl_ca", "ssl_cert", "ssl_key")
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
    tls_insecure: bool = False  # TLS without checking the certificate (--tls-insecure)

    @property
    def options(self) -> dict[str, str]:
        """The connection options: the URL's, with TLS made verifying (``connection_params``)."""
        return dict(self.connection_params())

    @property
    def uses_tls(self) -> bool:
        options = dict(self.params)
        if self.engine == "postgresql":
            return options.get("sslmode", "disable") != "disable"
        return self.engine == "mariadb" and _mariadb_asks_tls(options)

    def connection_params(self) -> tuple[tuple[str, str], ...]:
        """The options to connect with: whenever TLS is used, the certificate and the host name
        are verified, unless ``tls_insecure``; no TLS unless the URL asks for it."""
        if self.engine == "postgresql":
            return _postgres_tls(self.params, self.tls_insecure)
        if self.engine == "mariadb":
            return _mariadb_tls(self.params, self.tls_insecure)
        return self.params

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
        params = self.params + (((TLS_INSECURE, "1"),) if self.tls_insecure else ())
        query = f"?{urlencode(params)}" if params else ""
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
    params = _params(parts.query, engine, what)
    insecure = dict(params).get(TLS_INSECURE, "0").lower() in TRUE
    params = tuple((k, v) for k, v in params if k != TLS_INSECURE)
    _check_tls(dict(params), engine, insecure, what)
    return DatabaseUrl(
        engine=engine,
        database=database,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        params=params,
        tls_insecure=insecure,
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


def with_tls_insecure(text: str) -> str:
    """The URL text with ``tls_insecure=1`` added (what ``--tls-insecure`` does)."""
    if not text or text.startswith("sqlite:") or "tls_insecure=" in text:
        return text
    return text + ("&" if "?" in text else "?") + f"{TLS_INSECURE}=1"


def _check_tls(options: dict[str, str], engine: str, insecure: bool, what: str) -> None:
    """Refuse TLS options that would connect without checking the server, unless insecure."""
    mode = options.get("sslmode")
    if engine == "postgresql" and mode is not None and mode not in SSLMODES:
        raise InvalidInput(f"sslmode={mode!r} in the {what}: use one of {', '.join(SSLMODES)}.")
    unchecked = (engine == "postgresql" and mode in ("allow", "prefer")) or (
        engine == "mariadb" and options.get("ssl_verify", "").lower() in FALSE
    )
    if unchecked and not insecure:
        given = f"sslmode={mode}" if engine == "postgresql" else "ssl_verify=0"
        raise InvalidInput(
            f"{given} in the {what} would use TLS without checking the server's certificate.",
            hint="Leave it out (TLS is verified whenever it is used: sslmode=verify-full, "
            "ssl=1), or give --tls-insecure to connect without checking (not recommended).",
        )


def _postgres_tls(
    params: tuple[tuple[str, str], ...], insecure: bool
) -> tuple[tuple[str, str], ...]:
    options = dict(params)
    mode = options.get("sslmode", "disable")
    if mode == "disable":
        options["sslmode"] = "disable"
    elif insecure:
        options["sslmode"] = mode if mode in ("allow", "prefer") else "require"
        options.pop("sslrootcert", None)  # with a root certificate, libpq would check it
    else:
        options["sslmode"] = "verify-full"
    return tuple(options.items())


def _mariadb_asks_tls(options: dict[str, str]) -> bool:
    return options.get("ssl", "").lower() in TRUE or any(k in options for k in MARIADB_TLS_FILES)


def _mariadb_tls(
    params: tuple[tuple[str, str], ...], insecure: bool
) -> tuple[tuple[str, str], ...]:
    options = dict(params)
    options.pop("ssl_verify", None)
    if not _mariadb_asks_tls(options):
        options["ssl"] = "0"
        return tuple(options.items())
    options["ssl"] = "1"
    options["ssl_verify"] = "0" if insecure else "1"
    return tuple(options.items())
