"""Preflight: read a server's facts over SSH and check them against a site's Requirements.

One POSIX-sh script is sent on stdin (``sh -s -- DATA_PATH``) and prints ``key=value`` lines;
:func:`parse_facts` turns them into :class:`Facts` and :func:`check` compares them with the
:class:`Requirements` -- both pure, tested on captured output.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from websonic.core.runner import Runner
from websonic.hosting import hosts
from websonic.hosting.models import Host
from websonic.hosting.requirements import Requirements

Status = Literal["pass", "warn", "fail"]

FACTS_SCRIPT = r"""
p=${1:-/var/lib}
while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${ID:-}"
echo "os_version=${VERSION_ID:-}"
echo "arch=$(uname -m)"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
echo "mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "mem_limit_kib=$(cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes \
  2>/dev/null | awk '/^[0-9]+$/ {print int($1 / 1024); exit}')"
echo "data_path=$p"
echo "disk_free_kib=$(df -Pk "$p" 2>/dev/null | awk 'NR==2 {print $4}')"
echo "inodes_free=$(df -Pi "$p" 2>/dev/null | awk 'NR==2 {print $4}')"
if command -v ss >/dev/null 2>&1; then
  echo "listen=$(ss -ltnH 2>/dev/null | awk '{print $4}' | tr '\n' ' ')"
  echo "listen_programs=$(ss -ltnpH 2>/dev/null | awk '{n = split($4, a, ":");
    if (match($0, /users:\(\("[^"]*"/)) print a[n] ":" substr($0, RSTART + 9, RLENGTH - 10)}' \
    | tr '\n' ' ')"
else
  echo "listen_hex=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null \
    | awk '$4 == "0A" {n = split($2, a, ":"); print a[n]}' | tr '\n' ' ')"
fi
if command -v podman >/dev/null 2>&1; then
  echo "podman=$(podman --version 2>/dev/null | awk '{print $NF}')"
else
  echo "podman="
fi
echo "podman_candidate=$(apt-cache policy podman 2>/dev/null | awk '/Candidate:/ {print $2}')"
echo "time=$(date +%s)"
"""


@dataclass(frozen=True)
class Facts:
    """What a server provides, as read by the facts script (sizes as reported: KiB, counts)."""

    os_id: str = ""
    os_version: str = ""
    arch: str = ""
    cpus: int = 0
    mem_kib: int = 0
    mem_limit_kib: int = 0  # the cgroup's memory limit (containers, some VPSes); 0: none
    data_path: str = ""
    disk_free_kib: int = 0
    inodes_free: int = 0
    listening: tuple[int, ...] = ()
    programs: dict[int, str] = field(default_factory=dict)  # listening port -> program name
    podman: str = ""  # installed version, "" when absent
    podman_candidate: str = ""  # version apt would install, "" or "(none)" when none
    clock_skew: int = 0  # server time minus ours, seconds
    dns: dict[str, list[str]] = field(default_factory=dict)  # domain -> addresses (resolved here)
    address_ips: tuple[str, ...] = ()  # the server's address, resolved here

    @property
    def memory_mib(self) -> int:
        """Usable memory: MemTotal, or the cgroup's limit when that is lower."""
        limits = [k for k in (self.mem_kib, self.mem_limit_kib) if k > 0]
        return min(limits) // 1024 if limits else 0

    def to_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["programs"] = {str(k): v for k, v in self.programs.items()}
        data["listening"] = list(self.listening)
        data["address_ips"] = list(self.address_ips)
        return data


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    expected: str
    found: str
    hint: str = ""


def parse_facts(output: str, *, local_time: float) -> Facts:
    """Facts from the script's ``key=value`` lines; ``local_time`` is our clock on receipt."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            values[key.strip()] = value.strip()
    server_time = _int(values.get("time", ""))
    return Facts(
        os_id=values.get("os_id", ""),
        os_version=values.get("os_version", ""),
        arch=values.get("arch", ""),
        cpus=_int(values.get("cpus", "")),
        mem_kib=_int(values.get("mem_kib", "")),
        mem_limit_kib=_int(values.get("mem_limit_kib", "")),
        data_path=values.get("data_path", ""),
        disk_free_kib=_int(values.get("disk_free_kib", "")),
        inodes_free=_int(values.get("inodes_free", "")),
        listening=_listening(values),
        programs=_programs(values.get("listen_programs", "")),
        podman=values.get("podman", ""),
        podman_candidate=values.get("podman_candidate", ""),
        clock_skew=round(server_time - local_time) if server_time else 0,
    )


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _listening(values: dict[str, str]) -> tuple[int, ...]:
    """Listening TCP ports from ``ss`` local addresses or /proc/net/tcp hex ports."""
    ports: set[int] = set()
    for local in values.get("listen", "").split():
        port = local.rpartition(":")[2]
        if port.isdigit():
            ports.add(int(port))
    for hex_port in values.get("listen_hex", "").split():
        if re.fullmatch(r"[0-9A-Fa-f]{1,4}", hex_port):
            ports.add(int(hex_port, 16))
    return tuple(sorted(ports))


def _programs(text: str) -> dict[int, str]:
    """``80:caddy 443:caddy`` -> {80: "caddy", 443: "caddy"}."""
    programs = {}
    for item in text.split():
        port, _, name = item.partition(":")
        if port.isdigit() and name:
            programs[int(port)] = name
    return programs


def version_tuple(text: str) -> tuple[int, ...]:
    """``4.3.1`` -> (4, 3, 1); ``4.3.1+ds1-8+deb12u1`` -> (4, 3, 1); "" -> ()."""
    match = re.match(r"^(?:\d+:)?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


# --- the checks ---------------------------------------------------------------------------


#: MemTotal is what the kernel leaves after its own reservations: a "1 GiB" server reports
#: about 960 MiB. A server is taken to have N MiB when MemTotal reaches 90 % of N.
MEMORY_SEEN = 0.9


def check(requirements: Requirements, facts: Facts) -> list[CheckResult]:
    """Every check of ``requirements`` against ``facts``, in a stable order."""
    r = requirements
    results = [
        _os(r, facts),
        _minimum("arch", facts.arch in r.architectures, " or ".join(r.architectures),
                 facts.arch or "unknown", "WebSonic images are built for these architectures."),
        _minimum("cpus", facts.cpus >= r.cpus, f">= {r.cpus}", str(facts.cpus),
                 "Give the server more CPUs."),
        _minimum("memory", facts.memory_mib >= r.memory_mib * MEMORY_SEEN,
                 f">= {r.memory_mib} MiB", f"{facts.memory_mib} MiB",
                 "Give the server more memory."),
        _minimum("disk", facts.disk_free_kib // 1024 >= r.disk_mib, f">= {r.disk_mib} MiB free",
                 f"{facts.disk_free_kib // 1024} MiB free on {facts.data_path}",
                 f"Free or add disk space where {r.data_path} lives."),
        _minimum("inodes", facts.inodes_free >= r.inodes, f">= {r.inodes} free",
                 f"{facts.inodes_free} free on {facts.data_path}",
                 "Free inodes (many small files) or use a larger filesystem."),
    ]  # fmt: skip
    results += [_port(port, facts) for port in r.ports]
    results += [_runtime(r, facts), _clock(r, facts)]
    results += [_dns(domain, facts) for domain in r.domains]
    return results


def _minimum(name: str, ok: bool, expected: str, found: str, hint: str) -> CheckResult:
    return CheckResult(name, "pass" if ok else "fail", expected, found, "" if ok else hint)


def _os(r: Requirements, facts: Facts) -> CheckResult:
    expected = ", ".join(f"{os_id} >= {r.os_min_versions.get(os_id, '?')}" for os_id in r.os_ids)
    found = f"{facts.os_id or 'unknown'} {facts.os_version}".strip()
    minimum = version_tuple(r.os_min_versions.get(facts.os_id, ""))
    ok = facts.os_id in r.os_ids and version_tuple(facts.os_version) >= minimum
    return _minimum("os", ok, expected, found, "Use a supported distribution release.")


#: A port held by this program is WebSonic's own reverse proxy (a site already installed).
PROXY = "caddy"


def _port(port: int, facts: Facts) -> CheckResult:
    if facts.programs.get(port) == PROXY:
        return CheckResult(f"port {port}", "pass", "free", f"{PROXY} (WebSonic's reverse proxy)")
    taken = port in facts.listening
    holder = facts.programs.get(port)
    return CheckResult(
        f"port {port}",
        "fail" if taken else "pass",
        "free",
        (f"in use by {holder}" if holder else "in use") if taken else "free",
        f"Stop the service listening on port {port} (see `ss -ltnp`); WebSonic's reverse "
        "proxy binds it."
        if taken
        else "",
    )


def _runtime(r: Requirements, facts: Facts) -> CheckResult:
    minimum = version_tuple(r.runtime_min_version)
    expected = f"{r.runtime} >= {r.runtime_min_version}, installed or installable"
    if facts.podman:
        ok = version_tuple(facts.podman) >= minimum
        return _minimum("runtime", ok, expected, f"{r.runtime} {facts.podman} installed",
                        f"Upgrade {r.runtime} to {r.runtime_min_version} or later.")  # fmt: skip
    candidate = facts.podman_candidate
    if not version_tuple(candidate):
        found = f"not installed, no {r.runtime} package"
        hint = "Run `apt-get update`, or enable the distribution's main repository."
        return CheckResult("runtime", "fail", expected, found, hint)
    ok = version_tuple(candidate) >= minimum
    hint = f"The distribution offers {r.runtime} {candidate}; use a newer release."
    return _minimum("runtime", ok, expected, f"installable: {r.runtime} {candidate}", hint)


def _clock(r: Requirements, facts: Facts) -> CheckResult:
    ok = abs(facts.clock_skew) <= r.max_clock_skew_seconds
    expected = f"within {r.max_clock_skew_seconds} s of ours"
    hint = "Enable time sync (systemd-timesyncd or chrony)."
    return _minimum("clock", ok, expected, f"{facts.clock_skew:+d} s", hint)


def _dns(domain: str, facts: Facts) -> CheckResult:
    found = facts.dns.get(domain, [])
    ok = bool(set(found) & set(facts.address_ips))
    return CheckResult(
        f"dns {domain}",
        "pass" if ok else "warn",
        " ".join(facts.address_ips) or "the server's address",
        " ".join(found) or "does not resolve",
        "" if ok else f"Point {domain}'s A/AAAA records at the server before going live.",
    )


# --- running it ---------------------------------------------------------------------------


def resolve(name: str) -> list[str]:
    """Addresses of ``name`` as this machine resolves it ([] if it does not)."""
    try:
        ipaddress.ip_address(name)
        return [name]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def read_facts(runner: Runner, host: Host, ssh_dir: Path, requirements: Requirements) -> Facts:
    """Run the facts script on ``host`` and resolve the required domains here."""
    result = hosts.run_remote(
        runner, host, ssh_dir, ["sh", "-s", "--", requirements.data_path],
        stdin=FACTS_SCRIPT.encode(), timeout=120,
    )  # fmt: skip
    facts = parse_facts(result.stdout, local_time=time.time())
    dns = {domain: resolve(domain) for domain in requirements.domains}
    return Facts(**{**facts.__dict__, "dns": dns, "address_ips": tuple(resolve(host.address))})


@dataclass(frozen=True)
class Report:
    host: str
    site: str
    facts: Facts
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_record(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "site": self.site,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
        }


def check_host(
    session: Session, runner: Runner, ssh_dir: Path, host: Host, requirements: Requirements
) -> Report:
    """Preflight ``host`` for ``requirements``; the facts are stored on the host."""
    facts = read_facts(runner, host, ssh_dir, requirements)
    host.facts = {**facts.to_record(), "read_at": dt.datetime.now(dt.UTC).isoformat()}
    session.flush()
    ref = f"{host.customer.slug}/{host.name}"
    return Report(ref, requirements.site, facts, check(requirements, facts))
