"""host add / trust / check against real disposable servers over real SSH."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
from pathlib import Path

import pytest

from websonic.accounts.service import add_customer
from websonic.hosting import hosts, preflight
from websonic.hosting.requirements import Requirements
from websonic.platform import Platform

from conftest import EXAMPLES, Cli
from testbed.hosts import TestHost

pytestmark = pytest.mark.hosts


def _free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _add(cli: Cli, host: TestHost, name: str = "web1") -> dict:
    return cli.json(
        "host", "add", f"acme/{name}", "--ssh", host.ssh_target(), "--key", str(host.key_path)
    )


@pytest.fixture
def acme(cli: Cli) -> Cli:
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    return cli


def test_add_pins_host_key_and_proves_login(acme: Cli, test_host: TestHost) -> None:
    added = _add(acme, test_host)
    real = test_host.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    assert added["host_key"] == " ".join(real)
    assert added["fingerprint"].startswith("SHA256:")
    shown = acme.json("host", "show", "acme/web1")
    assert shown["ssh"] == f"root@{test_host.address}:22"
    assert [h["host"] for h in acme.json("host", "list", "acme")["hosts"]] == ["acme/web1"]
    assert "already exists" in acme.fails(
        "host", "add", "acme/web1", "--ssh", test_host.ssh_target(), code=4
    )


def test_wrong_key_is_refused_and_nothing_stored(
    acme: Cli, test_host: TestHost, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    err = acme.fails(
        "host", "add", "acme/web1", "--ssh", test_host.ssh_target(), "--key", str(other), code=12
    )
    assert "refused the login" in err
    assert acme.json("host", "list", "acme")["hosts"] == []
    err = acme.fails(
        "host", "add", "acme/web1", "--ssh", test_host.ssh_target(), "--key", f"{other}.pub",
        code=2,
    )  # fmt: skip
    assert "not an SSH private key" in err


def test_invalid_input_is_refused(acme: Cli, tmp_path: Path) -> None:
    assert "port" in acme.fails("host", "add", "acme/web1", "--ssh", "root@127.0.0.1:70000", code=2)
    assert "USER@HOST" in acme.fails("host", "add", "acme/web1", "--ssh", "127.0.0.1", code=2)
    assert "does not exist" in acme.fails(
        "host", "add", "acme/web1", "--ssh", "root@127.0.0.1", "--key", str(tmp_path / "no"),
        code=2,
    )  # fmt: skip
    assert "Invalid host name" in acme.fails("host", "add", "acme/Web_1", "--ssh", "r@x", code=2)


def test_unreachable_port_is_a_clear_error(acme: Cli) -> None:
    port = _free_local_port()
    err = acme.fails("host", "add", "acme/web1", "--ssh", f"root@127.0.0.1:{port}", code=12)
    assert f"127.0.0.1:{port} refused the connection" in err
    assert acme.json("host", "list", "acme")["hosts"] == []


WRONG = "SHA256:" + "A" * 43


def test_finding9_add_pins_only_the_expected_fingerprint(acme: Cli, test_host: TestHost) -> None:
    """--fingerprint: a server showing another key is refused with both fingerprints and
    nothing stored; the right one (read on the server) is pinned."""
    base = (
        "host",
        "add",
        "acme/web1",
        "--ssh",
        test_host.ssh_target(),
        "--key",
        str(test_host.key_path),
    )
    real = test_host.host_key_fingerprint()
    err = acme.fails(*base, "--fingerprint", WRONG, code=13)
    assert WRONG in err and real in err and "nothing was stored" in err
    assert acme.json("host", "list", "acme")["hosts"] == []
    assert "Invalid fingerprint" in acme.fails(*base, "--fingerprint", "MD5:aa:bb", code=2)
    added = acme.json(*base, "--fingerprint", real)
    assert added["fingerprint"].split()[0] == real


def test_finding9_trust_shows_old_and_new_fingerprints_before_replacing(
    acme: Cli, test_host: TestHost
) -> None:
    old = _add(acme, test_host)["fingerprint"].split()[0]
    test_host.exec("sh", "-c", "rm /etc/ssh/ssh_host_*; ssh-keygen -A; systemctl restart ssh")
    err = acme.fails("host", "check", "acme/web1", "--site", "acme/brochure", code=13)
    new = test_host.host_key_fingerprint()
    assert "CHANGED" in err
    assert old in err and new in err
    assert "websonic host trust acme/web1" in err

    unconfirmed = acme.fails("host", "trust", "acme/web1", code=2)  # no terminal to confirm at
    assert f"pinned host key {old}" in unconfirmed and f"server now shows {new}" in unconfirmed
    assert f"--fingerprint {new}" in unconfirmed
    wrong = acme.fails("host", "trust", "acme/web1", "--fingerprint", WRONG, code=13)
    assert new in wrong and WRONG in wrong
    acme.fails("host", "check", "acme/web1", "--site", "acme/brochure", code=13)  # still pinned

    trusted = acme.run("host", "trust", "acme/web1", "--fingerprint", new, "--json")
    assert old in trusted.stderr and new in trusted.stderr  # shown before the replacement
    data = json.loads(trusted.stdout)
    assert data["old_fingerprint"].split()[0] == old and data["fingerprint"].split()[0] == new
    acme.run("host", "check", "acme/web1", "--site", "acme/brochure")


def test_check_fresh_host_passes(acme: Cli, test_host: TestHost) -> None:
    _add(acme, test_host)
    report = acme.json("host", "check", "acme/web1", "--site", "acme/brochure")
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert report["ok"] is True, report
    for name in ("os", "arch", "runtime", "disk", "inodes", "port 80", "port 443", "clock"):
        assert statuses[name] == "pass", (name, report)
    facts = acme.json("host", "show", "acme/web1")["facts"]
    assert facts["os_id"] == "debian" and facts["read_at"]


def test_check_fails_when_port_80_is_taken(acme: Cli, test_host: TestHost) -> None:
    _add(acme, test_host)
    test_host.ssh("systemd-run --unit=web80 python3 -m http.server 80")
    test_host.ssh("for i in $(seq 50); do ss -ltnH | grep -q ':80 ' && exit 0; sleep 0.2; done")
    proc = acme.run("host", "check", "acme/web1", "--site", "acme/brochure", "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["port 80"]["status"] == "fail"
    assert checks["port 443"]["status"] == "pass"
    human = acme.run("host", "check", "acme/web1", "--site", "acme/brochure", check=False)
    assert human.returncode == 1 and "FAIL" in human.stdout and "not ready" in human.stdout
    # without ss, the script reads /proc/net/tcp instead
    test_host.exec("sh", "-c", 'mv "$(command -v ss)" /root/ss.off')
    proc = acme.run("host", "check", "acme/web1", "--site", "acme/brochure", "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["port 80"]["status"] == "fail"
    assert checks["port 443"]["status"] == "pass"
    assert acme.json("host", "show", "acme/web1")["facts"]["listening"] == [22, 80]


def test_too_little_disk_fails_with_expected_and_found(
    platform: Platform, test_host: TestHost
) -> None:
    ssh_dir = platform.settings.home / "ssh"
    with platform.transaction() as session:
        add_customer(session, "acme", None, actor="test")
        host = hosts.add_host(
            session, platform.runner, ssh_dir, "acme/web1", test_host.ssh_target(),
            key_path=test_host.key_path, actor="test",
        )  # fmt: skip
        huge = dataclasses.replace(Requirements(site="acme/brochure"), disk_mib=100_000_000)
        report = preflight.check_host(session, platform.runner, ssh_dir, host, huge)
    disk = next(c for c in report.checks if c.name == "disk")
    assert not report.ok
    assert disk.status == "fail"
    assert disk.expected == ">= 100000000 MiB free"
    assert disk.found.endswith("MiB free on /var/lib")
