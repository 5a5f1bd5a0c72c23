"""Databases reached over TLS (the certificate checked) and refused clearly without it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import Cli
from testbed.fixtures import ServerFactory
from testbed.tls import make_server_tls

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
    source = postgres_server_factory(settings={
        "ssl": "on", "ssl_cert_file": str(tls.certificate), "ssl_key_file": str(tls.key),
    })  # fmt: skip
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
