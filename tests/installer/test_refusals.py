"""Bad servers, bad plans, bad images, bad luck: each refused clearly, with nothing changed."""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from websonic.builds.service import get_release
from websonic.builds.signing import Signer, public_pem
from websonic.hosting import spec
from websonic.installer import bundle, plan
from websonic.platform import Platform, open_platform
from websonic.settings import Settings
from websonic.sites.service import get_site

from installer.conftest import Agency, Server, Site, new_server
from installer.test_one_liner import one_liner
from testbed.hosts import HostFactory

pytestmark = pytest.mark.hosts


def refused(agency: Agency, site: Site, server: Server, code: int = 14) -> str:
    proc = agency.cli.run("deploy", site.ref, "--host", server.ref, check=False)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stderr


def nothing_installed(server: Server) -> None:
    assert server.sh("dpkg-query -W caddy", check=False) == ""
    made = server.sh("find /etc/websonic /var/lib/websonic -mindepth 1 2>/dev/null", check=False)
    assert made == "" and server.sh("test -e /etc/websonic || echo none") == "none\n"
    assert server.sh("podman ps -aq") == ""


# --- the server does not fit ------------------------------------------------------------------


def test_too_little_disk_is_refused_by_preflight_and_by_the_installer(
    agency: Agency, host_factory: HostFactory, brochure: Site
) -> None:
    small = ("--mount", "type=tmpfs,destination=/var/lib/websonic,tmpfs-size=64m")
    server = new_server(agency, host_factory, extra_args=small)
    message = refused(agency, brochure, server)
    assert "does not meet" in message and "disk: 64 MiB free on /var/lib/websonic" in message
    out = one_liner(agency, server, brochure, agency.code(brochure.ref))  # its own checks
    assert re.search(r"FAIL\s+disk\s+64 MiB free", out), out
    assert "status=failed" in out
    nothing_installed(server)


def test_too_little_memory_is_refused(
    agency: Agency, host_factory: HostFactory, brochure: Site
) -> None:
    server = new_server(agency, host_factory, memory="512m")
    message = refused(agency, brochure, server)
    assert "memory: 512 MiB, needs >= 1024 MiB" in message
    nothing_installed(server)


def test_port_80_taken_is_refused(agency: Agency, server: Server, brochure: Site) -> None:
    server.sh("systemd-run --unit=squatter python3 -m http.server 80 && sleep 1")
    message = refused(agency, brochure, server)
    assert "port 80: in use by python3" in message
    nothing_installed(server)


def test_unsupported_os_is_refused(agency: Agency, server: Server, brochure: Site) -> None:
    server.sh("sed -i 's/^ID=.*/ID=fedora/; s/^VERSION_ID=.*/VERSION_ID=\"39\"/' /etc/os-release")
    message = refused(agency, brochure, server)
    assert "os: fedora 39" in message
    nothing_installed(server)


def test_wrong_architecture_is_refused_by_the_installer(
    agency: Agency, server: Server, brochure: Site
) -> None:
    code = agency.code(brochure.ref)
    server.host.put(agency.ca, "/root/agency-ca.pem")
    url, header = f"{agency.url}/install/{brochure.ref}", f"Authorization: Bearer {code}"
    out = server.host.ssh(  # linux32: this server now says it is an i686 machine
        f"curl -fsSL --cacert /root/agency-ca.pem -H '{header}' '{url}' | linux32 sh", check=False
    )
    assert out.returncode == 3, out.stdout
    assert re.search(r"FAIL\s+arch\s+i686", out.stdout)
    nothing_installed(server)


# --- the network, the registry and the host key ------------------------------------------------


def test_no_route_to_the_registry_is_refused_before_any_change(
    agency: Agency, server: Server, brochure: Site
) -> None:
    gateway, port = agency.url.removeprefix("https://").split(":")
    server.sh(f"iptables -I OUTPUT -d {gateway} -p tcp --dport {port} -j REJECT")
    message = refused(agency, brochure, server)
    assert "cannot reach the registry" in message
    nothing_installed(server)


def test_a_changed_host_key_is_refused(agency: Agency, server: Server, brochure: Site) -> None:
    server.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    message = refused(agency, brochure, server, code=13)
    assert "has CHANGED" in message and "websonic host trust" in message
    server.host.known_hosts_path.write_text(
        f"{server.address} {server.host.exec('cat', '/etc/ssh/ssh_host_ed25519_key.pub').stdout}"
    )
    nothing_installed(server)


# --- plans and images that do not match their signatures --------------------------------------


@pytest.fixture
def platform(agency: Agency) -> Iterator[Platform]:
    """The agency's state, opened in this process (to forge what an attacker would send)."""
    opened = open_platform(Settings(home=agency.cli.home, **settings_of(agency)))
    yield opened
    opened.close()


def settings_of(agency: Agency) -> dict[str, object]:
    return {
        "public_url": agency.cli.extra["WEBSONIC_PUBLIC_URL"],
        "public_ca_file": agency.cli.extra["WEBSONIC_PUBLIC_CA_FILE"],
    }


def push(server: Server, site: Site, files: bundle.Bundle) -> subprocess.CompletedProcess[str]:
    """Run the installer on ``files`` as `websonic deploy` does (over SSH, on stdin)."""
    script = bundle.runner_script(files, site.ref).decode()
    return server.host.ssh("sh -s", input=script, check=False, timeout=600)


def signed_bundle(
    platform: Platform, site: Site, number: int, signer: Signer | None = None, **changes: object
) -> bundle.Bundle:
    signer = signer or platform.signer
    with platform.sessions() as session:
        record = get_site(session, site.ref)
        release = get_release(session, record, number)
        requirements = spec.site_requirements(session, site.ref)
        made = plan.make_plan(
            record, release, requirements, public_url=platform.settings.require_public_url()
        )
        made = dataclasses.replace(made, **changes)  # type: ignore[arg-type]
        return bundle.make_bundle(
            made, sign=signer.sign, public_pem=public_pem(signer.public), secrets={},
            pull_user="acme", pull_token="wst_0123456789abcdef_" + "A" * 43,
            ca_pem=platform.settings.public_ca_pem(),
        )  # fmt: skip


def test_tampered_plan_and_mismatched_signatures_run_nothing(
    agency: Agency, server: Server, platform: Platform
) -> None:
    site = agency.site("static-brochure")
    site.build()
    site.edit("index.html", lambda text: text + "<!-- two -->")
    site.build()
    genuine = signed_bundle(platform, site, 2)

    tampered = dict(genuine.files)
    tampered["plan"] = genuine.files["plan"].replace(b"port=8080", b"port=8081")
    out = push(server, site, bundle.Bundle(tampered, genuine.args))
    assert out.returncode == 4 and "signature does not verify" in out.stdout, out.stdout

    with platform.sessions() as session:  # release 1's signed statement, release 2's digest
        first = get_release(session, get_site(session, site.ref), 1)
        other = (first.signed_payload.encode(), first.signature)
    swapped = signed_bundle(platform, site, 2, payload=other[0], signature=other[1])
    out = push(server, site, swapped)
    assert out.returncode == 4 and "does not cover the image digest" in out.stdout, out.stdout
    nothing_installed(server)

    stale = signed_bundle(platform, site, 2, issued_at=int(time.time()) - 7200)
    out = push(server, site, stale)  # a genuine plan, two hours old: could be a replay
    assert out.returncode == 4 and "refusing an old plan" in out.stdout, out.stdout

    stranger = Signer(Ed25519PrivateKey.generate())  # a plan signed by another key, with it:
    out = push(server, site, signed_bundle(platform, site, 2, stranger))
    assert out.returncode == 4 and "release signature does not verify" in out.stdout, out.stdout
    nothing_installed(server)
    agency.cli.run("deploy", site.ref, "--host", server.ref)  # the agency's key is pinned now
    out = push(server, site, signed_bundle(platform, site, 2, stranger))
    assert out.returncode == 4 and "not the one pinned" in out.stdout, out.stdout


# --- interrupted runs ---------------------------------------------------------------------------


def wait_for_log(server: Server, site: Site, text: str, timeout: float = 120) -> None:
    log = f"/var/log/websonic/{site.ref.replace('/', '-')}.log"
    deadline = time.monotonic() + timeout
    while text not in server.sh(f"cat {log} 2>/dev/null", check=False):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.2)


def throttle(server: Server) -> None:
    """Make the server's network slow (1 Mbit/s), so a run is still going when killed."""
    server.sh("tc qdisc add dev eth0 root tbf rate 1mbit burst 32kbit latency 400ms")


def unthrottle(server: Server) -> None:
    server.sh("tc qdisc del dev eth0 root")


def kill_installer(server: Server) -> None:
    server.sh("pkill -KILL -f 'install.sh|apt-get|dpkg|http'", check=False)


def deploy_in_background(
    agency: Agency, site: Site, server: Server, *args: str
) -> subprocess.Popen:
    argv = ["deploy", site.ref, "--host", server.ref, *args]
    return subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", *argv],
        env=agency.cli.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def only_one_slot_serves(server: Server, site: Site) -> None:
    name = site.ref.replace("/", "-")
    running = server.sh("podman ps --format '{{.Names}}'").split()
    assert len([n for n in running if n.startswith(f"websonic-{name}-")]) == 1, running
    assert "pending_slot=\n" in server.sh(f"cat /etc/websonic/sites/{name}/state")


def test_installer_killed_while_installing_packages_then_run_again(
    agency: Agency, server: Server, brochure: Site
) -> None:
    throttle(server)
    deploy = deploy_in_background(agency, brochure, server)
    wait_for_log(server, brochure, "installing packages")
    kill_installer(server)
    _, stderr = deploy.communicate(timeout=120)
    assert deploy.returncode == 14, stderr
    listing = agency.cli.json("deployment", "list", brochure.ref)["deployments"]
    assert listing[-1]["status"] == "failed"

    unthrottle(server)
    assert agency.cli.json("deploy", brochure.ref, "--host", server.ref)["status"] == "succeeded"
    assert "Furniture made to last" in server.get("/").text
    only_one_slot_serves(server, brochure)


def test_installer_killed_while_a_release_starts_then_run_again(
    agency: Agency, server: Server
) -> None:
    site = agency.site("static-brochure")
    healthz = (site.source / "healthz").read_text()
    (site.source / "healthz").unlink()
    site.build()  # release 1 never becomes healthy: the run waits for it
    (site.source / "healthz").write_text(healthz)
    site.build()
    deploy = deploy_in_background(agency, site, server, "--release", "1", "--health-timeout", "600")
    wait_for_log(server, site, "waiting up to")
    kill_installer(server)
    deploy.communicate(timeout=120)
    assert deploy.returncode == 14

    assert agency.cli.json("deploy", site.ref, "--host", server.ref)["release"] == 2
    assert server.get("/healthz").status_code == 200
    only_one_slot_serves(server, site)
    log = server.sh(f"cat /var/log/websonic/{site.ref.replace('/', '-')}.log")
    assert "left slot blue half-started: removing it" in log


def test_deploy_command_killed_is_recorded_failed_and_the_next_deploy_works(
    agency: Agency, server: Server, brochure: Site
) -> None:
    throttle(server)
    deploy = deploy_in_background(agency, brochure, server)
    wait_for_log(server, brochure, "installing packages")
    deploy.send_signal(signal.SIGKILL)
    deploy.communicate()
    listing = agency.cli.json("deployment", "list", brochure.ref)["deployments"]
    assert listing[-1]["status"] == "failed" and "Interrupted" in listing[-1]["detail"]
    unthrottle(server)
    wait_for_log(server, brochure, "WEBSONIC-RESULT")  # the server finished the run by itself
    again = agency.cli.json("deploy", brochure.ref, "--host", server.ref)
    assert again["status"] in ("succeeded", "unchanged")
    assert server.get("/").status_code == 200
    only_one_slot_serves(server, brochure)
