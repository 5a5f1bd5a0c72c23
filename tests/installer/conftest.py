"""An agency and its customers' servers, for the installer's end-to-end tests.

The agency is one state folder for the whole session, with `websonic serve` running over HTTPS
(a certificate of a private CA, as an agency with its own PKI has) on the test network's
gateway, where the disposable servers reach it: portal, registry and installer endpoints.
Each test gets fresh servers, registered with `websonic host add`, and its own sites (copies
of the examples it may edit), so tests do not depend on each other. ``server`` already runs
podman (the tests of what a deploy does); ``fresh_server`` is a minimal Debian with nothing
installed and empty package lists (the tests of installing everything from nothing).
"""

from __future__ import annotations

import itertools
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import EXAMPLES, Cli
from servers import free_port, serving
from testbed.hosts import HostFactory, TestHost, TestNetwork
from testbed.image import HostImage
from testbed.tls import make_server_tls

CADDY_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
_numbers = itertools.count(1)


@dataclass
class AgencyCli(Cli):
    """The `websonic` command of the agency, which knows its public address and CA."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**self.extra, **extra)


@dataclass
class Agency:
    cli: AgencyCli
    url: str
    ca: Path
    sources: Path

    def site(self, example: str, *, customer: str = "acme", name: str | None = None) -> Site:
        """A new site from a private copy of ``examples/<example>`` (the test may edit it)."""
        slug = name or f"{example.split('-')[-1]}{next(_numbers)}"
        source = self.sources / f"{customer}-{slug}"
        shutil.copytree(EXAMPLES / example, source)
        ref = f"{customer}/{slug}"
        self.cli.run("site", "add", ref, "--source", str(source))
        return Site(self, ref, source)

    def code(self, site: str) -> str:
        """A one-time install code of ``site`` (CUSTOMER/SITE), for the portal's one-liner."""
        return str(self.cli.json("token", "code", site)["code"])


@dataclass
class Site:
    agency: Agency
    ref: str
    source: Path

    def build(self) -> int:
        """Build the site's source as it is now; the new release's number."""
        return int(self.agency.cli.json("build", self.ref)["release"])

    def edit(self, relative: str, change: Callable[[str], str]) -> None:
        path = self.source / relative
        path.write_text(change(path.read_text()))


@dataclass
class Server:
    """A customer's server registered with the agency as ``ref`` (CUSTOMER/NAME)."""

    host: TestHost
    ref: str

    @property
    def address(self) -> str:
        return self.host.address

    def caddy_root(self) -> ssl.SSLContext:
        """Trust the server's Caddy internal CA (the certificates of ``tls internal``)."""
        pem = self.host.exec("cat", CADDY_ROOT).stdout
        return ssl.create_default_context(cadata=pem)

    def get(self, path: str = "/", *, domain: str | None = None) -> httpx.Response:
        return self.request("GET", path, domain=domain)

    def post(self, path: str, data: dict[str, str], *, domain: str | None = None) -> httpx.Response:
        return self.request("POST", path, domain=domain, data=data)

    def request(
        self, method: str, path: str, *, domain: str | None = None, **kwargs: object
    ) -> httpx.Response:
        """Over HTTPS, the certificate checked (for ``domain`` when given, via SNI)."""
        headers = {"Host": domain} if domain else {}
        extensions = {"sni_hostname": domain} if domain else {}
        with httpx.Client(verify=self.caddy_root(), timeout=30) as client:
            return client.request(
                method, f"https://{self.address}{path}", headers=headers,
                extensions=extensions, **kwargs,  # type: ignore[arg-type]
            )  # fmt: skip

    def sh(self, command: str, check: bool = True) -> str:
        return self.host.ssh(command, check=check).stdout


@pytest.fixture(scope="session")
def agency(
    host_network: TestNetwork, host_image: HostImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Agency]:
    work = tmp_path_factory.mktemp("agency")
    gateway = host_network.bring_up(host_image.ref)
    tls = make_server_tls(work / "tls", gateway)
    port = free_port(gateway)
    url = f"https://{gateway}:{port}"
    cli = AgencyCli(work / "home")
    cli.extra = {"WEBSONIC_PUBLIC_URL": url, "WEBSONIC_PUBLIC_CA_FILE": str(tls.ca)}
    cli.run("init")
    with serving(cli.env(), host=gateway, port=port, tls=tls.files()):
        cli.run("customer", "add", "acme", "--name", "Acme SA")
        cli.run("customer", "add", "globex", "--name", "Globex")
        cli.run("base", "build", "static")
        yield Agency(cli, url, tls.ca, work / "sources")


@pytest.fixture(scope="session")
def database_bases(agency: Agency) -> None:
    """Base images for the sites with a database (cached on the machine after the first run)."""
    agency.cli.run("base", "build", "python", "php", "postgresql", "mariadb", timeout=3600)


@pytest.fixture
def server(agency: Agency, host_factory: HostFactory) -> Server:
    """A fresh Debian server with podman, registered as acme/<name> (its host key pinned)."""
    return new_server(agency, host_factory)


@pytest.fixture
def fresh_server(agency: Agency, minimal_host_factory: HostFactory) -> Server:
    """A minimal Debian server (no podman, no rsync, empty package lists), registered as
    acme/<name>; it counts its `apt-get update` runs (see ``apt_updates``)."""
    fresh = new_server(agency, minimal_host_factory)
    count_apt_updates(fresh)
    return fresh


#: An apt hook on the server that logs every `apt-get update` (a meter; it changes nothing).
APT_UPDATE_METER = "/etc/apt/apt.conf.d/00websonic-test-update-meter"
APT_UPDATE_LOG = "/root/apt-updates.log"


def count_apt_updates(server: Server) -> None:
    hook = f'APT::Update::Pre-Invoke {{ "date +%s >> {APT_UPDATE_LOG}"; }};\n'
    server.host.write_file(APT_UPDATE_METER, hook)


def apt_updates(server: Server) -> int:
    """How many times `apt-get update` ran on ``server`` since it was made."""
    return len(server.sh(f"cat {APT_UPDATE_LOG} 2>/dev/null", check=False).split())


def new_server(
    agency: Agency, factory: HostFactory, customer: str = "acme", **options: object
) -> Server:
    name = f"srv{next(_numbers)}"
    host = factory.create(name, **options)  # type: ignore[arg-type]
    ref = f"{customer}/{name}"
    agency.cli.run("host", "add", ref, "--ssh", host.ssh_target(), "--key", str(host.key_path))
    return Server(host, ref)


@pytest.fixture
def brochure(agency: Agency) -> Site:
    """A static site with one release."""
    site = agency.site("static-brochure")
    site.build()
    return site
