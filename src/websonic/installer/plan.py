"""The install plan: everything the installer needs to put one release of a site on a server.

A plan is made here (pure: site, release, options -> :class:`InstallPlan`), written as
``key=value`` lines (:func:`render`) and signed with the agency's Ed25519 release key; the
installer (``install.sh``) checks that signature before it reads a single value, then checks
the release signature the plan carries, which names the image digest. Values never hold a
newline, so the POSIX-sh reader needs no quoting rules. Secret values are never in a plan:
only their names (``secret=``); the values travel separately (``secrets.env``).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import combinations
from typing import Any
from urllib.parse import urlsplit

from websonic.builds.models import Release
from websonic.core.errors import InvalidInput
from websonic.hosting.requirements import Requirements
from websonic.sites import grammar
from websonic.sites.manifest import KINDS, Manifest, validate_manifest
from websonic.sites.models import Site

FORMAT = "websonic-plan/1"
DATA_DIR = "/var/lib/websonic"
DATABASE_PORTS = {"postgresql": 5432, "mariadb": 3306}
DATABASE_MODES = ("container", "external")
TLS_MODES = ("internal", "acme")
IDENTIFIER = re.compile(grammar.IDENTIFIER)  # fullmatch
EMAIL = re.compile(grammar.EMAIL)  # fullmatch
#: ``host[:port]`` of the public URL: a DNS name, an IPv4 address or a bracketed IPv6 one.
HOST_PORT = re.compile(grammar.HOST_PORT)
SITE_REF = re.compile(r"[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*")  # fullmatch
#: Plain env names that may name the database and its user (first found wins).
DATABASE_NAME_VARS = ("PGDATABASE", "DB_NAME", "MYSQL_DATABASE")
DATABASE_USER_VARS = ("PGUSER", "DB_USER", "MYSQL_USER")
#: Names each engine keeps for itself (the database image refuses them at its first start).
RESERVED_DATABASES = {
    "postgresql": frozenset({"postgres", "template0", "template1"}),
    "mariadb": frozenset({"mysql", "information_schema", "performance_schema", "sys"}),
}
RESERVED_USERS = {
    "postgresql": frozenset({"postgres", "public"}),
    "mariadb": frozenset({"root", "mysql", "public"}),
}
#: The env variables to set in websonic.toml to name the database and its user, by engine.
NAMING_VARS = {"postgresql": ("PGDATABASE", "PGUSER"), "mariadb": ("DB_NAME", "DB_USER")}


@dataclass(frozen=True)
class Registry:
    """Where customer servers pull images: ``host[:port]`` and whether it is plain HTTP."""

    address: str
    insecure: bool

    @classmethod
    def from_public_url(cls, url: str) -> Registry:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not _is_host_port(parts.netloc):
            raise InvalidInput(
                f"WEBSONIC_PUBLIC_URL {url!r} is not an http(s) URL like https://websonic.example"
            )
        return cls(parts.netloc, parts.scheme == "http")


def _is_host_port(netloc: str) -> bool:
    """``host[:port]`` and nothing else: no user, no empty host, a port number that exists."""
    match = HOST_PORT.fullmatch(netloc)
    return match is not None and int((match.group(3) or ":0")[1:]) <= 65535


@dataclass(frozen=True)
class Database:
    engine: str = "none"  # postgresql | mariadb | sqlite | none
    mode: str = "none"  # container | external | none
    image: str = ""
    digest: str = ""
    version: str = ""  # the engine's major version: "15" (PostgreSQL), "10.11" (MariaDB)
    name: str = ""
    user: str = ""
    port: int = 0


@dataclass(frozen=True)
class InstallPlan:
    site: str  # CUSTOMER/SITE
    release: int
    issued_at: int
    registry: Registry
    digest: str  # the release's manifest digest
    payload: bytes  # the signed release payload
    signature: str  # its base64 Ed25519 signature
    kind: str
    port: int
    health: str
    requirements: Requirements
    volumes: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    tls: str = "internal"
    acme_email: str = ""
    database: Database = field(default_factory=Database)
    data_dir: str = DATA_DIR

    @property
    def name(self) -> str:
        """``customer-site``: the name of the site's units, containers and folders."""
        return self.site.replace("/", "-")

    @property
    def image(self) -> str:
        return f"{self.registry.address}/{self.site}@{self.digest}"


def make_plan(
    site: Site,
    release: Release,
    requirements: Requirements,
    *,
    public_url: str,
    domains: Sequence[str] = (),
    tls: str = "internal",
    acme_email: str = "",
    database_mode: str = "container",
    now: float | None = None,
) -> InstallPlan:
    """The plan to install ``release`` of ``site`` (checked: refuses what the installer can't)."""
    origin = f"The manifest of release {release.number} of {site.ref_name}"
    manifest = validate_manifest(release.manifest or site.manifest, origin=origin)
    registry = Registry.from_public_url(public_url)
    check_options(tls, acme_email, database_mode)
    plan = InstallPlan(
        site=site.ref_name,
        release=release.number,
        issued_at=int(now if now is not None else time.time()),
        registry=registry,
        digest=release.digest,
        payload=release.signed_payload.encode("utf-8"),
        signature=release.signature,
        kind=manifest.kind,
        port=manifest.site.port,
        health=manifest.site.health,
        requirements=requirements,
        volumes=tuple((v.name, v.path) for v in manifest.volumes),
        env=tuple(sorted(manifest.plain_env.items())),
        secrets=tuple(manifest.secret_names),
        domains=tuple(domains),
        tls=tls,
        acme_email=acme_email,
        database=database_of(manifest, release, registry, site, database_mode),
        data_dir=requirements.data_path,
    )
    check_values(plan)
    return plan


def check_options(tls: str, acme_email: str, database_mode: str) -> None:
    if tls not in TLS_MODES:
        raise InvalidInput(f"--tls must be one of {', '.join(TLS_MODES)}, not {tls!r}.")
    if acme_email and not EMAIL.fullmatch(acme_email):
        raise InvalidInput(f"{acme_email!r} is not an e-mail address.")
    if database_mode not in DATABASE_MODES:
        raise InvalidInput(f"--database must be one of {', '.join(DATABASE_MODES)}.")


def database_of(
    manifest: Manifest, release: Release, registry: Registry, site: Site, mode: str
) -> Database:
    """The site's database on the server: a container of the release's database image, or
    an external server the site's secrets point at."""
    engine = manifest.services.database
    if engine not in DATABASE_PORTS:
        return Database(engine=engine)
    if mode == "external":
        return Database(engine=engine, mode="external")
    service = _service_image(release, engine)
    name, user = database_names(manifest, site)
    return Database(
        engine=engine,
        mode="container",
        image=f"{registry.address}/{site.ref_name}@{service['digest']}",
        digest=str(service["digest"]),
        version=str(service.get("version", "")),
        name=name,
        user=user,
        port=DATABASE_PORTS[engine],
    )


def database_names(manifest: Manifest, site: Site) -> tuple[str, str]:
    """(database, user) of the site's database container on its server."""
    engine = manifest.services.database
    default = site.slug.replace("-", "_")
    return (
        _database_name(manifest, engine, "database", default),
        _database_name(manifest, engine, "user", default),
    )


def _service_image(release: Release, engine: str) -> dict[str, object]:
    for service in release.services or []:
        if service.get("engine") == engine:
            return dict(service)
    raise InvalidInput(
        f"Release {release.number} of {release.site.ref_name} carries no {engine} image.",
        hint=f"Build the {engine} base (websonic base build {engine}), then build the site "
        "again; or deploy with --database external.",
    )


def _database_name(manifest: Manifest, engine: str, what: str, default: str) -> str:
    """The database's (or its user's) name: the first plain env variable naming it, else the
    site's slug; checked as the database image checks it at its first start."""
    variables = DATABASE_NAME_VARS if what == "database" else DATABASE_USER_VARS
    for variable in variables:
        value = manifest.plain_env.get(variable, "")
        if value:
            _check_name(engine, what, value, f"env {variable}={value!r}")
            return value
    _check_name(engine, what, default, f"The {what} name {default!r} made from the site's slug")
    return default


def _check_name(engine: str, what: str, value: str, origin: str) -> None:
    name_var, user_var = NAMING_VARS[engine]
    hint = f'Name them in websonic.toml: [env] {name_var} = "shop" and {user_var} = "shop".'
    if not IDENTIFIER.fullmatch(value):
        raise InvalidInput(
            f"{origin} is not a valid database identifier "
            "(1 to 63 letters, digits or _, not starting with a digit).",
            hint=hint,
        )
    reserved = (RESERVED_DATABASES if what == "database" else RESERVED_USERS)[engine]
    folded = value.lower()
    if folded in reserved or (
        engine == "postgresql" and what == "user" and folded.startswith("pg_")
    ):
        label = "PostgreSQL" if engine == "postgresql" else "MariaDB"
        raise InvalidInput(f"{origin} names a {what} that {label} keeps for itself.", hint=hint)


def check_values(plan: InstallPlan) -> None:
    """Refuse what the installer's line format cannot carry (line breaks, NUL), then any value
    outside the grammar of values that reach a server (``sites.grammar``): the manifest was
    held to it when read, ``install.sh`` holds the plan to it again (``check_plan_values``)."""
    _check_lines(plan)
    for key, value, check in _grammar_checks(plan):
        try:
            check(value)
        except grammar.GrammarError as exc:
            raise InvalidInput(f"The plan's {key} is refused: {exc}.") from exc
    for (first, one), (second, other) in combinations(plan.volumes, 2):
        if grammar.nested(one, other):
            raise InvalidInput(
                f"The plan's volumes {first} ({one}) and {second} ({other}) overlap."
            )
    _check_limits(plan)


def _grammar_checks(plan: InstallPlan) -> Iterator[tuple[str, Any, Callable[[Any], object]]]:
    """(key, value, check) of every value of the plan that the grammar covers."""
    yield "site", plan.site, _site_ref
    yield "kind", plan.kind, _kind
    yield "port", plan.port, grammar.port
    yield "health", plan.health, grammar.health_path
    yield "data_dir", plan.data_dir, grammar.absolute_path
    yield "registry", plan.registry.address, grammar.host_port
    yield "digest", plan.digest, grammar.digest
    if plan.acme_email:
        yield "acme_email", plan.acme_email, grammar.email
    for name, path in plan.volumes:
        yield "volume name", name, grammar.volume_name
        yield f"volume {name}", path, grammar.volume_path
    for name, value in plan.env:
        yield "env name", name, grammar.env_name
        yield f"env {name}", value, partial(grammar.env_value, name)
    for name in plan.secrets:
        yield "secret", name, grammar.env_name
    for domain in plan.domains:
        yield "domain", domain, grammar.domain
    db = plan.database
    if db.mode == "container":
        yield "database_digest", db.digest, grammar.digest
        yield (
            "database_image",
            db.image,
            lambda v: _same(v, f"{plan.registry.address}/{plan.site}@{db.digest}"),
        )
        yield "database_name", db.name, grammar.identifier
        yield "database_user", db.user, grammar.identifier


def _site_ref(value: str) -> str:
    if not SITE_REF.fullmatch(value):
        raise grammar.GrammarError(f"{value!r} is not CUSTOMER/SITE")
    return value


def _kind(value: str) -> str:
    if value not in KINDS:
        raise grammar.GrammarError(f"{value!r} is not one of {', '.join(KINDS)}")
    return value


def _same(value: str, expected: str) -> str:
    if value != expected:
        raise grammar.GrammarError(f"{value!r} is not the site's own image {expected!r}")
    return value


def _check_limits(plan: InstallPlan) -> None:
    r = plan.requirements
    limits = [("site_memory_mib", r.site_memory_mib), ("site_pids", r.site_pids)]
    if plan.database.mode == "container":
        limits += [
            ("database_memory_mib", r.database_memory_mib),
            ("database_pids", r.database_pids),
        ]
    for key, value in limits:
        if value < 1:
            raise InvalidInput(f"The plan's {key} is {value}: containers need a positive limit.")


def _check_lines(plan: InstallPlan) -> None:
    for name, value in plan.env:
        if _breaks_line(value):
            raise InvalidInput(
                f"env {name} holds a line break: environment files on the server cannot carry it."
            )
    for key, line_value in _lines(plan):
        if _breaks_line(str(line_value)):
            raise InvalidInput(
                f"The plan's {key} {str(line_value)!r} holds a line break: the installer reads "
                "one value a line."
            )


def _breaks_line(value: str) -> bool:
    return any(c in value for c in "\r\n\0")


def render(plan: InstallPlan) -> bytes:
    """The plan as the installer reads it: ``key=value`` lines, UTF-8. This is what is signed."""
    return "".join(f"{key}={value}\n" for key, value in _lines(plan)).encode("utf-8")


def _lines(plan: InstallPlan) -> list[tuple[str, object]]:
    r = plan.requirements
    lines: list[tuple[str, object]] = [
        ("format", FORMAT),
        ("site", plan.site),
        ("name", plan.name),
        ("release", plan.release),
        ("issued_at", plan.issued_at),
        ("registry", plan.registry.address),
        ("registry_insecure", int(plan.registry.insecure)),
        ("image", plan.image),
        ("digest", plan.digest),
        ("payload", base64.b64encode(plan.payload).decode("ascii")),
        ("signature", plan.signature),
        ("kind", plan.kind),
        ("port", plan.port),
        ("health", plan.health),
        ("data_dir", plan.data_dir),
        ("tls", plan.tls),
        ("acme_email", plan.acme_email),
        ("require_os", " ".join(f"{i}:{r.os_min_versions.get(i, '0')}" for i in r.os_ids)),
        ("require_arch", " ".join(r.architectures)),
        ("require_cpus", r.cpus),
        ("require_memory_mib", r.memory_mib),
        ("require_disk_mib", r.disk_mib),
        ("require_inodes", r.inodes),
        ("limit_memory_mib", r.site_memory_mib),
        ("limit_pids", r.site_pids),
    ]
    lines += [("volume", f"{name}:{path}") for name, path in plan.volumes]
    lines += [("env", f"{name}={value}") for name, value in plan.env]
    lines += [("secret", name) for name in plan.secrets]
    lines += [("domain", domain) for domain in plan.domains]
    return lines + _database_lines(plan.database, r)


def _database_lines(db: Database, r: Requirements) -> list[tuple[str, object]]:
    lines: list[tuple[str, object]] = [("database", db.engine), ("database_mode", db.mode)]
    if db.mode == "container":
        lines += [
            ("database_image", db.image),
            ("database_digest", db.digest),
            ("database_version", db.version),
            ("database_name", db.name),
            ("database_user", db.user),
            ("database_port", db.port),
            ("database_limit_memory_mib", r.database_memory_mib),
            ("database_limit_pids", r.database_pids),
        ]
    return lines


def parse(text: bytes) -> dict[str, list[str]]:
    """A rendered plan's values by key (each key may repeat), for checks and tests; lines end
    at "\n" only, as the installer reads them."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"The plan is not UTF-8 text: {exc}.") from exc
    values: dict[str, list[str]] = {}
    for line in decoded.split("\n"):
        key, eq, value = line.partition("=")
        if eq:
            values.setdefault(key, []).append(value)
    return values
