"""A new database image reaches a customer's server only with a healthy release (issue 8, 7).

The installer keeps the running database's unit and a copy of its data until the release that
brings a new image passes its health check, and puts both back when it does not; a new major
version (or another engine) is refused before anything changes: it is a migration
(`websonic db migrate` into a new database container), not an update in place.

The fast tests call the installer's functions on their own. The `hosts` tests share one server
running python-shop with PostgreSQL (release 1); a "new database image" is the agency's
PostgreSQL base with a label added (another digest, the same engine and version), recorded as
the newest base so that the next build of the site carries it.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from websonic.installer.script import installer_definitions

from installer.conftest import Agency, Server, Site, new_server
from testbed.hosts import HostFactory, TestNetwork
from testbed.image import HostImage
from testbed.ssh import SshKeyPair

E_VERIFY = 4

# --- the installer's checks, called on their own ----------------------------------------------


def call(shell: str, folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run installer functions: its definitions (all but the last line, which runs main) are
    sourced, then ``command`` runs (as test_script.call)."""
    definitions = folder / "definitions.sh"
    definitions.write_text(installer_definitions())
    script = f". {definitions}; " + " ".join(command)
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("engine", "running", "wanted", "same"),
    [
        ("postgresql", "15", "15", True),
        ("postgresql", "15", "15.6", True),  # a minor version is the same major
        ("postgresql", "15", "16", False),
        ("postgresql", "9.6", "9.6", True),  # (PostgreSQL before 10: the major is the first part)
        ("mariadb", "10.11", "10.11", True),
        ("mariadb", "10.11", "10.11.6", True),
        ("mariadb", "10.6", "10.11", False),  # MariaDB's major version has two parts
        ("mariadb", "10.11", "11.4", False),
    ],
)
def test_finding7_same_major_compares_the_engines_major_versions(
    engine: str, running: str, wanted: str, same: bool, tmp_path: Path
) -> None:
    proc = call("dash", tmp_path, "same_major", engine, running, wanted)
    assert proc.returncode == (0 if same else 1), proc.stderr


@pytest.mark.parametrize(
    ("address", "mac"),
    [("10.89.0.254", "02:00:0a:59:00:fe"), ("172.20.255.254", "02:00:ac:14:ff:fe")],
)
def test_finding7_the_database_keeps_a_mac_address_made_of_its_address(
    address: str, mac: str, tmp_path: Path
) -> None:
    """Started again, it is reached at once: the site's ARP entry for it stays right."""
    proc = call("dash", tmp_path, "address_mac", address)
    assert (proc.returncode, proc.stdout) == (0, mac + "\n"), proc.stderr


def check_change(
    tmp_path: Path, state: dict[str, str], plan: dict[str, str], data: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``check_database_change`` with this state file, these plan values and data files."""
    (tmp_path / "state").write_text("".join(f"{k}={v}\n" for k, v in state.items()))
    for relative, content in (data or {}).items():
        (tmp_path / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / relative).write_text(content)
    values = {
        "STATE": str(tmp_path / "state"),
        "DATA": str(tmp_path / "data"),
        "SITE": "acme/shop",
        "P_RELEASE": "8",
        "P_DB_MODE": "container",
        "P_DB_IMAGE": "registry.example/acme/shop@sha256:2222",
        "P_DB": "postgresql",
        **plan,
    }
    assigned = " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())
    return call("dash", tmp_path, f"{assigned};", "check_database_change")


RUNNING_15 = {"database_digest": "sha256:1111", "database_engine": "postgresql"}
PG15 = {**RUNNING_15, "database_version": "15"}
OLDER = {"database_digest": "sha256:1111"}  # the state an older installer left
PG15_DATA = {"database/data/PG_VERSION": "15\n"}
MARIADB = {"database_digest": "sha256:1111", "database_engine": "mariadb"}
MARIADB_10_6 = {**MARIADB, "database_version": "10.6"}


def test_finding7_a_new_major_version_is_refused_and_names_db_migrate(tmp_path: Path) -> None:
    proc = check_change(
        tmp_path,
        {**PG15, "active_slot": "blue", "active_release": "7"},
        {"P_DB_VERSION": "16"},
    )
    assert proc.returncode == E_VERIFY, proc
    assert "release 8 needs postgresql 16, but the database of acme/shop here is postgresql 15" in (
        proc.stdout
    )
    assert "websonic db migrate" in proc.stdout and "new database container" in proc.stdout
    assert "Nothing was changed here; release 7 keeps serving." in proc.stdout


@pytest.mark.parametrize(
    ("state", "plan", "data", "refused"),
    [
        (PG15, {"P_DB_VERSION": "15"}, None, False),
        ({}, {"P_DB_VERSION": "16"}, None, False),  # no database here yet: a first install
        # a database set up by an older installer: its version is read from its data
        (OLDER, {"P_DB_VERSION": "16"}, PG15_DATA, True),
        (OLDER, {"P_DB_VERSION": "15"}, PG15_DATA, False),
        # another engine is never an update
        (PG15, {"P_DB": "mariadb", "P_DB_VERSION": "10.11"}, None, True),
        (MARIADB_10_6, {"P_DB": "mariadb", "P_DB_VERSION": "10.11"}, None, True),
        # a version that cannot be told is let through (PostgreSQL refuses another major's data)
        (MARIADB, {"P_DB": "mariadb", "P_DB_VERSION": "11.4"}, None, False),
        (PG15, {"P_DB_MODE": "external", "P_DB_VERSION": "16"}, None, False),
    ],
)
def test_finding7_only_the_same_engine_and_major_version_updates_in_place(
    state: dict[str, str],
    plan: dict[str, str],
    data: dict[str, str] | None,
    refused: bool,
    tmp_path: Path,
) -> None:
    proc = check_change(tmp_path, state, plan, data)
    assert proc.returncode == (E_VERIFY if refused else 0), proc
    assert ("websonic db migrate" in proc.stdout) == refused


@pytest.mark.parametrize("version", ["16;x", "1..2", ".16", "16.", "$(id)", "16 17"])
def test_finding7_a_malformed_database_version_in_the_plan_is_refused(
    version: str, tmp_path: Path
) -> None:
    proc = check_change(tmp_path, {}, {"P_DB_VERSION": version})
    assert proc.returncode == E_VERIFY and "database_version is malformed" in proc.stdout, proc


def interrupted_update(tmp_path: Path, active_slot: str, *, copied: bool = True) -> Path:
    """The state a run killed during a database update for slot green leaves, then the next
    run's recover_database (systemctl and podman stubbed: they only record their calls)."""
    data, conf, units = tmp_path / "data", tmp_path / "conf", tmp_path / "units"
    for folder, marker in [("database", "new"), ("database.previous" if copied else "", "old")]:
        if folder:
            (data / folder).mkdir(parents=True)
            (data / folder / "marker").write_text(marker)
    if not copied:
        (data / "database.partial").mkdir()
    conf.mkdir()
    (conf / "db.service.previous").write_text("previous unit\n")
    units.mkdir()
    (units / "websonic-acme-shop-db.service").write_text("new unit\n")
    state = {
        "active_slot": active_slot,
        "database_digest": "sha256:new",
        "database_version": "15",
        "database_previous_digest": "sha256:old",
        "database_previous_version": "15",
        "database_update_slot": "green",
    }
    (conf / "state").write_text("".join(f"{k}={v}\n" for k, v in state.items()))
    stubs = (
        f'systemctl() {{ echo "$*" >>{tmp_path}/calls; }}; podman() {{ return 0; }}; '
        f"NAME=acme-shop DATA={data} CONF={conf} UNITS={units} STATE={conf}/state DRY_RUN=0 "
        "P_DB=postgresql;"
    )
    proc = call("dash", tmp_path, stubs, "recover_database")
    assert proc.returncode == 0, proc
    return tmp_path


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_finding7_an_interrupted_update_whose_release_does_not_serve_is_put_back(
    tmp_path: Path,
) -> None:
    root = interrupted_update(tmp_path, active_slot="blue")
    assert tree(root / "data") == {"database/marker": "old", "database.failed/marker": "new"}
    assert tree(root / "units") == {"websonic-acme-shop-db.service": "previous unit\n"}
    assert not (root / "conf" / "db.service.previous").exists()
    state = (root / "conf" / "state").read_text().splitlines()
    assert "database_digest=sha256:old" in state and "database_previous_digest=" in state
    calls = (root / "calls").read_text().splitlines()
    changes = [call for call in calls if not call.startswith("show ")]  # (state reads)
    assert changes[0] == "stop websonic-acme-shop-db.service"  # before its data moves
    assert "restart websonic-acme-shop-db.service" in changes


def test_finding7_an_interrupted_update_before_its_copy_keeps_the_data_as_it_is(
    tmp_path: Path,
) -> None:
    """Killed while copying: the new image never ran on the data; only the unit goes back."""
    root = interrupted_update(tmp_path, active_slot="blue", copied=False)
    assert tree(root / "data") == {"database/marker": "new"}  # (the data of before)
    assert not (root / "data" / "database.partial").exists()
    assert tree(root / "units") == {"websonic-acme-shop-db.service": "previous unit\n"}


def test_finding7_an_interrupted_update_whose_release_serves_is_kept(tmp_path: Path) -> None:
    root = interrupted_update(tmp_path, active_slot="green")  # Caddy had switched to it
    assert tree(root / "data") == {"database/marker": "new"}
    assert tree(root / "units") == {"websonic-acme-shop-db.service": "new unit\n"}
    assert not (root / "conf" / "db.service.previous").exists()
    state = (root / "conf" / "state").read_text().splitlines()
    assert "database_digest=sha256:new" in state and "database_previous_digest=" in state
    assert not (root / "calls").exists()  # the database was not touched


# --- on a real server -------------------------------------------------------------------------


@dataclass
class Shop:
    """python-shop with PostgreSQL, release 1 serving on one server for the whole module."""

    agency: Agency
    site: Site
    server: Server
    original: str  # the digest of the database image release 1 runs

    @property
    def name(self) -> str:
        return self.site.ref.replace("/", "-")

    def state(self) -> dict[str, str]:
        text = self.server.sh(f"cat /etc/websonic/sites/{self.name}/state")
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def database_image(self) -> str:
        """The image the database container runs now (REGISTRY/acme/shop@sha256:…)."""
        fmt = shlex.quote("{{.ImageName}}")
        return self.server.sh(f"podman inspect --format {fmt} websonic-{self.name}-db").strip()

    def unit(self) -> str:
        return self.server.sh(f"cat /etc/systemd/system/websonic-{self.name}-db.service")

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.agency.cli.run(
            "deploy", self.site.ref, "--host", self.server.ref, *args, check=False, timeout=1800
        )


@pytest.fixture(scope="module")
def shop(
    agency: Agency,
    database_bases: None,
    host_image: HostImage,
    host_network: TestNetwork,
    ssh_keypair: SshKeyPair,
    testbed_dir: Path,
) -> Iterator[Shop]:
    factory = HostFactory(host_image.ref, host_network, ssh_keypair, testbed_dir)
    try:
        server = new_server(agency, factory)
        site = agency.site("python-shop")
        site.build()
        first = agency.cli.json("deploy", site.ref, "--host", server.ref, timeout=1800)
        assert first["status"] == "succeeded", first
        assert server.post("/products", {"name": "Chaise 🪑", "price": "49.90"}).status_code in (
            200,
            303,
        )
        shop = Shop(agency, site, server, "")
        shop.original = shop.state()["database_digest"]
        yield shop
    finally:
        factory.remove_all()


@pytest.fixture
def newer_postgresql(agency: Agency) -> Iterator[NewBase]:
    """Make the agency's newest PostgreSQL base another image (and put things back after)."""
    bases = NewBase(agency.cli.home / "state.db")
    try:
        yield bases
    finally:
        bases.remove()


class NewBase:
    """New PostgreSQL base images: the current one with a label, recorded as the newest."""

    def __init__(self, state_db: Path) -> None:
        assert state_db.is_file(), state_db
        self.state_db = state_db
        self.rows: list[int] = []
        self.images: list[str] = []

    def add(self, label: str, *, version: str | None = None, entrypoint: str = "") -> str:
        """A new base image (its id); ``version`` forges the engine's package version,
        ``entrypoint`` replaces the image's."""
        with sqlite3.connect(self.state_db) as db:
            row = db.execute(
                "SELECT id, digest, packages FROM base_images WHERE kind = 'postgresql' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
        base_id, digest, packages = row[0], row[1], json.loads(row[2])
        image = derived_image(digest, label, entrypoint)
        self.images.append(image)
        if version is not None:
            packages = [[n, version if n == "postgresql-15" else v] for n, v in packages]
        with sqlite3.connect(self.state_db) as db:
            cursor = db.execute(
                "INSERT INTO base_images (kind, suite, image, digest, packages, size, created_at) "
                "SELECT kind, suite, image, ?, ?, size, created_at FROM base_images WHERE id = ?",
                (image, json.dumps(packages), base_id),
            )
            assert cursor.lastrowid is not None
            self.rows.append(cursor.lastrowid)
        return image

    def remove(self) -> None:
        with sqlite3.connect(self.state_db) as db:
            db.executemany("DELETE FROM base_images WHERE id = ?", [(r,) for r in self.rows])
        for image in self.images:
            subprocess.run(["podman", "rmi", "-f", image], capture_output=True, check=False)


def derived_image(base: str, label: str, entrypoint: str = "") -> str:
    """``base`` with one more label: the same files and engine, another digest."""

    def buildah(*args: str) -> str:
        proc = subprocess.run(["buildah", *args], capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    container = buildah("from", "--pull-never", base.removeprefix("sha256:"))
    buildah("config", "--label", f"io.websonic.test.rebuild={label}", container)
    if entrypoint:
        buildah("config", "--entrypoint", json.dumps([entrypoint]), container)
    tag = f"localhost/websonic/test-postgresql:{label}"
    image = buildah("commit", "-q", "--rm", container, tag)
    return "sha256:" + image.removeprefix("sha256:")


def copies(shop: Shop) -> list[str]:
    """The database's data folder and the copies of it beside."""
    listing = shop.server.sh(f"ls /var/lib/websonic/sites/{shop.name}").split()
    return [name for name in listing if name.startswith("database")]


def products(shop: Shop) -> str:
    return shop.server.get("/").text


@pytest.mark.hosts
def test_finding7_a_major_database_version_is_refused_before_anything_changes(
    shop: Shop, newer_postgresql: NewBase
) -> None:
    newer_postgresql.add("major", version="16.4-1.pgdg120+1")
    shop.site.build()  # its release carries "PostgreSQL 16"
    before = (shop.state(), shop.unit(), shop.database_image())
    proc = shop.deploy()
    assert proc.returncode == 14, proc.stderr
    assert "needs postgresql 16, but the database of" in proc.stderr
    assert "here is postgresql 15" in proc.stderr and "websonic db migrate" in proc.stderr
    assert (shop.state(), shop.unit(), shop.database_image()) == before
    assert shop.database_image().endswith(shop.original)
    log = shop.server.sh(f"cat /var/log/websonic/{shop.name}.log")
    last_run = log.rsplit(" install of ", 1)[-1]
    assert "preflight" not in last_run and "pulling" not in last_run  # refused first
    assert "Chaise 🪑" in products(shop)


@pytest.mark.hosts
def test_finding7_a_database_update_whose_release_fails_its_health_check_is_put_back(
    shop: Shop, newer_postgresql: NewBase
) -> None:
    assert shop.database_image().endswith(shop.original)
    unit, served = shop.unit(), shop.state()["active_release"]
    newer_postgresql.add("minor")
    wsgi = (shop.site.source / "wsgi.py").read_text()
    # Release N writes to its database when it starts (as a migration would), then is never
    # healthy: its row must be gone with the new image.
    shop.site.edit(
        "wsgi.py",
        lambda text: (
            text.replace('conn.execute("SELECT 1")', 'conn.execute("SELECT 1/0")')
            + '\nwith connect() as _c:\n    _c.execute("INSERT INTO products (name, price) '
            "VALUES ('from the bad release', 1)\")\n"
        ),
    )
    try:
        release = shop.site.build()
    finally:
        (shop.site.source / "wsgi.py").write_text(wsgi)

    proc = shop.deploy("--health-timeout", "20")
    assert proc.returncode == 14, proc.stderr
    assert f"release {release} failed its health check" in proc.stderr
    assert f"release {served} keeps serving" in proc.stderr
    assert "the database is back on its previous image with its data" in proc.stderr
    log = shop.server.sh(f"cat /var/log/websonic/{shop.name}.log").rsplit(" install of ", 1)[-1]
    assert f"image changes from {shop.original} to sha256:" in log
    assert "copied the database's data" in log and "starting the postgresql database" in log
    print(*(line for line in log.splitlines() if "copied the database" in line))  # its time

    assert shop.database_image().endswith(shop.original)  # the previous image …
    assert shop.unit() == unit  # … by its previous unit …
    page = products(shop)  # at once: the database kept its address and MAC address
    assert "Chaise 🪑" in page and "from the bad release" not in page  # … on the previous data
    state = shop.state()
    assert state["database_digest"] == shop.original and state["active_release"] == served
    assert state["database_previous_digest"] == ""
    assert copies(shop) == ["database", "database.failed"]  # what the new image left, aside


@pytest.mark.hosts
def test_finding7_a_new_database_image_that_is_not_healthy_is_put_back(
    shop: Shop, newer_postgresql: NewBase
) -> None:
    assert shop.database_image().endswith(shop.original)
    unit, served = shop.unit(), shop.state()["active_release"]
    newer_postgresql.add("broken", entrypoint="/bin/false")  # the server never starts
    release = shop.site.build()

    proc = shop.deploy("--health-timeout", "15")
    assert proc.returncode == 14, proc.stderr
    assert f"of release {release} did not become healthy: the database is back on its" in (
        proc.stderr
    )
    assert f"with its data; release {served} keeps serving" in proc.stderr
    assert shop.database_image().endswith(shop.original) and shop.unit() == unit
    state = shop.state()
    assert state["database_digest"] == shop.original and state["active_release"] == served
    assert "Chaise 🪑" in products(shop)


@pytest.mark.hosts
def test_finding7_a_database_update_stays_once_its_release_serves_and_rollback_returns(
    shop: Shop, newer_postgresql: NewBase
) -> None:
    """After the update the copy is gone; `websonic rollback` returns to the previous release
    and its database image, on the data as it is (the same major version reads it)."""
    newer_postgresql.add("update")
    shop.site.edit("wsgi.py", lambda text: text.replace('"Products"', '"Our products"'))
    release = shop.site.build()
    proc = shop.deploy()
    assert proc.returncode == 0, proc.stderr
    updated = shop.state()
    assert updated["active_release"] == str(release)
    assert updated["database_digest"] != shop.original
    assert shop.database_image().endswith(updated["database_digest"])
    assert updated["database_version"] == "15" and updated["database_previous_digest"] == ""
    assert copies(shop) == ["database"]
    page = products(shop)
    assert "Our products" in page and "Chaise 🪑" in page
    shop.server.post("/products", {"name": "Tabouret", "price": "19.00"})

    back = shop.agency.cli.json("rollback", shop.site.ref, "--host", shop.server.ref)
    assert back["status"] == "succeeded", back
    assert shop.database_image().endswith(shop.original)
    page = products(shop)
    assert "Our products" not in page and "Chaise 🪑" in page and "Tabouret" in page
    assert copies(shop) == ["database"]
