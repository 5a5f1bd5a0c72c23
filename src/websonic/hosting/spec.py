"""The per-site hosting specification: what a customer's server must provide for one site.

One document, built by a pure function from three inputs, and rendered for people (Markdown,
HTML; see ``spec_render``) and machines (JSON, validated by ``spec.schema.json``):

- the site's manifest (kind, services.database, volumes, env names),
- its measured size: the newest release's image size (the database and uploads sizes are not
  measurable yet, so the agency baseline below is used and the document says so),
- the agency baseline: the constants in this module.

Headroom rules (all sizes in MiB):

- disk = image x 3 (two releases side by side during an update, plus the one kept for
  rollback) + database engine image + database data + uploads (per volume) + 2 GiB margin,
  rounded up to a multiple of 512;
- memory = system + reverse proxy (512) + the site's kind + the database engine, rounded up to
  a multiple of 512;
- CPUs: 1, or 2 when a database server (PostgreSQL, MariaDB) runs beside the site.

The document carries ``spec_version`` (the schema's version) and ``revision``, the sha256 of
its canonical JSON without the revision: the same inputs give the same revision, any change
gives another. ``requirements_for`` gives the machine-checkable core that preflight tests.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from importlib import resources
from typing import Any

from sqlalchemy.orm import Session

from websonic.builds.models import Release
from websonic.builds.service import list_releases
from websonic.hosting.domains import normalise_domains
from websonic.hosting.requirements import Requirements
from websonic.sites.manifest import Manifest, validate_manifest
from websonic.sites.models import Site
from websonic.sites.service import get_site

SPEC_VERSION = "1.0"
MIB = 1024 * 1024
NOT_MEASURED = "not measured yet"

# --- agency baseline -------------------------------------------------------------------------
OS_SUPPORTED = {"debian": "12", "ubuntu": "22.04"}  # /etc/os-release ID -> minimum VERSION_ID
ARCHITECTURES = ("x86_64",)
RUNTIME, RUNTIME_MIN_VERSION = "podman", "4.3"
DATA_PATH = "/var/lib/websonic"  # site data; preflight measures its nearest existing parent
PROXY_PORTS = (80, 443)  # bound by the TLS reverse proxy (Caddy)
SSH_PORT = 22  # open to the agency only when the customer gives it SSH access

IMAGES_KEPT = 3  # two releases side by side during an update + the rollback one
DISK_MARGIN_MIB = 2048  # logs, temporary files, package updates
DISK_STEP_MIB = MEMORY_STEP_MIB = 512
BASELINE_IMAGE_MIB = {"static": 100, "php": 300, "python": 400, "node": 400, "containerfile": 500}
DATABASE_ENGINE_IMAGE_MIB = {"postgresql": 450, "mariadb": 400, "sqlite": 0, "none": 0}
BASELINE_DATABASE_MIB = {"postgresql": 1024, "mariadb": 1024, "sqlite": 256, "none": 0}
BASELINE_VOLUME_MIB = 1024  # each persistent volume (uploads…)
SYSTEM_MEMORY_MIB = 512  # the OS, sshd, the reverse proxy
KIND_MEMORY_MIB = {"static": 128, "php": 512, "python": 512, "node": 512, "containerfile": 512}
DATABASE_MEMORY_MIB = {"postgresql": 512, "mariadb": 512, "sqlite": 0, "none": 0}
DATABASE_SERVERS = {"postgresql": "15", "mariadb": "10.11"}  # engine -> version installed
INODES = 100_000
OFF_SERVER = "off the server (the customer's or hoster's backup storage)"


# --- the machine-checkable core --------------------------------------------------------------
def requirements_for(
    site: Site, release: Release | None, *, domains: Sequence[str] = ()
) -> Requirements:
    """What a server must provide for ``site`` (``release``: its newest, None if never built)."""
    manifest = manifest_of(site, release)
    return requirements_from(
        site.ref_name, manifest, image_bytes(release), domains=check_domains(domains)
    )


def manifest_of(site: Site, release: Release | None) -> Manifest:
    """The manifest a release was built from; the site's own before its first build."""
    recorded = release.manifest if release is not None else None
    origin = f"The manifest of {site.ref_name}" + (f" release {release.number}" if release else "")
    return validate_manifest(recorded or site.manifest, origin=origin)


def requirements_from(
    ref: str, manifest: Manifest, image_size: int | None, *, domains: Sequence[str] = ()
) -> Requirements:
    """The pure core of ``requirements_for``: manifest + measured image size (bytes or None)."""
    return Requirements(
        site=ref,
        os_ids=tuple(OS_SUPPORTED),
        os_min_versions=dict(OS_SUPPORTED),
        architectures=ARCHITECTURES,
        cpus=2 if manifest.services.database in DATABASE_SERVERS else 1,
        memory_mib=_round_up(sum(m for _, m in memory_parts(manifest)), MEMORY_STEP_MIB),
        disk_mib=_round_up(sum(m for _, m, _ in disk_parts(manifest, image_size)), DISK_STEP_MIB),
        inodes=INODES,
        data_path=DATA_PATH,
        ports=PROXY_PORTS,
        runtime=RUNTIME,
        runtime_min_version=RUNTIME_MIN_VERSION,
        rsync=bool(manifest.volumes),
        domains=tuple(domains),
        site_memory_mib=KIND_MEMORY_MIB[manifest.kind],
        database_memory_mib=DATABASE_MEMORY_MIB[manifest.services.database],
    )


def image_bytes(release: Release | None) -> int | None:
    return release.size if release is not None else None


def image_mib(manifest: Manifest, image_size: int | None) -> int:
    if image_size is None:
        return BASELINE_IMAGE_MIB[manifest.kind]
    return max(1, math.ceil(image_size / MIB))


def disk_parts(manifest: Manifest, image_size: int | None) -> list[tuple[str, int, bool]]:
    """(what, MiB, measured) lines that add up to the disk minimum."""
    database = manifest.services.database
    image = image_mib(manifest, image_size)
    parts = [
        (
            f"site image x {IMAGES_KEPT} ({image} MiB each)",
            image * IMAGES_KEPT,
            image_size is not None,
        )
    ]
    if DATABASE_ENGINE_IMAGE_MIB[database]:
        parts.append((f"{database} engine image", DATABASE_ENGINE_IMAGE_MIB[database], False))
    if BASELINE_DATABASE_MIB[database]:
        parts.append((f"{database} data (estimate)", BASELINE_DATABASE_MIB[database], False))
    parts += [(f"volume {v.name} (estimate)", BASELINE_VOLUME_MIB, False) for v in manifest.volumes]
    parts.append(("margin (logs, temporary files, updates)", DISK_MARGIN_MIB, False))
    return parts


def memory_parts(manifest: Manifest) -> list[tuple[str, int]]:
    database = manifest.services.database
    parts = [
        ("system, sshd and reverse proxy", SYSTEM_MEMORY_MIB),
        (f"{manifest.kind} site", KIND_MEMORY_MIB[manifest.kind]),
    ]
    if DATABASE_MEMORY_MIB[database]:
        parts.append((f"{database} server", DATABASE_MEMORY_MIB[database]))
    return parts


def _round_up(value: int, step: int) -> int:
    return math.ceil(value / step) * step


def check_domains(domains: Sequence[str]) -> tuple[str, ...]:
    """The names normalised (lower case, no trailing dot, IDNA) and checked: hosting.domains."""
    return normalise_domains(domains)


# --- the document ----------------------------------------------------------------------------
def hosting_spec(session: Session, ref: str, *, domains: Sequence[str] = ()) -> dict[str, Any]:
    """The hosting specification of CUSTOMER/SITE from its manifest and newest release."""
    site = get_site(session, ref)
    return build_spec(site, newest_release(session, site), domains=domains)


def site_requirements(session: Session, ref: str, *, domains: Sequence[str] = ()) -> Requirements:
    """What a server must provide for CUSTOMER/SITE now (for preflight)."""
    site = get_site(session, ref)
    return requirements_for(site, newest_release(session, site), domains=domains)


def newest_release(session: Session, site: Site) -> Release | None:
    releases = list_releases(session, site)
    return releases[-1] if releases else None


def build_spec(
    site: Site, release: Release | None, *, domains: Sequence[str] = ()
) -> dict[str, Any]:
    manifest = manifest_of(site, release)
    requirements = requirements_for(site, release, domains=domains)
    document = {
        "spec_version": SPEC_VERSION,
        "site": _site_section(site, manifest),
        "release": _release_section(release),
        "sizes": _sizes(manifest, image_bytes(release)),
        "server": _server(manifest, image_bytes(release), requirements),
        "runtime": {
            "name": RUNTIME,
            "min_version": RUNTIME_MIN_VERSION,
            "source": "the distribution's packages (apt install podman)",
        },
        "network": _network(requirements.domains),
        "tls": _tls(),
        "database": _database(manifest),
        "volumes": [
            {"name": v.name, "path": v.path, "estimate_mib": BASELINE_VOLUME_MIB}
            for v in manifest.volumes
        ],
        "env": {"plain": sorted(manifest.plain_env), "secrets": manifest.secret_names},
        "backups": _backups(manifest),
        "security": _security(),
        "responsibilities": _responsibilities(),
        "requirements": requirements_json(requirements),
    }
    return with_revision(document)


def with_revision(document: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in document.items() if k != "revision"}
    return {**body, "revision": revision_of(body)}


def revision_of(document: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) without ``revision``."""
    body = {k: v for k, v in document.items() if k != "revision"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def requirements_json(requirements: Requirements) -> dict[str, Any]:
    data = asdict(requirements)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def schema() -> dict[str, Any]:
    """The published JSON Schema of the document (also in docs/hosting-spec.schema.json)."""
    text = resources.files("websonic.hosting").joinpath("spec.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _site_section(site: Site, manifest: Manifest) -> dict[str, Any]:
    return {
        "ref": site.ref_name,
        "customer": site.customer.slug,
        "customer_name": site.customer.name,
        "kind": manifest.kind,
        "health": manifest.site.health,
        "port": manifest.site.port,
        "manifest_detected": bool(site.manifest_detected),
    }


def _release_section(release: Release | None) -> dict[str, Any] | None:
    if release is None:
        return None
    return {"number": release.number, "digest": release.digest, "size_bytes": release.size}


def _sizes(manifest: Manifest, image_size: int | None) -> dict[str, Any]:
    database = manifest.services.database
    return {
        "image": _size(image_mib(manifest, image_size), image_size is not None),
        "database": _size(BASELINE_DATABASE_MIB[database], False),
        "uploads": _size(BASELINE_VOLUME_MIB * len(manifest.volumes), False),
    }


def _size(mib: int, measured: bool) -> dict[str, Any]:
    note = "measured (newest release, compressed)" if measured else f"{NOT_MEASURED}: baseline"
    return {"mib": mib, "measured": measured, "note": note}


def _server(
    manifest: Manifest, image_size: int | None, requirements: Requirements
) -> dict[str, Any]:
    return {
        "os": [{"id": k, "min_version": v} for k, v in OS_SUPPORTED.items()],
        "architectures": list(ARCHITECTURES),
        "cpus": requirements.cpus,
        "memory_mib": requirements.memory_mib,
        "disk_mib": requirements.disk_mib,
        "inodes": requirements.inodes,
        "data_path": requirements.data_path,
        "disk_breakdown": [
            {"item": item, "mib": mib, "measured": measured}
            for item, mib, measured in disk_parts(manifest, image_size)
        ],
        "memory_breakdown": [{"item": item, "mib": mib} for item, mib in memory_parts(manifest)],
    }


def _network(domains: Sequence[str]) -> dict[str, Any]:
    return {
        "ports": [
            {
                "port": 80,
                "protocol": "tcp",
                "purpose": "HTTP, redirects to HTTPS; ACME",
                "open_to": "everyone",
            },
            {"port": 443, "protocol": "tcp", "purpose": "HTTPS (the site)", "open_to": "everyone"},
            {
                "port": SSH_PORT,
                "protocol": "tcp",
                "purpose": "SSH administration (the agency, if given access)",
                "open_to": "administrators only",
            },
        ],
        "domains": list(domains),
        "dns_records": [
            {"name": d, "type": t, "value": f"the server's public {v} address"}
            for d in domains
            for t, v in (("A", "IPv4"), ("AAAA", "IPv6"))
        ],
    }


def _tls() -> dict[str, Any]:
    return {
        "proxy": "caddy",
        "certificates": "ACME (Let's Encrypt) in production; Caddy's internal CA for tests",
        "renewal": "automatic, by the reverse proxy",
        "redirect_http": True,
    }


def _database(manifest: Manifest) -> dict[str, Any]:
    engine = manifest.services.database
    if engine in DATABASE_SERVERS:
        return {
            "engine": engine,
            "version": DATABASE_SERVERS[engine],
            "storage": f"container volume under {DATA_PATH}, not exposed outside the server",
            "estimate_mib": BASELINE_DATABASE_MIB[engine],
        }
    if engine == "sqlite":
        return {
            "engine": "sqlite",
            "version": "3",
            "storage": "a file on a persistent volume of the site",
            "estimate_mib": BASELINE_DATABASE_MIB[engine],
        }
    return {"engine": "none", "version": None, "storage": "none", "estimate_mib": 0}


def _backups(manifest: Manifest) -> list[dict[str, Any]]:
    engine = manifest.services.database
    backups = []
    if engine in DATABASE_SERVERS:
        tool = "pg_dump" if engine == "postgresql" else "mariadb-dump"
        backups.append(_backup(f"{engine} database ({tool})", "daily", "30 days"))
    elif engine == "sqlite":
        backups.append(_backup("sqlite database file (online backup)", "daily", "30 days"))
    backups += [_backup(f"volume {v.name}", "daily", "30 days") for v in manifest.volumes]
    backups.append(
        _backup("site configuration and secrets (encrypted)", "on change", "1 year", "agency")
    )
    return backups


def _backup(
    what: str, frequency: str, retention: str, responsible: str = "customer"
) -> dict[str, Any]:
    where = "the agency's WebSonic state folder" if responsible == "agency" else OFF_SERVER
    return {
        "what": what,
        "frequency": frequency,
        "retention": retention,
        "where": where,
        "responsible": responsible,
    }


def _security() -> list[dict[str, str]]:
    return [
        {"rule": "SSH keys only", "detail": "PasswordAuthentication no in sshd_config"},
        {"rule": "no root password login", "detail": "PermitRootLogin prohibit-password (or no)"},
        {
            "rule": "firewall",
            "detail": f"allow only tcp/{SSH_PORT}, tcp/80 and tcp/443 inbound; deny the rest",
        },
        {"rule": "automatic security updates", "detail": "unattended-upgrades enabled"},
        {"rule": "rootless or confined containers", "detail": "the site runs as a non-root user"},
        {"rule": "secrets", "detail": "kept in files readable by the site's user only"},
    ]


def _responsibilities() -> list[dict[str, str]]:
    rows = [
        ("server hardware, network, hypervisor", "-", "choose, pay", "run, repair"),
        ("operating system install and updates", "advise", "approve", "install, update"),
        ("firewall and SSH keys", "give its key", "decide who has access", "apply"),
        ("domain names and DNS records", "tell which", "own, create records", "-"),
        ("TLS certificates", "configure proxy", "-", "-"),
        ("container runtime and the site", "install, update, roll back", "approve", "-"),
        ("database and uploads (the data)", "migrate once", "own, controller", "store"),
        ("backups", "advise, test restore", "decide, keep", "provide storage"),
        ("monitoring and incidents", "site health", "be informed", "server health"),
    ]
    return [{"area": a, "agency": ag, "customer": cu, "hoster": ho} for a, ag, cu, ho in rows]
