"""Base images per site kind, made from Debian packages, reproducibly.

For each kind a minimal Debian root filesystem is made with ``mmdebstrap`` (cached as a tarball,
keyed by suite + mirror + packages + recipe) and turned into an image with
``FROM scratch`` + ``ADD rootfs.tar /``, built by ``buildah build --layers --timestamp EPOCH
--identity-label=false``. The same cached tarball always gives the same image digest.

Database service images (PostgreSQL, MariaDB) are made the same way; what is particular to
them is in ``services.py``.

The tarball's epoch (``SOURCE_DATE_EPOCH`` and the image timestamp) is the UTC day the tarball was
made, kept next to it in a JSON file, so rebuilding from the cache is reproducible and a fresh
rebuild (for security updates) gets a newer date.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websonic.builds import services
from websonic.core.errors import BuildFailed, InvalidInput
from websonic.core.runner import LineSink, Runner
from websonic.tools import buildah, mmdebstrap

#: Bump when the recipe (hooks, options) changes in a way that must invalidate cached tarballs.
RECIPE_VERSION = 1

BASE_KINDS = ("static", "php", "python", "node")
#: Every base `websonic base build` makes: the site kinds', then the database services'.
ALL_KINDS = (*BASE_KINDS, *services.SERVICE_KINDS)
IMAGE_PREFIX = "localhost/websonic/base-"
ROOTFS_NAME = "rootfs.tar"

#: Packages in every base, before the kind's own.
COMMON_PACKAGES = ("ca-certificates",)

#: The kind's own packages (mmdebstrap resolves their dependencies; no Recommends).
KIND_PACKAGES: dict[str, tuple[str, ...]] = {
    # passwd: caddy's maintainer script runs groupadd/useradd for its own (unused) user.
    "static": ("caddy", "passwd"),
    "php": (
        "apache2",
        "libapache2-mod-php",
        "php-mysql",
        "php-pgsql",
        "php-sqlite3",
        "php-mbstring",
        "composer",
    ),
    "python": ("python3", "python3-venv"),
    "node": ("nodejs", "npm"),
}

#: Apache for PHP sites: runs as whatever user starts it (the site user, uid 10001), listens on
#: ${WEBSONIC_PORT}, serves ${WEBSONIC_DOCROOT}, logs to stdout/stderr, keeps its PID and lock
#: files in /tmp/apache2. Both variables are set by the site's Containerfile.
APACHE_SITE_CONF = """\
ServerName localhost
<VirtualHost *:${WEBSONIC_PORT}>
    DocumentRoot ${WEBSONIC_DOCROOT}
    <Directory ${WEBSONIC_DOCROOT}>
        Options -Indexes +FollowSymLinks
        AllowOverride All
        Require all granted
    </Directory>
    DirectoryIndex index.php index.html
    ErrorLog /dev/stderr
    CustomLog /dev/stdout combined
</VirtualHost>
"""

APACHE_CONF = """\
# WebSonic: logs go to the container's stdout/stderr; no server details in errors.
ErrorLog /dev/stderr
TransferLog /dev/stdout
ServerTokens Prod
ServerSignature Off
"""

APACHE_PORTS = "Listen ${WEBSONIC_PORT}\n"

APACHE_START = """\
#!/bin/sh
# Start Apache in the foreground as the current (non-root) user. Used as the CMD of PHP sites.
set -e
APACHE_RUN_USER="$(id -un)"
APACHE_RUN_GROUP="$(id -gn)"
APACHE_RUN_DIR=/tmp/apache2
APACHE_PID_FILE=/tmp/apache2/apache2.pid
APACHE_LOCK_DIR=/tmp/apache2
APACHE_LOG_DIR=/tmp/apache2
WEBSONIC_PORT="${WEBSONIC_PORT:-8080}"
WEBSONIC_DOCROOT="${WEBSONIC_DOCROOT:-/srv/site}"
export APACHE_RUN_USER APACHE_RUN_GROUP APACHE_RUN_DIR APACHE_PID_FILE APACHE_LOCK_DIR
export APACHE_LOG_DIR WEBSONIC_PORT WEBSONIC_DOCROOT
mkdir -p /tmp/apache2
rm -f /tmp/apache2/apache2.pid
exec /usr/sbin/apache2 -DFOREGROUND "$@"
"""

PHP_INI = """\
; WebSonic defaults for sites
expose_php = Off
display_errors = Off
log_errors = On
error_log = /dev/stderr
upload_max_filesize = 8M
post_max_size = 10M
"""


def _kind_hooks(kind: str) -> tuple[str, ...]:
    hooks: list[str] = [mmdebstrap.site_user_hook()]
    if kind == "php":
        w = mmdebstrap.write_file_hook
        hooks += [
            w("/etc/apache2/ports.conf", APACHE_PORTS),
            w("/etc/apache2/sites-available/websonic.conf", APACHE_SITE_CONF),
            w("/etc/apache2/conf-available/websonic.conf", APACHE_CONF),
            w("/usr/local/bin/websonic-apache", APACHE_START, 0o755),
            w("/etc/php/websonic.ini", PHP_INI),
            'for d in "$1"/etc/php/*/apache2/conf.d; do '
            'ln -sf /etc/php/websonic.ini "$d"/90-websonic.ini; done',
            mmdebstrap.chroot_hook("a2dissite", "-q", "000-default"),
            mmdebstrap.chroot_hook("a2ensite", "-q", "websonic"),
            mmdebstrap.chroot_hook("a2enconf", "-q", "websonic"),
            mmdebstrap.chroot_hook("a2disconf", "-q", "other-vhosts-access-log"),
            mmdebstrap.chroot_hook("a2enmod", "-q", "rewrite", "headers"),
        ]
    hooks.append(mmdebstrap.cleanup_hook())
    return tuple(hooks)


@dataclass(frozen=True)
class BaseImageSpec:
    """What a base image is made of."""

    kind: str
    packages: tuple[str, ...]
    suite: str
    mirror: str
    variant: str = "essential"
    hooks: tuple[str, ...] = ()
    essential_hooks: tuple[str, ...] = ()  # before the packages beyond the essential ones
    runtime: buildah.ImageRuntime = field(default_factory=buildah.ImageRuntime)

    @property
    def image(self) -> str:
        return f"{IMAGE_PREFIX}{self.kind}:{self.suite}"

    @property
    def cache_key(self) -> str:
        """Stable key of the rootfs: suite, mirror, sorted packages, variant and recipe."""
        recipe: dict[str, Any] = {
            "recipe": RECIPE_VERSION,
            "suite": self.suite,
            "mirror": self.mirror.rstrip("/"),
            "packages": sorted(set(self.packages)),
            "variant": self.variant,
            "hooks": list(self.hooks),
        }
        if self.essential_hooks:  # only then: the kind bases keep their cached tarballs
            recipe["essential_hooks"] = list(self.essential_hooks)
        material = json.dumps(recipe, sort_keys=True)
        digest = hashlib.sha256(material.encode()).hexdigest()[:20]
        return f"{self.kind}-{self.suite}-{digest}"


def spec_for(kind: str, settings: Any) -> BaseImageSpec:
    """The base image spec of ``kind`` (a site kind or a database service) for these settings."""
    if kind in services.SERVICE_KINDS:
        return _service_spec(services.engine_of(kind), settings)
    if kind not in KIND_PACKAGES:
        raise InvalidInput(
            f"There is no base image for kind {kind!r}.",
            hint=f"Base images exist for: {', '.join(ALL_KINDS)} "
            "(containerfile sites bring their own FROM).",
        )
    return BaseImageSpec(
        kind=kind,
        packages=(*COMMON_PACKAGES, *KIND_PACKAGES[kind]),
        suite=settings.debian_suite,
        mirror=settings.debian_mirror,
        hooks=_kind_hooks(kind),
    )


def _service_spec(engine: services.Engine, settings: Any) -> BaseImageSpec:
    return BaseImageSpec(
        kind=engine.name,
        packages=(*COMMON_PACKAGES, *engine.packages),
        suite=settings.debian_suite,
        mirror=settings.debian_mirror,
        hooks=(*services.customize_hooks(engine), mmdebstrap.cleanup_hook()),
        essential_hooks=services.essential_hooks(engine),
        runtime=services.runtime(engine),
    )


@dataclass(frozen=True)
class BuiltBase:
    kind: str
    image: str  # localhost/websonic/base-<kind>:<suite>
    digest: str  # image ID = config digest, sha256:…
    size: int  # bytes (uncompressed, as podman reports)
    packages: list[tuple[str, str]]  # installed Debian packages (name, version)
    seconds: float  # wall time of this call
    rootfs_sha256: str = ""  # sha256:… of the cached rootfs tarball
    epoch: int = 0  # SOURCE_DATE_EPOCH of the tarball = the image's created time
    rootfs_cached: bool = False  # the tarball came from the cache


@dataclass(frozen=True)
class _Rootfs:
    path: Path
    sha256: str
    epoch: int
    created: float
    packages: list[tuple[str, str]]
    cached: bool


def build_base(
    spec: BaseImageSpec,
    *,
    runner: Runner,
    cache_dir: Path,
    max_age_seconds: float,
    on_line: LineSink | None = None,
    no_cache: bool = False,
    now: Callable[[], float] = time.time,
) -> BuiltBase:
    """Make (or reuse) the rootfs tarball of ``spec`` and build its image; return what was built.

    A cached tarball younger than ``max_age_seconds`` is reused. A file lock keeps two processes
    from building the same base at once; the tarball is written under a temporary name and
    renamed, so an interrupted build never leaves a truncated one behind. ``no_cache`` rebuilds
    the image without buildah's layer cache (the rootfs cache still applies); the digest is the
    same.
    """
    started = time.monotonic()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f"{spec.cache_key}.lock"):
        rootfs = _ensure_rootfs(spec, runner, cache_dir, max_age_seconds, on_line, now)
        image_id = _build_image(spec, rootfs, runner, cache_dir, on_line, no_cache=no_cache)
        info = buildah.parse_image_inspect(runner.run(buildah.image_inspect(spec.image)).stdout)
    if info.id != image_id:
        raise BuildFailed(f"{spec.image} is {info.id}, but the build made {image_id}")
    return BuiltBase(
        kind=spec.kind,
        image=spec.image,
        digest=info.id,
        size=info.size,
        packages=rootfs.packages,
        seconds=round(time.monotonic() - started, 1),
        rootfs_sha256=rootfs.sha256,
        epoch=rootfs.epoch,
        rootfs_cached=rootfs.cached,
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_rootfs(
    spec: BaseImageSpec,
    runner: Runner,
    cache_dir: Path,
    max_age_seconds: float,
    on_line: LineSink | None,
    now: Callable[[], float],
) -> _Rootfs:
    tar_path = cache_dir / f"{spec.cache_key}.tar"
    meta_path = cache_dir / f"{spec.cache_key}.json"
    # Leftovers of a killed build (we hold the lock, so nobody else is writing them).
    for stale in cache_dir.glob(f"{spec.cache_key}.tmp-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    meta = _read_meta(meta_path)
    if meta and tar_path.is_file() and now() - float(meta["created"]) < max_age_seconds:
        return _Rootfs(
            path=tar_path,
            sha256=meta["sha256"],
            epoch=int(meta["epoch"]),
            created=float(meta["created"]),
            packages=[(p[0], p[1]) for p in meta["packages"]],
            cached=True,
        )

    created = now()
    epoch = int(created // 86400 * 86400)  # the UTC day: same-day rebuilds can match bit for bit
    tmp_tar = cache_dir / f"{spec.cache_key}.tmp-{os.getpid()}.tar"
    tmp_meta = cache_dir / f"{spec.cache_key}.tmp-{os.getpid()}.json"
    try:
        runner.run(
            mmdebstrap.mmdebstrap(
                suite=spec.suite,
                mirror=spec.mirror,
                packages=spec.packages,
                output=tmp_tar,
                epoch=epoch,
                variant=spec.variant,
                customize_hooks=spec.hooks,
                essential_hooks=spec.essential_hooks,
            ),
            on_line=on_line,
            error=f"mmdebstrap could not make the {spec.kind} base",
        )
        packages = read_packages(tmp_tar)
        sha = "sha256:" + _sha256(tmp_tar)
        meta = {
            "kind": spec.kind,
            "suite": spec.suite,
            "mirror": spec.mirror,
            "include": list(spec.packages),
            "epoch": epoch,
            "created": created,
            "sha256": sha,
            "packages": packages,
        }
        with open(tmp_tar, "rb") as fh:
            os.fsync(fh.fileno())
        tmp_meta.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        # The tarball first, then the metadata that makes it count as cached.
        os.replace(tmp_tar, tar_path)
        os.replace(tmp_meta, meta_path)
    finally:
        tmp_tar.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
    return _Rootfs(tar_path, sha, epoch, created, packages, cached=False)


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not all(k in meta for k in ("created", "sha256", "epoch", "packages")):
        return None
    return meta


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_packages(rootfs_tar: Path) -> list[tuple[str, str]]:
    """Installed packages (name, version) read from dpkg's status file inside a rootfs tarball."""
    with tarfile.open(rootfs_tar, "r:") as tar:
        for member in tar:
            if member.name.lstrip("./") == "var/lib/dpkg/status" and member.isfile():
                handle = tar.extractfile(member)
                if handle is None:
                    break
                return mmdebstrap.parse_dpkg_status(handle.read().decode("utf-8", "replace"))
    raise BuildFailed(f"{rootfs_tar} has no var/lib/dpkg/status")


def image_labels(spec: BaseImageSpec, rootfs: _Rootfs) -> dict[str, str]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rootfs.epoch))
    labels = {
        "org.opencontainers.image.title": f"websonic-base-{spec.kind}",
        "org.opencontainers.image.description": f"WebSonic {spec.kind} base image "
        f"(Debian {spec.suite})",
        "org.opencontainers.image.version": spec.suite,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.vendor": "WebSonic",
        "io.websonic.base.kind": spec.kind,
        "io.websonic.base.rootfs": rootfs.sha256,
        "io.websonic.base.include": ",".join(spec.packages),
        "io.websonic.base.mirror": spec.mirror,
    }
    if spec.kind in services.SERVICE_KINDS:
        labels["io.websonic.service.engine"] = spec.kind
        labels["io.websonic.service.version"] = services.engine_version(spec.kind, rootfs.packages)
    return labels


def _build_image(
    spec: BaseImageSpec,
    rootfs: _Rootfs,
    runner: Runner,
    cache_dir: Path,
    on_line: LineSink | None,
    *,
    no_cache: bool = False,
) -> str:
    context = cache_dir / f"{spec.cache_key}.tmp-ctx-{os.getpid()}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    try:
        try:
            os.link(rootfs.path, context / ROOTFS_NAME)  # no copy: same folder, same filesystem
        except OSError:
            shutil.copyfile(rootfs.path, context / ROOTFS_NAME)
        (context / "Containerfile").write_text(
            buildah.base_containerfile(
                rootfs=ROOTFS_NAME,
                labels=image_labels(spec, rootfs),
                env={"LANG": "C.UTF-8"},
                runtime=spec.runtime,
            ),
            encoding="utf-8",
        )
        iid = context / "iid"
        runner.run(
            buildah.build(
                context,
                tag=spec.image,
                timestamp=rootfs.epoch,
                containerfile=context / "Containerfile",
                iidfile=iid,
                no_cache=no_cache,
            ),
            on_line=on_line,
            error=f"buildah could not build {spec.image}",
        )
        return buildah.parse_iidfile(iid.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(context, ignore_errors=True)
