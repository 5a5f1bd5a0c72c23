"""The facts parser and the checks, on output captured from a Debian 12 test host."""

from __future__ import annotations

import dataclasses

from websonic.hosting.preflight import Facts, check, parse_facts, version_tuple
from websonic.hosting.requirements import Requirements

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
podman_candidate=4.3.1+ds1-8+deb12u1+b3
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
    assert list(statuses(facts)) == [
        "os", "arch", "cpus", "memory", "disk", "inodes", "port 80", "port 443", "runtime", "clock",
    ]  # fmt: skip


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
