"""Databases reached over TLS (the certificate checked) and refused clearly without it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Cli
from testbed.fixtures import ServerFactory
from testbed.tls import ServerTls, make_server_tls

pytestmark = pytest.mark.databases


def test_postgresql_over_verified_tls(cli: Cli, postgres_server_factory: ServerFactory) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"websonic-test-{os.getpid()}-tls-"))
    folder.chmod(0o755)  # the server (user postgres) reads its certificate there
    try:
        _migrate_over_tls(cli, postgres_server_factory, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _migrate_over_tls(cli: Cli, postgres_server_factory: ServerFactory, folder: Path) -> None:
    tls = make_server_tls(folder, "127.0.0.1")
    if os.geteuid() == 0:  # the server runs as postgres: its key must be its own, mode 600
        for path in (tls.certificate, tls.key):
            shutil.chown(path, "postgres", "postgres")
    source = postgres_server_factory(
        settings={
            "ssl": "on",
            "ssl_cert_file": str(tls.certificate),
            "ssl_key_file": str(tls.key),
        }
    )
    target = postgres_server_factory()
    source.execute("CREATE DATABASE shop")
    source.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'é')",
                   database="shop")  # fmt: skip
    target.execute("CREATE DATABASE shop")
    verified = f"{source.url('shop')}?sslmode=verify-full&sslrootcert={tls.ca}"
    report = cli.json("db", "migrate", "--from", verified, "--to", target.url("shop"))
    assert report["ok"] and report["rows"] == 1

    plain = f"{target.url('shop')}?sslmode=require"  # the target has no TLS: refused, clearly
    message = cli.fails("db", "verify", "--from", verified, "--to", plain, code=12)
    assert "SSL" in message or "TLS" in message
    assert target.password not in message


@pytest.fixture
def tls_folder() -> Iterator[Path]:
    """A folder the servers (users postgres / mysql when we are root) can read."""
    folder = Path(tempfile.mkdtemp(prefix=f"websonic-test-{os.getpid()}-tls-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _server_owned(tls: ServerTls, user: str) -> ServerTls:
    if os.geteuid() == 0:  # the server runs as its own user: its key must be its own, mode 600
        for path in (tls.certificate, tls.key):
            shutil.chown(path, user, user)
    return tls


def test_finding9_postgresql_tls_from_an_unknown_ca_is_refused_unless_tls_insecure(
    cli: Cli, postgres_server_factory: ServerFactory, tls_folder: Path
) -> None:
    """sslmode=require used to connect without checking the certificate: now TLS is always
    verified (verify-full), a certificate from an unknown CA is refused (exit 12, with the way
    out), and --tls-insecure connects anyway with a warning in the output and the report."""
    tls = _server_owned(make_server_tls(tls_folder / "server", "127.0.0.1"), "postgres")
    unknown_ca = make_server_tls(tls_folder / "other", "127.0.0.1").ca
    server = postgres_server_factory(
        settings={
            "ssl": "on",
            "ssl_cert_file": str(tls.certificate),
            "ssl_key_file": str(tls.key),
        }
    )
    for name in ("shop", "copy"):
        server.execute(f"CREATE DATABASE {name}")
        server.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)", name)
    copy = server.url("copy")
    for query in ("sslmode=require", f"sslmode=verify-ca&sslrootcert={unknown_ca}"):
        url = f"{server.url('shop')}?{query}"
        message = cli.fails("db", "verify", "--from", url, "--to", copy, code=12)
        assert "TLS certificate of the PostgreSQL server at 127.0.0.1" in message, message
        assert "could not be verified" in message and "--tls-insecure" in message
        assert server.password not in message

    url = f"{server.url('shop')}?sslmode=require"
    insecure = cli.run("db", "verify", "--from", url, "--to", copy, "--tls-insecure")
    assert "warning: --tls-insecure" in insecure.stderr
    assert "the target matches the source" in insecure.stdout
    prefer = f"{server.url('shop')}?sslmode=prefer"  # TLS maybe, unchecked: refused as given
    refused = cli.fails("db", "verify", "--from", prefer, "--to", copy, code=2)
    assert "would use TLS without checking" in refused


def test_finding9_mariadb_tls_is_verified_unless_tls_insecure(
    cli: Cli, mariadb_server_factory: ServerFactory, tls_folder: Path
) -> None:
    """?ssl=1 used to connect without checking the certificate (ssl_verify defaulted to 0):
    now a certificate the system's CAs do not know is refused, the right ssl_ca is checked
    (host name included), and --tls-insecure connects with a warning in the report."""
    tls = _server_owned(make_server_tls(tls_folder / "server", "127.0.0.1"), "mysql")
    server = mariadb_server_factory(
        settings={
            "ssl-cert": str(tls.certificate),
            "ssl-key": str(tls.key),
            "ssl-ca": str(tls.ca),
        }
    )
    source = server.create_database("shop")
    server.execute("CREATE TABLE shop.t (id INT PRIMARY KEY)")
    target = server.create_database("copy")

    message = cli.fails("db", "verify", "--from", f"{source}?ssl=1", "--to", target, code=12)
    assert "TLS certificate of the MariaDB/MySQL server at 127.0.0.1" in message, message
    assert "ssl_ca=" in message and "--tls-insecure" in message
    assert server.password not in message
    report = cli.json("db", "migrate", "--from", f"{source}?ssl_ca={tls.ca}", "--to", target)
    assert report["ok"], report

    again = server.create_database("again")
    insecure = cli.run(
        "db", "migrate", "--from", f"{source}?ssl=1", "--to", again, "--tls-insecure", "--json"
    )
    assert "warning: --tls-insecure" in insecure.stderr
    notes = json.loads(insecure.stdout)["notes"]
    assert any("certificates are not checked" in note for note in notes), notes
    dropped = cli.fails(
        "db", "verify", "--from", f"{source}?ssl=1&ssl_verify=0", "--to", target, code=2
    )
    assert "--tls-insecure" in dropped
