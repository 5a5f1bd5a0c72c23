"""pytest plugin with the test bed fixtures (enable with ``pytest_plugins = ["testbed.fixtures"]``).

Scopes: the host images, the podman network and the SSH key pair are per session; hosts and
database servers are per test — ``host_factory``/``*_server_factory`` remove everything they made
when the test ends, pass or fail. Leftovers of killed earlier runs are removed at session start.

Two kinds of host: ``host_factory`` makes servers that already run podman (most tests), and
``minimal_host_factory`` makes minimal Debian servers with nothing installed and empty package
lists (the tests of installing onto a truly fresh server). Both share the network and key pair.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.databases import (
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
    remove_stale_database_dirs,
)
from testbed.hosts import HostFactory, TestHost, TestNetwork, remove_stale_podman_objects
from testbed.image import HostImage, ensure_host_image, ensure_minimal_host_image
from testbed.ssh import SshKeyPair, generate_keypair


@pytest.fixture(scope="session")
def testbed_dir() -> Iterator[Path]:
    """A private temp dir for the session (keys, known_hosts); deleted at the end."""
    remove_stale_database_dirs()  # also removes stale session dirs (same name scheme)
    path = Path(tempfile.mkdtemp(prefix=f"websonic-test-{os.getpid()}-session-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_keypair(testbed_dir: Path) -> SshKeyPair:
    """The session's ed25519 key pair; its public key is in every host's authorized_keys."""
    return generate_keypair(testbed_dir / "ssh")


@pytest.fixture(scope="session")
def host_image() -> HostImage:
    """The Debian 12 host image (built with mmdebstrap on first use, then cached)."""
    remove_stale_podman_objects()
    return ensure_host_image()


@pytest.fixture(scope="session")
def minimal_host_image() -> HostImage:
    """The minimal Debian 12 image: systemd, sshd, curl; no podman, no rsync, empty lists."""
    remove_stale_podman_objects()
    return ensure_minimal_host_image()


@pytest.fixture(scope="session")
def host_network(host_image: HostImage) -> Iterator[TestNetwork]:
    """The session's podman network (a free 10.213.<n>.0/24 subnet)."""
    network = TestNetwork.create()
    yield network
    network.remove()


@pytest.fixture
def host_factory(
    host_image: HostImage,
    host_network: TestNetwork,
    ssh_keypair: SshKeyPair,
    testbed_dir: Path,
) -> Iterator[HostFactory]:
    """Makes disposable customer servers; all are removed when the test ends."""
    yield from _hosts_of(host_image, host_network, ssh_keypair, testbed_dir)


@pytest.fixture
def minimal_host_factory(
    minimal_host_image: HostImage,
    host_network: TestNetwork,
    ssh_keypair: SshKeyPair,
    testbed_dir: Path,
) -> Iterator[HostFactory]:
    """Makes minimal customer servers (nothing installed); all are removed when the test ends."""
    yield from _hosts_of(minimal_host_image, host_network, ssh_keypair, testbed_dir)


def _hosts_of(
    image: HostImage, network: TestNetwork, keypair: SshKeyPair, workdir: Path
) -> Iterator[HostFactory]:
    factory = HostFactory(image.ref, network, keypair, workdir)
    try:
        yield factory
    finally:
        factory.remove_all()


@pytest.fixture(name="test_host")
def _test_host(host_factory: HostFactory) -> TestHost:
    """One fresh customer server named ``server1``."""
    return host_factory.create("server1")


@pytest.fixture(scope="session")
def _database_session() -> None:
    """Clean up servers and folders of killed earlier runs, once per session."""
    remove_stale_database_dirs()


ServerFactory = Callable[..., DatabaseServer]


def _server_factory(start: Callable[..., DatabaseServer]) -> Iterator[ServerFactory]:
    servers: list[DatabaseServer] = []

    def create(**options: Any) -> DatabaseServer:
        server = start(**options)
        servers.append(server)
        return server

    try:
        yield create
    finally:
        for server in servers:
            server.destroy()


@pytest.fixture
def postgres_server_factory(_database_session: None) -> Iterator[ServerFactory]:
    """``factory(wal_level=None, settings=None, durable=False)`` -> a new PostgreSQL 15 server."""
    yield from _server_factory(PostgresServer.start)


@pytest.fixture
def mariadb_server_factory(_database_session: None) -> Iterator[ServerFactory]:
    """``factory(server_id=None, log_bin=False, settings=None)`` -> a new MariaDB 10.11 server."""
    yield from _server_factory(MariaDBServer.start)


@pytest.fixture
def pg_source(postgres_server_factory: ServerFactory) -> DatabaseServer:
    """A PostgreSQL server ready to be a logical replication source (wal_level=logical)."""
    return postgres_server_factory(wal_level="logical")


@pytest.fixture
def pg_target(postgres_server_factory: ServerFactory) -> DatabaseServer:
    """A plain PostgreSQL server to copy into."""
    return postgres_server_factory()


@pytest.fixture
def maria_source(mariadb_server_factory: ServerFactory) -> DatabaseServer:
    """A MariaDB server with ROW binlogs and server-id 1."""
    return mariadb_server_factory(server_id=1, log_bin=True)


@pytest.fixture
def maria_target(mariadb_server_factory: ServerFactory) -> DatabaseServer:
    """A MariaDB server with server-id 2 (can replicate from ``maria_source``)."""
    return mariadb_server_factory(server_id=2)
