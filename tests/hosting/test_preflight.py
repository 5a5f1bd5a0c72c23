"""The facts parser and the checks on captured output; the facts script run for real (under sh
here, and over SSH on a test host)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from platform import freedesktop_os_release

import pytest

from websonic.accounts.service import add_customer
from websonic.core.runner import Runner
from websonic.hosting import hosts, preflight, spec
from websonic.hosting.models import Host
from websonic.hosting.preflight import (
    FACTS_SCRIPT,
    CheckResult,
    Facts,
    Report,
    apt_components,
    check,
    installed_version,
    parse_facts,
    version_tuple,
)
from websonic.hosting.requirements import Requirements
from websonic.platform import Platform
from websonic.sites.service import add_site

from conftest import EXAMPLES, Cli
from testbed.hosts import TestHost

DEBIAN12 = """\
os_id=debian
os_version=12
arch=x86_64
cpus=2
mem_kib=24683656
data_path=/var/lib
disk_free_kib=78834316
inodes_free=16239935
listen=0.0.0.0:22 [::]:22
podman=4.3.1
network_backend=netavark
containers=0
podman_candidate=4.3.1+ds1-8+deb12u1+b3
netavark_candidate=1.4.0-3
rsync_candidate=3.5.0+ds1-0+deb12u1
netavark=install ok installed 1.4.0-3
rsync=/usr/bin/rsync
os_codename=bookworm
apt_lists=0
apt_lists_age=none
apt_list=deb http://deb.debian.org/debian bookworm main
apt_list=deb http://deb.debian.org/debian bookworm-updates main
apt_list=deb http://security.debian.org/debian-security bookworm-security main
time=1795605726
"""
NO_SS_NO_PODMAN = """\
os_id=ubuntu
os_version=20.04
arch=aarch64
cpus=1
mem_kib=503000
data_path=/var
disk_free_kib=1048576
inodes_free=5000
listen_hex=0016 0050 01BB 0016
podman=
podman_candidate=(none)
time=1795605000
"""
REQ = Requirements(site="acme/brochure")
RSYNC = Requirements(site="acme/shop", rsync=True)  # a site with volumes


def statuses(facts: Facts, requirements: Requirements = REQ) -> dict[str, str]:
    return {c.name: c.status for c in check(requirements, facts)}


def test_parse_debian12() -> None:
    facts = parse_facts(DEBIAN12, local_time=1795605720.4)
    assert (facts.os_id, facts.os_version, facts.arch, facts.cpus) == ("debian", "12", "x86_64", 2)
    assert facts.mem_kib == 24683656 and facts.disk_free_kib == 78834316
    assert facts.listening == (22,)
    assert facts.podman == "4.3.1"
    assert facts.clock_skew == 6


def test_debian12_passes_everything() -> None:
    facts = parse_facts(DEBIAN12, local_time=1795605726)
    assert set(statuses(facts).values()) == {"pass"}
    names = ["os", "arch", "cpus", "memory", "disk", "inodes", "port 80", "port 443"]
    assert list(statuses(facts)) == [*names, "runtime", "network", "clock"]
    assert list(statuses(facts, RSYNC)) == [*names, "runtime", "network", "rsync", "clock"]
    assert set(statuses(facts, RSYNC).values()) == {"pass"}
    assert not any(c.note for c in check(RSYNC, facts))  # everything is there already


def test_proc_net_tcp_ports_and_every_failure() -> None:
    facts = parse_facts(NO_SS_NO_PODMAN, local_time=1795605726)
    assert facts.listening == (22, 80, 443)
    result = {c.name: c for c in check(REQ, facts)}
    for name in ("os", "arch", "memory", "disk", "inodes", "port 80", "port 443", "runtime"):
        assert result[name].status == "fail", name
        assert result[name].hint
    assert result["cpus"].status == "pass"
    assert result["clock"].status == "fail" and result["clock"].found == "-726 s"
    assert result["disk"].expected == ">= 4096 MiB free"
    assert result["disk"].found == "1024 MiB free on /var"


def test_runtime_installable_from_packages() -> None:
    facts = dataclasses.replace(parse_facts(DEBIAN12, local_time=1795605726), podman="")
    runtime = next(c for c in check(REQ, facts) if c.name == "runtime")
    assert runtime.status == "pass"
    assert runtime.found == "installable: podman 4.3.1+ds1-8+deb12u1+b3"
    old = dataclasses.replace(facts, podman_candidate="3.0.1+dfsg1-3+deb11u5")
    assert statuses(old)["runtime"] == "fail"


def test_dns_is_a_warning_only() -> None:
    facts = dataclasses.replace(
        parse_facts(DEBIAN12, local_time=1795605726),
        dns={"shop.example": ["203.0.113.9"], "ok.example": ["198.51.100.7"]},
        address_ips=("198.51.100.7",),
    )
    req = dataclasses.replace(REQ, domains=("shop.example", "ok.example", "none.example"))
    result = statuses(facts, req)
    assert result["dns shop.example"] == "warn"
    assert result["dns ok.example"] == "pass"
    assert result["dns none.example"] == "warn"


def test_garbage_output_fails_cleanly() -> None:
    facts = parse_facts("sh: 1: syntax error\n", local_time=0)
    assert facts == Facts()
    assert statuses(facts)["os"] == "fail"


def test_version_tuple() -> None:
    assert version_tuple("4.3.1+ds1-8+deb12u1+b3") == (4, 3, 1)
    assert version_tuple("1:2.0") == (2, 0)
    assert version_tuple("22.04") == (22, 4)
    assert version_tuple("(none)") == ()


def test_a_one_gib_server_counts_as_one_gib() -> None:
    """MemTotal of a 1 GiB server is ~960 MiB (kernel reservations): it meets 1024 MiB."""
    from websonic.hosting.preflight import Facts, check
    from websonic.hosting.requirements import Requirements

    def memory(mib: int) -> str:
        results = check(Requirements(site="a/b", memory_mib=1024), Facts(mem_kib=mib * 1024))
        return next(r.status for r in results if r.name == "memory")

    assert memory(960) == "pass"
    assert memory(800) == "fail"


# --- package lists, apt sources, network backend, rsync (a truly fresh server) ----------------

#: Captured from the test bed's minimal Debian 12 image (systemd, sshd, curl): no podman,
#: netavark or rsync, package lists never fetched (so apt-cache knows no candidate), the
#: one-line sources mmdebstrap writes.
MINIMAL = """\
os_id=debian
os_version=12
arch=x86_64
cpus=2
mem_kib=24683772
mem_limit_kib=9.0072e+15
data_path=/var/lib
disk_free_kib=80657516
inodes_free=16295816
listen_hex=0016
podman=
podman_candidate=
netavark_candidate=
rsync_candidate=
netavark=
rsync=
os_codename=bookworm
apt_lists=0
apt_lists_age=none
apt_list=deb http://deb.debian.org/debian bookworm main
apt_list=deb http://deb.debian.org/debian bookworm-updates main
apt_list=deb http://security.debian.org/debian-security bookworm-security main
time=1796681815
"""
#: Captured on this project's machines: Debian's deb822 sources (comment lines dropped).
DEB822_SOURCES = [
    "Types: deb",
    "URIs: http://deb.debian.org/debian",
    "Suites: bookworm bookworm-updates",
    "Components: main",
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
    "",
    "Types: deb",
    "URIs: http://deb.debian.org/debian-security",
    "Suites: bookworm-security",
    "Components: main",
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
    "",
]
REFRESH = "package lists will be refreshed (apt-get update), then {} installed"


def captured(base: str, **changes: str | list[str]) -> Facts:
    """``base`` with some keys' lines replaced (a list: one line each; [] drops the key)."""
    lines = [line for line in base.splitlines() if line.partition("=")[0] not in changes]
    for key, value in changes.items():
        lines += [f"{key}={v}" for v in ([value] if isinstance(value, str) else value)]
    return parse_facts("\n".join(lines), local_time=1796681815)


def results(facts: Facts, requirements: Requirements = RSYNC) -> dict[str, CheckResult]:
    return {c.name: c for c in check(requirements, facts)}


@pytest.mark.parametrize("sources", ["one-line", "deb822"])
def test_lists_never_fetched_pass_with_a_refresh_note(sources: str) -> None:
    facts = parse_facts(MINIMAL, local_time=1796681815)
    if sources == "deb822":
        facts = captured(MINIMAL, apt_list=[], apt_sources=DEB822_SOURCES)
    assert (facts.apt_lists, facts.apt_lists_age, facts.lists_stale) == (0, None, True)
    assert facts.apt_components == ("main",) and facts.os_codename == "bookworm"
    assert (facts.podman, facts.netavark, facts.rsync, facts.network_backend) == ("", "", "", "")
    found = results(facts)
    for name, package in (("runtime", "podman"), ("network", "netavark"), ("rsync", "rsync")):
        assert found[name].status == "pass", found[name]
        assert found[name].note == REFRESH.format(package)
        assert "package lists never fetched" in found[name].found
    assert found["runtime"].found == "podman not installed; package lists never fetched"
    assert found["network"].found.startswith("podman not installed; netavark not installed")
    report = Report("acme/web1", "acme/shop", facts, check(RSYNC, facts))
    assert report.ok
    assert report.notes == [
        f"runtime: {REFRESH.format('podman')}",
        f"network: {REFRESH.format('netavark')}",
        f"rsync: {REFRESH.format('rsync')}",
    ]


def test_stale_lists_with_one_line_sources_pass_with_a_refresh_note() -> None:
    stale = captured(
        MINIMAL,
        apt_lists="3",
        apt_lists_age=str(3 * 86400 + 5),
        apt_list="deb [arch=amd64 signed-by=/usr/share/keyrings/d.gpg] "
        "http://deb.debian.org/debian bookworm main contrib",
    )
    assert stale.apt_components == ("contrib", "main") and stale.lists_stale
    found = results(stale)
    assert found["runtime"].status == "pass"
    assert found["runtime"].found == "podman not installed; package lists 72 h old"
    assert found["runtime"].note == REFRESH.format("podman")
    # stale lists that still name a candidate: installable, and refreshed first all the same
    known = dataclasses.replace(stale, podman_candidate="4.3.1+ds1-8+deb12u1+b3")
    runtime = results(known)["runtime"]
    assert runtime.found == "installable: podman 4.3.1+ds1-8+deb12u1+b3"
    assert runtime.note == REFRESH.format("podman")


def test_fresh_lists_without_the_package_fail_with_todays_hint() -> None:
    fresh = captured(MINIMAL, apt_lists="3", apt_lists_age="600")
    assert not fresh.lists_stale
    found = results(fresh)
    for name in ("runtime", "network", "rsync"):
        assert found[name].status == "fail", found[name]
        assert found[name].hint == (
            "Run `apt-get update`, or enable the distribution's main repository."
        )
    assert found["runtime"].found == "podman not installed, not in the package lists"
    # fresh lists that have them: installable, no refresh
    offered = dataclasses.replace(
        fresh,
        podman_candidate="4.3.1+ds1-8+deb12u1+b3",
        netavark_candidate="1.4.0-3",
        rsync_candidate="3.2.7-1+deb12u2",
    )
    found = results(offered)
    assert {found[n].status for n in ("runtime", "network", "rsync")} == {"pass"}
    assert found["runtime"].note == "podman will be installed"
    assert found["rsync"].found == "installable: rsync 3.2.7-1+deb12u2"
    assert found["rsync"].note == "rsync will be installed"


def test_sources_without_main_fail_even_with_stale_lists() -> None:
    only_security = captured(
        MINIMAL,
        apt_list="deb http://deb.debian.org/debian-security bookworm-security main",
    )
    contrib = captured(MINIMAL, apt_list="deb http://deb.debian.org/debian bookworm contrib")
    for facts in (only_security, contrib, captured(MINIMAL, apt_list=[])):
        found = results(facts)
        assert found["runtime"].status == "fail"
        assert found["runtime"].found == (
            "podman not installed, not in the package lists; the apt sources name no bookworm main"
        )
        assert "main repository" in found["runtime"].hint
        assert found["rsync"].status == "fail" and found["network"].status == "fail"


def test_ubuntu_takes_podman_from_universe() -> None:
    main_only = captured(
        MINIMAL,
        os_id="ubuntu",
        os_version="24.04",
        os_codename="noble",
        apt_list="deb http://archive.ubuntu.com/ubuntu noble main restricted",
    )
    found = results(main_only)
    assert found["runtime"].status == "fail" and "noble universe" in found["runtime"].found
    assert found["rsync"].status == "pass"  # rsync is in main
    universe = captured(
        MINIMAL,
        os_id="ubuntu",
        os_version="24.04",
        os_codename="noble",
        apt_list="deb http://archive.ubuntu.com/ubuntu noble main universe",
    )
    assert results(universe)["runtime"].status == "pass"


def test_deb822_sources() -> None:
    lines = [
        "Types: deb-src",
        "URIs: http://deb.debian.org/debian",
        "Suites: bookworm",
        "Components: contrib",
        "",
        "Types: deb",
        "URIs: http://deb.debian.org/debian",
        "Suites: bookworm",
        "Components: non-free",
        "Enabled: no",
        "",
        "types: deb deb-src",
        "URIs: http://deb.debian.org/debian",
        "Suites: bookworm-updates",
        "  bookworm",
        "Components: main",
        "Signed-By:",
        " -----BEGIN PGP PUBLIC KEY BLOCK-----",
        " .",
        " Components: nonsense",
        " -----END PGP PUBLIC KEY BLOCK-----",
        "",
        "",
        "Types: deb",
        "URIs: https://packages.example.com/debian",
        "Suites: acme-tools",
        "Components: extra",
    ]
    assert apt_components([], lines, "bookworm") == ("main",)
    assert apt_components([], lines, "") == ("extra", "main")  # no codename: any suite
    assert apt_components([], lines[:10], "bookworm") == ()  # deb-src and disabled only
    one_line = [
        "deb-src http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm  # no component",
        "deb [ trusted=yes arch=amd64 ] file:/srv/mirror bookworm main universe # comment",
    ]
    assert apt_components(one_line, [], "bookworm") == ("main", "universe")
    aliased = ["deb http://deb.debian.org/debian stable main", "deb http://x.example/ other extra"]
    assert apt_components(aliased, [], "bookworm") == ("main",)  # an alias counts, others not


def test_dpkg_status_of_netavark() -> None:
    assert installed_version("install ok installed 1.4.0-3") == "1.4.0-3"
    assert installed_version("deinstall ok config-files 1.4.0-3") == ""
    assert installed_version("unknown ok not-installed ") == ""
    assert installed_version("") == ""


def test_network_backend() -> None:
    server = parse_facts(DEBIAN12, local_time=1795605726)
    assert results(server)["network"] == CheckResult(
        "network", "pass", "podman with netavark, installed or installable", "podman uses netavark"
    )
    cni = captured(DEBIAN12, network_backend="cni", containers="3")
    assert (cni.network_backend, cni.containers) == ("cni", 3)
    network = results(cni)["network"]
    assert network.status == "fail"
    assert network.found == "podman uses CNI and has 3 containers"
    assert "netavark" in network.hint and "fixed address" in network.hint
    assert "podman system reset" in network.hint
    assert not Report("a/b", "a/c", cni, check(REQ, cni)).ok
    # CNI without containers: the installer switches it (netavark installed or installable)
    empty = dataclasses.replace(cni, containers=0)
    network = results(empty)["network"]
    assert network.status == "pass"
    assert network.found == "podman uses CNI, no containers; netavark 1.4.0-3 installed"
    assert network.note == "the installer switches podman to netavark"
    to_install = dataclasses.replace(empty, netavark="", apt_lists=3, apt_lists_age=600)
    assert results(to_install)["network"].note == (
        "the installer switches podman to netavark; netavark will be installed"
    )
    never_ran = dataclasses.replace(to_install, network_backend="none")
    network = results(never_ran)["network"]
    assert network.status == "pass" and network.note == "netavark will be installed"
    assert network.found.startswith("podman has not run yet (no backend chosen)")
    nowhere = dataclasses.replace(empty, netavark="", netavark_candidate="", apt_lists_age=60)
    assert results(nowhere)["network"].status == "fail"
    # logged in as a user without sudo: podman's own backend cannot be read
    unreadable = captured(DEBIAN12, network_backend=[], containers=[])
    assert (unreadable.network_backend, unreadable.containers) == ("", None)
    network = results(unreadable)["network"]
    assert network.status == "pass" and network.found.startswith("podman's backend not readable")


def test_rsync_only_for_sites_with_volumes() -> None:
    facts = parse_facts(MINIMAL, local_time=1795605726)
    assert "rsync" not in results(facts, REQ)
    assert results(facts, RSYNC)["rsync"].status == "pass"
    assert results(dataclasses.replace(facts, rsync="/usr/bin/rsync"))["rsync"] == CheckResult(
        "rsync", "pass", "rsync, installed or installable", "rsync installed"
    )


def test_future_or_unreadable_list_times_mean_refresh() -> None:
    assert captured(MINIMAL, apt_lists="2", apt_lists_age="-30").lists_stale
    facts = captured(MINIMAL, apt_lists="2", apt_lists_age="none")
    assert results(facts)["runtime"].found == "podman not installed; package lists of unknown age"


def test_facts_survive_the_host_record() -> None:
    facts = dataclasses.replace(
        parse_facts(MINIMAL, local_time=1795605726),
        programs={80: "caddy"},
        listening=(22, 80),
        dns={"shop.example": ["203.0.113.9"]},
        address_ips=("203.0.113.9",),
    )
    record = json.loads(json.dumps({**facts.to_record(), "read_at": "2026-12-07T22:00:00"}))
    assert Facts.from_record(record) == facts
    old = {"os_id": "debian", "podman": "4.3.1", "listening": [22]}  # stored before these facts
    assert Facts.from_record(old) == Facts(os_id="debian", podman="4.3.1", listening=(22,))


def test_last_report_reads_the_facts_stored_on_the_host(platform: Platform) -> None:
    """What `websonic migrate --dry-run` lists: the notes of the deploy's preflight, from the
    facts it stored on the host, for the site's requirements (rsync: it has volumes)."""
    with platform.transaction() as session:
        customer = add_customer(session, "acme", None, actor="test")
        add_site(session, Runner(), "acme/shop", str(EXAMPLES / "python-shop"), actor="test")
        host = Host(customer_id=customer.id, name="web1", ssh_user="root", address="192.0.2.7")
        host.facts = {**parse_facts(MINIMAL, local_time=1796681815).to_record(), "read_at": "x"}
        session.add(host)
    with platform.sessions() as session:
        host = hosts.get_host(session, "acme/web1")
        report = preflight.last_report(host, spec.site_requirements(session, "acme/shop"))
    assert report.host == "acme/web1" and report.ok
    assert report.notes == [
        f"runtime: {REFRESH.format('podman')}",
        f"network: {REFRESH.format('netavark')}",
        f"rsync: {REFRESH.format('rsync')}",
    ]


# --- the script itself, run for real ----------------------------------------------------------


def run_script(env: dict[str, str] | None = None) -> tuple[str, Facts]:
    proc = subprocess.run(
        ["sh", "-s", "--", "/var/lib/websonic"],
        input=FACTS_SCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    assert proc.stderr == ""  # a POSIX sh (dash here) runs it without a complaint
    return proc.stdout, parse_facts(proc.stdout, local_time=time.time())


def script_values(output: str) -> dict[str, str]:
    return dict(line.partition("=")[::2] for line in output.splitlines())


def source_lines(folder: str, pattern: str) -> list[str]:
    """The lines of the matching files, each file ended by an empty line (a deb822 break)."""
    paths = sorted(Path(folder).glob(pattern))
    return [line for path in paths for line in [*path.read_text().splitlines(), ""]]


def test_the_script_under_sh_reads_this_machine() -> None:
    """Compared with what Python reads here itself: lists, sources, rsync, netavark, podman."""
    output, facts = run_script()
    lists = [p.stat().st_mtime for p in Path("/var/lib/apt/lists").glob("*_Packages*")]
    assert facts.apt_lists == len(lists)
    server_time = int(script_values(output)["time"])
    assert facts.apt_lists_age == (server_time - int(max(lists)) if lists else None)
    os_release = freedesktop_os_release()
    assert facts.os_codename == os_release.get("VERSION_CODENAME", "")
    one_line = source_lines("/etc/apt", "sources.list") + source_lines(
        "/etc/apt/sources.list.d", "*.list"
    )
    deb_lines = [line.strip() for line in one_line if line.strip().startswith("deb ")]
    deb822 = [
        line
        for line in source_lines("/etc/apt/sources.list.d", "*.sources")
        if not line.lstrip().startswith("#")
    ]
    assert facts.apt_components == apt_components(deb_lines, deb822, facts.os_codename)
    assert facts.rsync == (shutil.which("rsync") or "")
    netavark = Path("/usr/lib/podman/netavark").exists()
    assert bool(facts.netavark) == netavark
    if shutil.which("podman") and Path("/var/lib/containers/storage").is_dir():
        assert facts.network_backend in ("netavark", "cni") and facts.containers is not None


def test_the_script_needs_no_podman_no_ss_no_rsync_no_python(tmp_path: Path) -> None:
    """On a PATH without them (a minimal server), the script still reads everything else."""
    missing = {"podman", "ss", "rsync", "python3", "python3.11", "python"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else ():
            target = bin_dir / tool.name
            if tool.name not in missing and not target.exists():
                target.symlink_to(tool)
    output, facts = run_script({"PATH": str(bin_dir), "LC_ALL": "C"})
    keys = script_values(output)
    assert "listen_hex" in keys and "listen" not in keys
    assert (facts.podman, facts.network_backend, facts.containers) == ("", "", None)
    assert facts.rsync == ""
    assert facts.os_id and facts.disk_free_kib > 0 and keys["time"].isdigit()


# --- against a real server over SSH ----------------------------------------------------------

DEB822 = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: {component}
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


@pytest.mark.hosts
def test_host_check_on_a_server_without_lists_and_rsync(cli: Cli, test_host: TestHost) -> None:
    """The test bed's server as it comes, then made fresh: lists gone, rsync gone, deb822
    sources only; then sources without main."""
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/shop", "--source", str(EXAMPLES / "python-shop"))  # volumes
    cli.run(
        "host",
        "add",
        "acme/web1",
        "--ssh",
        test_host.ssh_target(),
        "--key",
        str(test_host.key_path),
    )
    check_cmd = ("host", "check", "acme/web1", "--site", "acme/shop")
    report = cli.json(*check_cmd)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] and checks["network"]["status"] == "pass", report
    facts = cli.json("host", "show", "acme/web1")["facts"]
    backend = test_host.exec("podman", "info", "--format", "{{.Host.NetworkBackend}}").stdout
    assert facts["network_backend"] == backend.strip() == "netavark"
    assert facts["podman"] and facts["netavark"] and facts["rsync"] == "/usr/bin/rsync"
    assert facts["os_codename"] == "bookworm"

    test_host.exec(
        "sh",
        "-c",
        "rm -f /var/lib/apt/lists/*_Packages* /etc/apt/sources.list.d/* "
        "&& : > /etc/apt/sources.list && dpkg --purge rsync >/dev/null",
    )
    test_host.exec(
        "sh",
        "-c",
        f"cat > /etc/apt/sources.list.d/debian.sources <<'EOF'\n"
        f"{DEB822.format(component='main')}EOF",
    )
    report = cli.json(*check_cmd)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"], report
    assert checks["rsync"]["status"] == "pass"
    assert checks["rsync"]["found"] == "rsync not installed; package lists never fetched"
    assert checks["rsync"]["note"] == REFRESH.format("rsync")
    facts = cli.json("host", "show", "acme/web1")["facts"]
    assert facts["apt_lists"] == 0 and facts["apt_lists_age"] is None
    assert facts["apt_components"] == ["main"]
    human = cli.run(*check_cmd).stdout
    assert "ready for acme/shop" in human and "package lists will be refreshed" in human

    test_host.exec(
        "sh",
        "-c",
        f"cat > /etc/apt/sources.list.d/debian.sources <<'EOF'\n"
        f"{DEB822.format(component='contrib')}EOF",
    )
    proc = cli.run(*check_cmd, "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["rsync"]["status"] == "fail"
    assert checks["rsync"]["found"] == (
        "rsync not installed, not in the package lists; the apt sources name no bookworm main"
    )
    assert checks["rsync"]["hint"] == (
        "Run `apt-get update`, or enable the distribution's main repository."
    )
    human = cli.run(*check_cmd, check=False)
    assert human.returncode == 1 and "FAIL" in human.stdout and "not ready" in human.stdout
