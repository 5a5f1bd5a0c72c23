"""Tests of the test bed itself: disposable hosts over SSH and disposable database servers."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import psycopg
import pymysql
import pytest

from testbed import DatabaseServer, HostFactory, TestHost
from testbed._proc import run
from testbed.fixtures import ServerFactory
from testbed.podman import podman
from testbed.ssh import generate_keypair, ssh_options


def run_unchecked(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv and return the result without raising on a non-zero exit."""
    return run(argv, check=False, timeout=60)


@pytest.mark.hosts
def test_two_hosts_have_own_address_and_filesystem(host_factory: HostFactory) -> None:
    first = host_factory.create("alpha")
    second = host_factory.create("beta")

    assert first.address != second.address
    assert first.ssh("hostname").stdout.strip() == "alpha"
    assert second.ssh("hostname").stdout.strip() == "beta"
    first.ssh("echo only-here > /root/marker.txt")
    assert first.ssh("cat", "/root/marker.txt").stdout.strip() == "only-here"
    assert second.ssh("test -e /root/marker.txt", check=False).returncode == 1


@pytest.mark.hosts
def test_hosts_reach_each_other_by_name(host_factory: HostFactory) -> None:
    first = host_factory.create("alpha")
    second = host_factory.create("beta")

    resolved = first.ssh("getent", "hosts", "beta").stdout.split()
    assert resolved[0] == second.address
    assert first.ssh("ping -c 1 -W 5 beta", check=False).returncode == 0


@pytest.mark.hosts
def test_ssh_needs_the_session_key(test_host: TestHost, tmp_path: Path) -> None:
    assert test_host.ssh("id -un").stdout.strip() == "root"

    without_key = test_host.ssh_argv(key_path=None)
    refused = run_unchecked([*without_key, "true"])
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr

    stranger = generate_keypair(tmp_path / "stranger")
    wrong_key = test_host.ssh_argv(key_path=stranger.private_path)
    refused = run_unchecked([*wrong_key, "true"])
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr


@pytest.mark.hosts
def test_host_key_is_pinned_and_checked(test_host: TestHost, tmp_path: Path) -> None:
    entry = test_host.known_hosts_path.read_text().split()
    assert entry[0] == test_host.address
    assert entry[1] == "ssh-ed25519"

    bogus = tmp_path / "known_hosts"
    bogus.write_text(f"{test_host.address} {generate_keypair(tmp_path / 'k').public_key}\n")
    argv = ["ssh", *ssh_options(test_host.key_path, bogus), test_host.ssh_target(), "true"]
    assert run_unchecked(argv).returncode == 255


@pytest.mark.hosts
def test_host_runs_systemd_and_custom_units(test_host: TestHost) -> None:
    assert test_host.ssh("cat /proc/1/comm").stdout.strip() == "systemd"
    state = test_host.ssh("systemctl is-system-running --wait", check=False).stdout.strip()
    assert state in {"running", "degraded"}
    test_host.write_file(
        "/etc/systemd/system/hello.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo hi > /run/hi'\n",
    )
    test_host.ssh("systemctl daemon-reload && systemctl start hello.service")
    assert test_host.ssh("systemctl is-active hello.service").stdout.strip() == "active"
    assert test_host.ssh("cat /run/hi").stdout.strip() == "hi"


@pytest.mark.hosts
def test_put_and_get_files(test_host: TestHost, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("payload\n")
    test_host.put(source, "/tmp/in.txt")
    assert test_host.ssh("cat /tmp/in.txt").stdout == "payload\n"
    test_host.get("/etc/os-release", tmp_path / "os-release")
    assert 'VERSION_ID="12"' in (tmp_path / "os-release").read_text()


@pytest.mark.hosts
def test_podman_runs_containers_inside_a_host(test_host: TestHost) -> None:
    image = test_host.import_tiny_image()
    result = test_host.ssh("podman", "run", "--rm", image, "/bin/sh", "-c", "echo nested-ok")
    assert result.stdout.strip() == "nested-ok"

    test_host.ssh(
        "podman",
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:8080",
        "-e",
        "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu",
        "-v",
        "/usr:/usr:ro",
        image,
        "/usr/bin/python3",
        "-m",
        "http.server",
        "8080",
    )
    test_host.ssh(
        "for i in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:8080/ && exit 0; "
        "sleep 0.2; done; exit 1"
    )
    with urllib.request.urlopen(f"http://{test_host.address}:8080/", timeout=10) as response:
        assert response.status == 200


#: What the minimal server must not have: installing these is the installer's job.
NOT_ON_MINIMAL = ("podman", "runc", "crun", "netavark", "aardvark-dns", "rsync", "caddy",
                  "python3", "iproute2")  # fmt: skip


@pytest.mark.hosts
def test_minimal_host_has_nothing_installed_and_empty_package_lists(
    minimal_host_factory: HostFactory,
) -> None:
    host = minimal_host_factory.create("bare")
    query = "dpkg-query -W -f '${Package} ${Status}\\n' " + " ".join(NOT_ON_MINIMAL)
    installed = host.ssh(query, check=False).stdout
    assert " installed" not in installed, installed
    for command in ("podman", "netavark", "rsync", "caddy", "python3", "ip"):
        assert host.ssh(f"command -v {command}", check=False).returncode == 1, command
    assert host.ssh("ls -A /var/lib/apt/lists").stdout.split() == ["lock", "partial"]
    assert host.ssh("ls -A /var/cache/apt/archives | grep -c deb$", check=False).stdout == "0\n"
    assert host.ssh("command -v curl systemctl sshd").stdout.count("\n") == 3
    # Only the test machine's nested-podman settings are there, owned by no package.
    assert 'runtime = "runc"' in host.ssh("cat /etc/containers/containers.conf").stdout
    owner = host.ssh("dpkg -S /etc/containers/containers.conf", check=False)
    assert owner.returncode == 1, owner.stdout
    # Debian's mirror answers from inside (through the network's DNS and NAT).
    host.ssh("apt-get update -q", timeout=300)
    assert host.ssh("apt-cache policy podman netavark").stdout.count("Candidate: ") == 2


@pytest.mark.hosts
def test_removed_host_leaves_nothing_behind(host_factory: HostFactory) -> None:
    host = host_factory.create("gone")
    host_factory.remove(host)

    assert podman("container", "exists", host.container, check=False).returncode == 1
    assert podman("volume", "exists", host.volume, check=False).returncode == 1
    assert not host.known_hosts_path.exists()


def _port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.databases
def test_postgres_server_accepts_connections_and_stops(pg_target: DatabaseServer) -> None:
    url = pg_target.create_database("shop")
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT current_database()").fetchone() == ("shop",)
    assert pg_target.execute("SHOW server_version")[0][0].startswith("15.")

    pg_target.stop()
    assert not pg_target.is_running()
    assert not _port_is_open(pg_target.port)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


@pytest.mark.databases
def test_postgres_rejects_a_wrong_password(pg_target: DatabaseServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=pg_target.host,
            port=pg_target.port,
            user=pg_target.user,
            password="wrong",
            dbname="postgres",
            connect_timeout=5,
        )


@pytest.mark.databases
def test_two_postgres_servers_are_independent(
    pg_source: DatabaseServer, pg_target: DatabaseServer
) -> None:
    assert pg_source.port != pg_target.port
    assert pg_source.directory != pg_target.directory
    pg_source.create_database("only_on_source")
    pg_source.execute("CREATE TABLE t (x int)", database="only_on_source")

    names = {row[0] for row in pg_target.execute("SELECT datname FROM pg_database")}
    assert "only_on_source" not in names
    assert pg_source.execute("SHOW wal_level") == [("logical",)]
    assert pg_target.execute("SHOW wal_level") == [("replica",)]


@pytest.mark.databases
def test_postgres_extra_settings(postgres_server_factory: ServerFactory) -> None:
    server = postgres_server_factory(settings={"max_connections": "42"})
    assert server.execute("SHOW max_connections") == [("42",)]


@pytest.mark.databases
def test_mariadb_server_accepts_connections_and_stops(maria_target: DatabaseServer) -> None:
    maria_target.create_database("shop")
    assert maria_target.url("shop").startswith(f"mariadb://root:{maria_target.password}@")
    connection = pymysql.connect(
        host=maria_target.host,
        port=maria_target.port,
        user="root",
        password=maria_target.password,
        database="shop",
    )
    with connection:
        cursor = connection.cursor()
        cursor.execute("SELECT DATABASE(), VERSION()")
        database, version = cursor.fetchone()
    assert database == "shop"
    assert version.startswith("10.11")

    maria_target.stop()
    assert not _port_is_open(maria_target.port)


@pytest.mark.databases
def test_mariadb_requires_the_password(maria_target: DatabaseServer) -> None:
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host=maria_target.host,
            port=maria_target.port,
            user="root",
            password="",
            connect_timeout=5,
        )


@pytest.mark.databases
def test_mariadb_source_has_row_binlogs(
    maria_source: DatabaseServer, maria_target: DatabaseServer
) -> None:
    assert maria_source.execute("SELECT @@log_bin, @@binlog_format, @@server_id") == [(1, "ROW", 1)]
    assert maria_target.execute("SELECT @@log_bin, @@server_id") == [(0, 2)]
    maria_source.create_database("only_on_source")
    names = {row[0] for row in maria_target.execute("SHOW DATABASES")}
    assert "only_on_source" not in names
