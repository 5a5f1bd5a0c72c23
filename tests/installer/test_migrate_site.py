"""`websonic migrate`: a live site's database and files moved to a fresh customer server.

The "live" site is a database server of the agency (a disposable one here, reachable from the
customer's server on the test network, as an agency's would be over the internet) and a folder
of uploads; the target is a new customer server: a minimal Debian (no podman, no rsync, empty
package lists), on which the migration installs what it needs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from installer.conftest import Agency, Server, apt_updates
from testbed.databases import DatabaseServer
from testbed.fixtures import ServerFactory
from testbed.hosts import TestNetwork

pytestmark = pytest.mark.hosts

PRODUCTS = """
CREATE TABLE products (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO products (name, price)
SELECT 'Tabouret ' || i || ' 🪑', i FROM generate_series(1, 500) AS i;
"""
ENTRIES = """
CREATE TABLE entries (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    message TEXT NOT NULL,
    image VARCHAR(100) NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""


def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "catalogue 2026 é.pdf").write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 400)
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000)
    return folder


def test_online_move_of_python_shop_under_writes(
    agency: Agency, fresh_server: Server, database_bases: None, host_network: TestNetwork,
    postgres_server_factory: ServerFactory, tmp_path: Path,
) -> None:  # fmt: skip
    server = fresh_server
    gateway, subnet = host_network.gateway, str(host_network.subnet)
    live = postgres_server_factory(
        wal_level="logical",
        settings={"listen_addresses": f"127.0.0.1,{gateway}"},
        hba=(
            f"host all all {subnet} scram-sha-256",
            f"host replication all {subnet} scram-sha-256",
        ),
    )
    live.execute("CREATE DATABASE shop")
    live.execute(PRODUCTS, database="shop")
    site = agency.site("python-shop")
    site.build()
    switched = tmp_path / "switched"
    writer = Writer(live, server, switched)
    with writer:
        result = agency.cli.json(
            "migrate", site.ref, "--to", server.ref, "--mode", "online",
            "--from-db", live.url("shop").replace("127.0.0.1", gateway),
            "--files", f"uploads={uploads(tmp_path)}", "--on-switch", f"touch {switched}",
            timeout=1800,
        )  # fmt: skip
        time.sleep(2)  # a few writes through the site on its new server
    assert result["status"] == "succeeded", result
    database = result["database"]
    assert database["ok"] and database["write_downtime_seconds"] < 5
    assert writer.errors == [], writer.errors[:3]
    page = server.get("/").text
    assert "Tabouret 500 🪑" in page and "catalogue 2026 é.pdf" in page
    acknowledged = writer.before + writer.after
    assert len(writer.after) > 0
    missing = [name for name in acknowledged if page.count(f"<td>{name}</td>") != 1]
    assert missing == [], missing[:5]  # every acknowledged write there, exactly once
    assert server.get("/uploads/photo.png").status_code == 200
    assert installed_by_the_migration(server)
    assert "read-only" in " ".join(database.get("notes", [])).lower() or database["notes"]


def installed_by_the_migration(server: Server) -> bool:
    """rsync (for the files) and podman with netavark (for the database) are there, and the
    lists were fetched once."""
    packages = server.sh(r"dpkg-query -W -f '${Package} ${Status}\n' | grep ' installed$'")
    names = {line.split()[0] for line in packages.splitlines()}
    return {"rsync", "podman", "netavark"} <= names and apt_updates(server) == 1


class Writer:
    """The live site's writes: to the agency's database until the switch, then through the
    site on the customer's server. Only writes that succeeded count as acknowledged."""

    def __init__(self, live: DatabaseServer, server: Server, switched: Path) -> None:
        self.live, self.server, self.switched = live, server, switched
        self.before: list[str] = []
        self.after: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            name = f"écrit {number}"
            if self.switched.exists():
                self._through_site(name)
            else:
                self._direct(name)
            time.sleep(0.05)

    def _direct(self, name: str) -> None:
        try:
            with self.live.connect("shop") as conn:
                conn.execute("INSERT INTO products (name, price) VALUES (%s, 1)", (name,))
                conn.commit()
        except Exception:  # frozen (read-only) or ended: not acknowledged, tried again later
            return
        self.before.append(name)

    def _through_site(self, name: str) -> None:
        try:
            answer = self.server.post("/products", {"name": name, "price": "1"})
        except Exception as exc:
            self.errors.append(f"{name}: {exc}")
            return
        if answer.status_code in (200, 303):
            self.after.append(name)
        else:
            self.errors.append(f"{name}: HTTP {answer.status_code}")


def test_offline_move_of_php_guestbook(
    agency: Agency, fresh_server: Server, database_bases: None,
    mariadb_server_factory: ServerFactory, tmp_path: Path,
) -> None:  # fmt: skip
    server = fresh_server
    live = mariadb_server_factory(server_id=1, log_bin=True)
    live.execute("CREATE DATABASE guestbook CHARACTER SET utf8mb4")
    live.execute(ENTRIES, database="guestbook")
    live.execute(
        "INSERT INTO entries (name, message, image) VALUES "
        "('Zoé', 'Très bien 🎉', 'photo.png'), ('Ana', 'Olá', NULL)",
        database="guestbook",
    )
    site = agency.site("php-guestbook")
    site.build()
    dry = agency.cli.json("migrate", site.ref, "--to", server.ref, "--dry-run",
                          "--from-db", live.url("guestbook"), timeout=900)  # fmt: skip
    assert dry["status"] == "planned"
    notes = " ".join(dry["notes"])  # what is missing on the server, and what will install it
    assert "runtime: package lists will be refreshed (apt-get update), then podman" in notes
    assert "rsync: package lists will be refreshed (apt-get update), then rsync" in notes
    assert apt_updates(server) == 0  # … and the dry run changed nothing
    result = agency.cli.json(
        "migrate", site.ref, "--to", server.ref, "--from-db", live.url("guestbook"),
        "--files", f"uploads={uploads(tmp_path)}", timeout=1800,
    )  # fmt: skip
    assert result["status"] == "succeeded" and result["database"]["verify"]["ok"], result
    page = server.get("/").text
    assert "Très bien 🎉" in page and "Olá" in page
    assert server.post("/", {"name": "Après", "message": "déménagé ✅"}).status_code in (200, 303)
    assert "déménagé ✅" in server.get("/").text  # the site's own user writes the moved tables
    assert server.get("/uploads/photo.png").status_code == 200
    assert installed_by_the_migration(server)
    name = site.ref.replace("/", "-")
    accounts = server.sh(
        f"podman exec websonic-{name}-db mariadb -uroot -N -e "
        "\"SELECT user FROM mysql.user WHERE user = 'websonic_migrate'\""
    )
    assert accounts.strip() == ""  # the migration's account is gone

    again = agency.cli.run("migrate", site.ref, "--to", server.ref, "--from-db",
                           live.url("guestbook"), check=False, timeout=900)  # fmt: skip
    assert again.returncode == 15, again.stdout  # never overwrites silently
    assert "not empty" in again.stderr
