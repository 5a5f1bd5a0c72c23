"""WebSonic test bed: disposable customer servers (podman system containers reached over SSH)
and disposable PostgreSQL/MariaDB servers. Fixtures live in ``testbed.fixtures``."""

from testbed._proc import CommandError
from testbed.databases import DatabaseServer, MariaDBServer, PostgresServer
from testbed.hosts import HostFactory, TestHost, TestNetwork
from testbed.image import HostImage, ensure_host_image
from testbed.ssh import SshKeyPair, generate_keypair

__all__ = [
    "CommandError",
    "DatabaseServer",
    "HostFactory",
    "HostImage",
    "MariaDBServer",
    "PostgresServer",
    "SshKeyPair",
    "TestHost",
    "TestNetwork",
    "ensure_host_image",
    "generate_keypair",
]
