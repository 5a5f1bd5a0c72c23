"""The example sites with a database: installed from nothing, written to, updated, kept.

python-shop runs with PostgreSQL and php-guestbook with MariaDB, each from the database image
its release carries (pulled by digest with the customer's token, signature checked), in a
container reachable only by the site (no port on the server), with a password made on the
server that never leaves it.
"""

from __future__ import annotations

import shlex

import pytest

from installer.conftest import Agency, Server, Site
from installer.load import Load

pytestmark = pytest.mark.hosts


def deploy(agency: Agency, site: Site, server: Server) -> dict:
    return agency.cli.json("deploy", site.ref, "--host", server.ref, timeout=1800)


def database_secrets_stay_on_the_server(agency: Agency, server: Server, site: Site) -> None:
    name = site.ref.replace("/", "-")
    password = server.sh(f"cat /etc/websonic/sites/{name}/db-password").strip()
    assert len(password) >= 32
    assert server.sh(f"stat -c %a /etc/websonic/sites/{name}/db-password").strip() == "600"
    logs = server.sh(f"cat /var/log/websonic/{name}.log; journalctl --no-pager -u 'websonic-*'")
    assert password not in logs
    assert password not in server.sh("ps auxww")
    assert password not in agency.cli.run("job", "list", "--json").stdout
    listening = server.sh("ss -ltnH")
    assert ":5432 " not in listening and ":3306 " not in listening  # only the site reaches it


def database_found_without_dns(server: Server, site: Site) -> None:
    """The site finds `db` in its /etc/hosts: podman's DNS server loses queries while it
    reloads (at each container start and stop), which would stall requests during updates."""
    name = site.ref.replace("/", "-")
    network = f"websonic-{name}"
    fmt = '{{.DNSEnabled}} {{index .Labels "io.websonic.database"}}'
    inspected = server.sh(f"podman network inspect --format {shlex.quote(fmt)} {network}")
    dns, address = inspected.split()
    assert dns == "false"
    ip = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    assert server.sh(f"podman inspect --format {shlex.quote(ip)} websonic-{name}-db").strip() == (
        address
    )
    slots = server.sh(f"podman ps --format '{{{{.Names}}}}' --filter name=websonic-{name}-[bg]")
    hosts = server.sh(f"podman exec {slots.split()[0]} cat /etc/hosts").split("\n")
    assert any(line.split()[:2] == [address, "db"] for line in hosts if line.strip()), hosts


def test_python_shop_with_postgresql(agency: Agency, server: Server, database_bases: None) -> None:
    site = agency.site("python-shop")
    site.build()
    first = deploy(agency, site, server)
    assert first["status"] == "succeeded"
    assert server.get("/healthz").text == "ok\n"
    added = server.post("/products", {"name": "Chaise 🪑", "price": "49.90"})
    assert added.status_code in (200, 303)
    assert "Chaise 🪑" in server.get("/").text
    database_secrets_stay_on_the_server(agency, server, site)
    database_found_without_dns(server, site)

    site.edit("wsgi.py", lambda text: text.replace('"Products"', '"Our products"'))
    site.build()
    with Load(f"https://{server.address}/healthz", server.caddy_root()) as load:
        assert deploy(agency, site, server)["release"] == 2
    assert load.failed == [], load.failed[:3]
    page = server.get("/").text
    assert "Our products" in page and "Chaise 🪑" in page  # the data outlived the update


def test_php_guestbook_with_mariadb(agency: Agency, server: Server, database_bases: None) -> None:
    site = agency.site("php-guestbook")
    site.build()
    assert deploy(agency, site, server)["status"] == "succeeded"
    assert server.get("/healthz.php").text == "ok\n"
    posted = server.post("/", {"name": "Zoé", "message": "Très bien 🎉 — merci"})
    assert posted.status_code in (200, 303)
    assert "Très bien 🎉 — merci" in server.get("/").text  # utf8mb4 end to end
    database_secrets_stay_on_the_server(agency, server, site)
    database_found_without_dns(server, site)
    name = site.ref.replace("/", "-")
    again = deploy(agency, site, server)
    assert again["status"] == "unchanged"
    assert server.sh(f"systemctl is-active websonic-{name}-db").strip() == "active"
