"""`websonic deploy` onto a truly fresh server (issue 9): a minimal Debian 12 with systemd and
sshd only — no podman, no netavark, no rsync, no Caddy, its package lists never fetched.

Each site gets its own minimal server, so that each engine is shown from nothing: a server is
cheap (it boots in ~2 s and the installer's packages download in ~10 s from Debian's mirror, see
docs/testing.md), and a database site deployed after a static one on the same server would find
podman and netavark already installed, which is what hid the CNI bug of issue 9.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from installer.conftest import Agency, Server, Site, apt_updates
from installer.test_database_update import NewBase
from installer.test_deploy import runtime_facts

pytestmark = pytest.mark.hosts

#: What running a site needs on the server, installed by the installer (rsync: with volumes).
RUNTIME = ("podman", "runc", "netavark", "aardvark-dns", "caddy")
PACKAGES = r"dpkg-query -W -f '${Package} ${Status}\n' | grep ' installed$' | cut -d' ' -f1"


def deploy(agency: Agency, site: Site, server: Server) -> dict:
    return agency.cli.json("deploy", site.ref, "--host", server.ref, timeout=1800)


def installed(server: Server) -> set[str]:
    return set(server.sh(PACKAGES).split())


def assert_installed_from_nothing(server: Server, *, volumes: bool) -> None:
    """Everything the site needs is there, podman networks through netavark, and the package
    lists were fetched exactly once. (The installer's containers.conf.d drop-in is written only
    when podman had picked CNI; installed together with netavark, podman picks netavark.)"""
    packages = installed(server)
    assert set(RUNTIME) <= packages, sorted(set(RUNTIME) - packages)
    assert ("rsync" in packages) == volumes
    backend = server.sh("podman info --format '{{.Host.NetworkBackend}}'").strip()
    assert backend == "netavark"
    assert apt_updates(server) == 1


def assert_second_deploy_changes_nothing(agency: Agency, site: Site, server: Server) -> None:
    facts, packages = runtime_facts(server, site), installed(server)
    again = deploy(agency, site, server)
    assert again["status"] == "unchanged", again
    assert runtime_facts(server, site).splitlines() == facts.splitlines()
    assert installed(server) == packages
    assert apt_updates(server) == 1  # the lists are fresh now: not fetched again


def test_static_site_from_nothing_to_serving(
    agency: Agency, fresh_server: Server, brochure: Site
) -> None:
    assert not {"podman", "caddy"} & installed(fresh_server)
    result = deploy(agency, brochure, fresh_server)
    assert (result["status"], result["release"]) == ("succeeded", 1), result
    assert "Furniture made to last" in fresh_server.get("/").text
    assert_installed_from_nothing(fresh_server, volumes=False)
    assert_second_deploy_changes_nothing(agency, brochure, fresh_server)


@pytest.mark.parametrize(
    ("example", "health", "form", "page"),
    [
        ("python-shop", "/healthz", ("/products", {"name": "Chaise 🪑", "price": "49.90"}), "/"),
        ("php-guestbook", "/healthz.php", ("/", {"name": "Zoé", "message": "Très bien 🎉"}), "/"),
    ],
    ids=["postgresql", "mariadb"],
)
def test_database_site_from_nothing_to_serving(
    agency: Agency,
    fresh_server: Server,
    database_bases: None,
    example: str,
    health: str,
    form: tuple[str, dict[str, str]],
    page: str,
) -> None:
    site = agency.site(example)
    site.build()
    assert "podman" not in installed(fresh_server)
    result = deploy(agency, site, fresh_server)
    assert result["status"] == "succeeded", result
    assert fresh_server.get(health).text == "ok\n"
    path, data = form
    assert fresh_server.post(path, data).status_code in (200, 303)
    assert next(iter(data.values())) in fresh_server.get(page).text  # written to its database
    assert_installed_from_nothing(fresh_server, volumes=True)
    name = site.ref.replace("/", "-")
    assert fresh_server.sh(f"systemctl is-active websonic-{name}-db").strip() == "active"
    assert_second_deploy_changes_nothing(agency, site, fresh_server)


@pytest.fixture
def broken_postgresql(agency: Agency, database_bases: None) -> Iterator[NewBase]:
    """The agency's newest PostgreSQL base is one whose server never starts (put back after)."""
    bases = NewBase(agency.cli.home / "state.db")
    try:
        bases.add("never-starts", entrypoint="/bin/false")
        yield bases
    finally:
        bases.remove()


def unit_state(server: Server, unit: str) -> tuple[str, str]:
    """(ActiveState, NRestarts) of ``unit`` on the server."""
    shown = server.sh(f"systemctl show -p ActiveState -p NRestarts {shlex.quote(unit)}")
    values = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    return values["ActiveState"], values["NRestarts"]


def test_a_database_that_never_starts_is_stopped_and_reported_not_left_restarting(
    agency: Agency, fresh_server: Server, broken_postgresql: NewBase
) -> None:
    site = agency.site("python-shop")
    site.build()  # carries the broken PostgreSQL image
    proc = agency.cli.run(
        "deploy", site.ref, "--host", fresh_server.ref, "--health-timeout", "15",
        check=False, timeout=1800,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    assert "the postgresql database did not start" in proc.stderr, proc.stderr
    assert "it was stopped" in proc.stderr
    name = site.ref.replace("/", "-")
    unit = f"websonic-{name}-db.service"
    state, restarts = unit_state(fresh_server, unit)
    assert state not in ("active", "activating", "reloading"), (state, restarts)
    fresh_server.sh("sleep 8")  # four times the unit's RestartSec: a restarting unit would show
    assert unit_state(fresh_server, unit) == (state, restarts)
