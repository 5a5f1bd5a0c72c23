"""Database service images: PostgreSQL and MariaDB bases that travel with a site's releases.

They are made exactly like the kind bases (``base.py``: a cached mmdebstrap rootfs, ``FROM
scratch``, reproducible), plus what a database server needs: the engine's user with a fixed id
(made before the packages, whose maintainer scripts then keep it), the engine's configuration,
the entrypoint ``websonic-db`` (``websonic/data/websonic-db-*.sh``) and an image config with
its port, volume and stop signal. What the packages' scripts leave behind (a default cluster, a
snake-oil TLS key) is removed. The contract is documented in docs/service-images.md.

A release of a site whose manifest names ``services.database = "postgresql"`` or
``"mariadb"`` carries the newest service image of that engine: :func:`store_service_image`
copies it into the release store (content-addressed, once per image) and describes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from websonic.builds.oci import OciLayout
from websonic.core.errors import BuildFailed, InvalidInput, NotFound
from websonic.core.runner import Runner
from websonic.tools import buildah, mmdebstrap, skopeo

SERVICE_KINDS = ("postgresql", "mariadb")
DATA_ROOT = "/var/lib/websonic-db"
ENTRYPOINT = "/usr/local/bin/websonic-db"
#: The engine's user and group id in its image (the Debian system range, as in the images of
#: Docker's library, so a data directory moved from one of those keeps its owner).
ENGINE_UID = 999

POSTGRESQL_CONF = f"""\
# WebSonic's PostgreSQL service image (docs/service-images.md). ALTER SYSTEM settings, kept in
# the data directory's postgresql.auto.conf, override these.
listen_addresses = '*'
port = 5432
max_connections = 100
unix_socket_directories = '/run/postgresql'
hba_file = '/etc/websonic-db/pg_hba.conf'
ident_file = '/etc/websonic-db/pg_ident.conf'
password_encryption = scram-sha-256
shared_buffers = 128MB
dynamic_shared_memory_type = posix
# Logical replication (online migrations into and out of this server).
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_wal_size = 1GB
min_wal_size = 80MB
# Logs go to the container's stderr.
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
datestyle = 'iso, mdy'
lc_messages = 'C.UTF-8'
lc_monetary = 'C.UTF-8'
lc_numeric = 'C.UTF-8'
lc_time = 'C.UTF-8'
default_text_search_config = 'pg_catalog.english'
# The data directory ({DATA_ROOT}/data) is given by websonic-db.
"""

PG_HBA = """\
# WebSonic: the postgres user over the local socket (podman exec -u postgres), passwords
# (SCRAM) from anywhere else.
# TYPE  DATABASE  USER  ADDRESS      METHOD
local   all       all                peer
host    all       all   0.0.0.0/0    scram-sha-256
host    all       all   ::/0         scram-sha-256
"""

PG_IDENT = "# WebSonic: no user name maps.\n"

MARIADB_CNF = f"""\
# WebSonic's MariaDB service image (docs/service-images.md); read after Debian's 50-server.cnf.
[mysqld]
datadir = {DATA_ROOT}/data
socket = /run/mysqld/mysqld.sock
pid-file = /run/mysqld/mysqld.pid
bind-address = *
port = 3306
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
# Binary log (online migrations into and out of this server); server_id comes from
# DB_SERVER_ID, given by websonic-db.
log_bin = mariadb-bin
binlog_format = ROW
innodb_buffer_pool_size = 128M

[client]
default-character-set = utf8mb4
socket = /run/mysqld/mysqld.sock
"""


@dataclass(frozen=True)
class Engine:
    """What a database engine's service image is made of."""

    name: str  # "postgresql", also the base kind
    label: str  # "PostgreSQL"
    packages: tuple[str, ...]
    user: str  # the engine's own (unprivileged) user
    home: str
    login_shell: str
    port: int
    stop_signal: str
    version_package: str  # whose Debian version is the engine's
    version_parts: int  # 1: "15", 2: "10.11"
    config_files: tuple[tuple[str, str], ...]  # (path, content)
    leftovers: tuple[str, ...]  # shell words ("$1" is the root) removed after installation


ENGINES: dict[str, Engine] = {
    "postgresql": Engine(
        name="postgresql",
        label="PostgreSQL",
        packages=("postgresql-15", "postgresql-client-15"),
        user="postgres",
        home="/var/lib/postgresql",
        login_shell="/bin/bash",
        port=5432,
        stop_signal="SIGINT",  # fast shutdown: roll back open transactions, checkpoint, exit
        version_package="postgresql-15",
        version_parts=1,
        config_files=(
            ("/etc/websonic-db/postgresql.conf", POSTGRESQL_CONF),
            ("/etc/websonic-db/pg_hba.conf", PG_HBA),
            ("/etc/websonic-db/pg_ident.conf", PG_IDENT),
        ),
        leftovers=(
            '"$1"/var/lib/postgresql/*/main',  # the cluster postgresql-common makes
            '"$1"/etc/postgresql/*/main',
            '"$1"/var/log/postgresql/*',
            '"$1"/etc/ssl/private/ssl-cert-snakeoil.key',  # one key for every image: never
            '"$1"/etc/ssl/certs/ssl-cert-snakeoil.pem',
        ),
    ),
    "mariadb": Engine(
        name="mariadb",
        label="MariaDB",
        packages=("mariadb-server", "mariadb-client"),
        user="mysql",
        home="/nonexistent",
        login_shell="/bin/false",
        port=3306,
        stop_signal="SIGTERM",
        version_package="mariadb-server",
        version_parts=2,
        config_files=(("/etc/mysql/mariadb.conf.d/99-websonic.cnf", MARIADB_CNF),),
        leftovers=('"$1"/var/lib/mysql/*',),  # the system tables the package made
    ),
}


def engine_of(kind: str) -> Engine:
    try:
        return ENGINES[kind]
    except KeyError:
        raise InvalidInput(
            f"There is no service image for {kind!r}.",
            hint=f"Service images exist for: {', '.join(SERVICE_KINDS)}.",
        ) from None


def entrypoint_script(engine: Engine) -> str:
    """``websonic-db`` for ``engine``: the common part, then the engine's."""
    data = files("websonic") / "data"
    common = (data / "websonic-db-common.sh").read_text(encoding="utf-8")
    own = (data / f"websonic-db-{engine.name}.sh").read_text(encoding="utf-8")
    return common + "\n" + own


def essential_hooks(engine: Engine) -> tuple[str, ...]:
    """Before the packages: the engine's user and group with :data:`ENGINE_UID`."""
    hook = mmdebstrap.account_hook(
        engine.user,
        ENGINE_UID,
        home=engine.home,
        login_shell=engine.login_shell,
        gecos=engine.label,
    )
    return (hook,)


def customize_hooks(engine: Engine) -> tuple[str, ...]:
    """After the packages: leftovers out, configuration, entrypoint and data folder in."""
    write = mmdebstrap.write_file_hook
    hooks = [
        f"rm -rf {' '.join(engine.leftovers)}",
        'find "$1"/etc/ssl/certs -lname ssl-cert-snakeoil.pem -delete',
        *(write(path, content) for path, content in engine.config_files),
        write(ENTRYPOINT, entrypoint_script(engine), 0o755),
        f'mkdir -p "$1"{DATA_ROOT} && chown {ENGINE_UID}:{ENGINE_UID} "$1"{DATA_ROOT} '
        f'&& chmod 0700 "$1"{DATA_ROOT}',
    ]
    return tuple(hooks)


def runtime(engine: Engine) -> buildah.ImageRuntime:
    """Entrypoint, command, port, volume and stop signal of the engine's image."""
    return buildah.ImageRuntime(
        entrypoint=(ENTRYPOINT,),
        cmd=("serve",),
        expose=(f"{engine.port}/tcp",),
        volumes=(DATA_ROOT,),
        stop_signal=engine.stop_signal,
    )


def engine_version(kind: str, packages: Sequence[Sequence[str]]) -> str:
    """The engine's version ("15", "10.11") from an image's Debian packages."""
    engine = engine_of(kind)
    versions = dict((str(p[0]), str(p[1])) for p in packages)
    debian = versions.get(engine.version_package)
    if debian is None:
        raise BuildFailed(f"The {engine.label} image has no package {engine.version_package}.")
    upstream = debian.split(":", 1)[-1]  # no epoch
    match = re.match(r"^(\d+(?:\.\d+)*)", upstream)
    if match is None:
        raise BuildFailed(f"Cannot read a version in {engine.version_package} {debian}.")
    return ".".join(match.group(1).split(".")[: engine.version_parts])


# In the release store ------------------------------------------------------------------------


def service_ref(kind: str, config_digest: str) -> str:
    """The index.json ref name of a service image: engine and its config digest.

    ("postgresql", "sha256:0123456789abcdef…" -> "websonic_service_postgresql_0123456789ab";
    release refs end in ``_r<number>``, so they never collide.)
    """
    return f"websonic_service_{engine_of(kind).name}_{config_digest.removeprefix('sha256:')[:12]}"


def stored_manifest(layout: OciLayout, kind: str, config_digest: str) -> str | None:
    """The manifest digest of this service image if the release store has it already."""
    try:
        return layout.manifest_for_ref(service_ref(kind, config_digest))
    except NotFound:
        return None


def store_service_image(
    runner: Runner, layout: OciLayout, kind: str, image_id: str, packages: Sequence[Any]
) -> dict[str, Any]:
    """Copy service image ``image_id`` (local storage) into the release store unless it is
    there, and describe it for ``Release.services``. Call it holding ``layout.locked()``."""
    manifest = stored_manifest(layout, kind, image_id)
    if manifest is None:
        ref = service_ref(kind, image_id)
        runner.run(
            skopeo.copy_to_layout(image_id.removeprefix("sha256:"), layout.root, ref),
            error=f"skopeo could not store the {engine_of(kind).label} image",
        )
        manifest = layout.manifest_for_ref(ref)
    info = layout.image_info(manifest)
    if info.config_digest != image_id:
        raise BuildFailed(
            f"The stored {kind} image has config {info.config_digest}, not {image_id}."
        )
    return {
        "engine": kind,
        "version": engine_version(kind, packages),
        "digest": info.manifest_digest,
        "config_digest": info.config_digest,
        "size": info.total_size,
        "layers": [{"digest": x.digest, "size": x.size, "diff_id": x.diff_id} for x in info.layers],
    }


def service_digests(services: Sequence[dict[str, Any]]) -> dict[str, str]:
    """engine -> manifest digest, as the signed payload names them."""
    return {str(s["engine"]): str(s["digest"]) for s in services}


def service_blobs(services: Sequence[dict[str, Any]]) -> set[str]:
    """Every blob of these service images: manifests, configs, layers."""
    blobs: set[str] = set()
    for service in services:
        blobs.update((str(service["digest"]), str(service["config_digest"])))
        blobs.update(str(layer["digest"]) for layer in service["layers"])
    return blobs
