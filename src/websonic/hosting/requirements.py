"""What a customer's server must provide for one site: the machine-checkable core of the
hosting specification, shared by `websonic spec` (which explains it) and the preflight checks
(`websonic host check`, the installer) which test a real server against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Requirements:
    """Minimums for one site on one server (sizes in MiB; headroom already included)."""

    site: str  # CUSTOMER/SITE
    os_ids: tuple[str, ...] = ("debian", "ubuntu")  # /etc/os-release ID
    os_min_versions: dict[str, str] = field(
        default_factory=lambda: {"debian": "12", "ubuntu": "22.04"}
    )
    architectures: tuple[str, ...] = ("x86_64",)  # uname -m
    cpus: int = 1
    memory_mib: int = 1024
    disk_mib: int = 4096  # free space where containers and site data live
    inodes: int = 100_000  # free inodes there
    data_path: str = "/var/lib"  # where WebSonic keeps images, volumes, databases
    ports: tuple[int, ...] = (80, 443)  # must be free (the TLS reverse proxy binds them)
    runtime: str = "podman"  # present, or installable from the distribution's packages
    runtime_min_version: str = "4.3"
    # rsync on the server: files are copied into the site's volumes with it (migrate, files
    # sync); present, or installable from the distribution's packages.
    rsync: bool = False
    domains: tuple[str, ...] = ()  # should resolve to the server (a warning, not a failure)
    max_clock_skew_seconds: int = 60
    # What each container of the site may use (podman --memory, --pids-limit): the site's
    # share of ``memory_mib`` (each release's container; two run side by side during an
    # update) and its database's. Pids count threads too (MariaDB runs one per connection).
    site_memory_mib: int = 512
    site_pids: int = 1024
    database_memory_mib: int = 512
    database_pids: int = 512
