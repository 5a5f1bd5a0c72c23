"""Preflight: read a server's facts over SSH and check them against a site's Requirements.

One POSIX-sh script is sent on stdin (``sh -s -- DATA_PATH``) and prints ``key=value`` lines;
:func:`parse_facts` turns them into :class:`Facts` and :func:`check` compares them with the
:class:`Requirements` -- both pure, tested on captured output.

What the installer will add is a pass with a note, not a failure: podman, netavark and rsync
"installable" from the package lists, or from lists the installer refreshes first (missing or
older than a day, as on minimal and container-made servers) when the apt sources name the
component that carries them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
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
  if [ "$(id -u)" = 0 ]; then pm=podman
  elif sudo -n true 2>/dev/null; then pm="sudo -n podman"
  else pm=
  fi
  # A podman that never ran has chosen no network backend yet, and `podman info` would make it
  # choose (and record) one: the preflight changes nothing, so it only asks a podman that ran.
  if [ ! -d /var/lib/containers/storage ]; then
    echo "network_backend=none"
    echo "containers=0"
  elif [ -n "$pm" ]; then
    echo "network_backend=$($pm info --format '{{.Host.NetworkBackend}}' 2>/dev/null)"
    ids=$($pm ps -aq 2>/dev/null) && echo "containers=$(printf '%s' "$ids" | grep -c .)"
  fi
else
  echo "podman="
fi
for pkg in podman netavark rsync; do
  echo "${pkg}_candidate=$(apt-cache policy $pkg 2>/dev/null | awk '/Candidate:/ {print $2}')"
done
echo "netavark=$(dpkg-query -W -f='${Status} ${Version}' netavark 2>/dev/null)"
echo "rsync=$(command -v rsync)"
echo "os_codename=${VERSION_CODENAME:-}"
echo "apt_lists=$(ls /var/lib/apt/lists/*_Packages* 2>/dev/null | wc -l)"
newest=$(ls -t /var/lib/apt/lists/*_Packages* 2>/dev/null | head -n 1)
modified=$(stat -c %Y "$newest" 2>/dev/null)
case $modified in
  ''|*[!0-9]*) echo "apt_lists_age=none" ;;
  *) echo "apt_lists_age=$(( $(date +%s) - modified ))" ;;
esac
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -r "$f" ] && sed -n 's/^[[:space:]]*\(deb[[:space:]].*\)$/apt_list=\1/p' "$f"
done
for f in /etc/apt/sources.list.d/*.sources; do
  [ -r "$f" ] && sed -e '/^[[:space:]]*#/d' -e 's/^/apt_sources=/' "$f" && echo "apt_sources="
done
echo "time=$(date +%s)"
"""


#: Package lists older than this are fetched again before installing (as install.sh does).
LISTS_MAX_AGE = 24 * 3600


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
    # podman's network backend: "netavark", "cni", "none" (podman never ran: not chosen yet),
    # "" (no podman, or not readable: not root and no sudo); with the number of containers.
    network_backend: str = ""
    containers: int | None = None
    netavark: str = ""  # installed version, "" when absent
    netavark_candidate: str = ""
    rsync: str = ""  # its path, "" when absent
    rsync_candidate: str = ""
    os_codename: str = ""  # VERSION_CODENAME: the distribution's own suite in the apt sources
    apt_lists: int = 0  # package list files (/var/lib/apt/lists/*_Packages*)
    apt_lists_age: int | None = None  # seconds since the newest was fetched; None: none
    apt_components: tuple[str, ...] = ()  # components deb entries name for the own suite
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
        data["apt_components"] = list(self.apt_components)
        return data

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Facts:
        """The facts stored on a host by :meth:`to_record` (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in record.items() if k in known}
        data["programs"] = {int(k): v for k, v in (data.get("programs") or {}).items()}
        for name in ("listening", "address_ips", "apt_components"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)

    @property
    def lists_stale(self) -> bool:
        """The installer refreshes the package lists first (missing or older than a day)."""
        return self.apt_lists_age is None or self.apt_lists_age >= LISTS_MAX_AGE


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    expected: str
    found: str
    hint: str = ""  # what to do about a failure or a warning
    note: str = ""  # what the installer will do about a pass (refresh the lists, install…)


def parse_facts(output: str, *, local_time: float) -> Facts:
    """Facts from the script's ``key=value`` lines; ``local_time`` is our clock on receipt."""
    values: dict[str, str] = {}
    repeated: dict[str, list[str]] = {"apt_list": [], "apt_sources": []}
    for line in output.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            values[key.strip()] = value.strip()
            repeated.get(key.strip(), []).append(value.rstrip())
    server_time = _int(values.get("time", ""))
    codename = values.get("os_codename", "")
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
        network_backend=values.get("network_backend", ""),
        containers=_int(values["containers"]) if "containers" in values else None,
        netavark=installed_version(values.get("netavark", "")),
        netavark_candidate=values.get("netavark_candidate", ""),
        rsync=values.get("rsync", ""),
        rsync_candidate=values.get("rsync_candidate", ""),
        os_codename=codename,
        apt_lists=_int(values.get("apt_lists", "")),
        apt_lists_age=_age(values.get("apt_lists_age", "")),
        apt_components=apt_components(repeated["apt_list"], repeated["apt_sources"], codename),
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


def _age(text: str) -> int | None:
    """Seconds, or None (no lists, or a modification time in the future: fetch them again)."""
    return int(text) if text.isdigit() else None


def installed_version(status: str) -> str:
    """``install ok installed 1.4.0-3`` (dpkg-query's Status and Version) -> ``1.4.0-3``;
    anything else (not installed, removed but configured, unknown) -> ""."""
    words = status.split()
    return words[3] if len(words) == 4 and words[2] == "installed" else ""


def apt_components(
    list_lines: list[str], sources_lines: list[str], codename: str
) -> tuple[str, ...]:
    """The components that enabled ``deb`` entries name for the distribution's own suite
    (``codename``; any suite when unknown; a release alias such as ``stable`` counts too),
    from one-line entries (``deb [OPTIONS] URI SUITE COMPONENT…``) and deb822 ``.sources``
    lines (paragraphs split by empty lines)."""
    entries = [_one_line_entry(line) for line in list_lines] + _deb822_entries(sources_lines)
    found = {
        component
        for suites, components in entries
        for suite in suites
        if not codename or suite == codename or suite in SUITE_ALIASES
        for component in components
    }
    return tuple(sorted(found))


#: Suites named by what they are rather than by codename: a server whose sources say
#: ``deb http://deb.debian.org/debian stable main`` gets its packages from them all the same.
SUITE_ALIASES = frozenset({"stable", "oldstable", "oldoldstable", "testing", "unstable", "sid"})


def _one_line_entry(line: str) -> tuple[list[str], list[str]]:
    words = re.sub(r"\[[^\]]*\]", " ", line.partition("#")[0]).split()
    if len(words) < 4 or words[0] != "deb":
        return [], []
    return [words[2]], words[3:]


def _deb822_entries(lines: list[str]) -> list[tuple[list[str], list[str]]]:
    """(suites, components) of each enabled ``Types: deb`` paragraph."""
    entries = []
    for paragraph in _paragraphs(lines):
        if paragraph.get("enabled", "yes").lower() != "no" and "deb" in paragraph["types"].split():
            entries.append((paragraph["suites"].split(), paragraph["components"].split()))
    return entries


def _paragraphs(lines: list[str]) -> list[dict[str, str]]:
    """deb822 paragraphs (split by empty lines) as lower-cased field -> value; a continuation
    line (starting with a space, e.g. an embedded Signed-By key) extends the field before it."""
    paragraphs: list[dict[str, str]] = [{}]
    last = ""
    for line in lines:
        if not line.strip():
            paragraphs.append({})
        elif line[0] in " \t":
            paragraphs[-1][last] = paragraphs[-1].get(last, "") + " " + line.strip()
        else:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            paragraphs[-1][last] = value.strip()
    return [{"types": "", "suites": "", "components": "", **p} for p in paragraphs if p]


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
    results += [_runtime(r, facts), _network(facts)]
    results += [_rsync(facts)] if r.rsync else []
    results += [_clock(r, facts)]
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


#: The apt component that carries podman and netavark (rsync is in main everywhere).
RUNTIME_COMPONENT = {"debian": "main", "ubuntu": "universe"}


def _runtime(r: Requirements, facts: Facts) -> CheckResult:
    minimum = version_tuple(r.runtime_min_version)
    expected = f"{r.runtime} >= {r.runtime_min_version}, installed or installable"
    if facts.podman:
        ok = version_tuple(facts.podman) >= minimum
        return _minimum("runtime", ok, expected, f"{r.runtime} {facts.podman} installed",
                        f"Upgrade {r.runtime} to {r.runtime_min_version} or later.")  # fmt: skip
    candidate = facts.podman_candidate
    if version_tuple(candidate) and version_tuple(candidate) < minimum:
        found = f"installable: {r.runtime} {candidate}"
        hint = f"The distribution offers {r.runtime} {candidate}; use a newer release."
        return CheckResult("runtime", "fail", expected, found, hint)
    return _package("runtime", expected, facts, r.runtime, candidate, _component(facts))


def _package(
    name: str, expected: str, facts: Facts, package: str, candidate: str, component: str
) -> CheckResult:
    """A package the installer installs: a pass with a note when it can, else a failure."""
    if version_tuple(candidate):
        found = f"installable: {package} {candidate}"
        return CheckResult(name, "pass", expected, found, note=_install_note(facts, package))
    if facts.lists_stale and component in facts.apt_components:
        found = f"{package} not installed; {_lists(facts)}"
        return CheckResult(name, "pass", expected, found, note=_install_note(facts, package))
    found = f"{package} not installed, not in the package lists{_sources_lack(facts, component)}"
    hint = f"Run `apt-get update`, or enable the distribution's {component} repository."
    return CheckResult(name, "fail", expected, found, hint)


def _component(facts: Facts) -> str:
    return RUNTIME_COMPONENT.get(facts.os_id, "main")


def _install_note(facts: Facts, package: str) -> str:
    if facts.lists_stale:
        return f"package lists will be refreshed (apt-get update), then {package} installed"
    return f"{package} will be installed"


def _lists(facts: Facts) -> str:
    if not facts.apt_lists:
        return "package lists never fetched"
    if facts.apt_lists_age is None:
        return "package lists of unknown age"
    return f"package lists {facts.apt_lists_age // 3600} h old"


def _sources_lack(facts: Facts, component: str) -> str:
    if component in facts.apt_components:
        return ""
    suite = facts.os_codename or "the distribution's suite"
    return f"; the apt sources name no {suite} {component}"


def _network(facts: Facts) -> CheckResult:
    """podman's network backend: WebSonic's database container keeps a fixed address (the
    subnet's last, outside the lease range), which netavark gives and CNI refuses."""
    expected = "podman with netavark, installed or installable"
    backend = facts.network_backend
    if backend == "netavark":
        return CheckResult("network", "pass", expected, "podman uses netavark")
    if backend == "cni" and facts.containers:
        found = f"podman uses CNI and has {facts.containers} containers"
        return CheckResult("network", "fail", expected, found, _cni_hint(facts.containers))
    found, switch = _backend_found(facts)
    if facts.netavark:
        found += f"; netavark {facts.netavark} installed"
        return CheckResult("network", "pass", expected, found, note=switch)
    candidate = facts.netavark_candidate
    result = _package("network", expected, facts, "netavark", candidate, _component(facts))
    note = "; ".join(n for n in (switch, result.note) if n)
    return replace(result, found=f"{found}; {result.found}", note=note)


def _backend_found(facts: Facts) -> tuple[str, str]:
    """What podman's backend is, and the note when the installer will switch it."""
    switch = "the installer switches podman to netavark"
    if not facts.podman:
        return "podman not installed", ""
    if facts.network_backend == "none":
        return "podman has not run yet (no backend chosen)", ""
    if facts.network_backend:
        count = ", no containers" if facts.containers == 0 else ""
        return f"podman uses {facts.network_backend.upper()}{count}", switch
    return "podman's backend not readable (log in as root, or allow sudo)", switch


def _cni_hint(containers: int) -> str:
    return (
        "WebSonic needs podman's netavark network backend: a site's database container keeps "
        "a fixed address, which CNI refuses. Switching the backend cuts the networks of the "
        f"{containers} containers there: move or remove them (see `podman ps -a`; "
        "`podman system reset` removes all containers, images and volumes), then run the "
        "deploy again; the installer installs netavark and makes it podman's backend."
    )


def _rsync(facts: Facts) -> CheckResult:
    """rsync copies files into the site's volumes (websonic migrate, websonic files sync)."""
    expected = "rsync, installed or installable"
    if facts.rsync:
        return CheckResult("rsync", "pass", expected, "rsync installed")
    return _package("rsync", expected, facts, "rsync", facts.rsync_candidate, "main")


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

    @property
    def notes(self) -> list[str]:
        """What the installer will do that passing checks found missing (lists, packages)."""
        return [f"{c.name}: {c.note}" for c in self.checks if c.note]

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
    return _report(host, requirements, facts)


def last_report(host: Host, requirements: Requirements) -> Report:
    """The checks on the facts the host's last preflight stored (no SSH)."""
    return _report(host, requirements, Facts.from_record(host.facts or {}))


def _report(host: Host, requirements: Requirements, facts: Facts) -> Report:
    ref = f"{host.customer.slug}/{host.name}"
    return Report(ref, requirements.site, facts, check(requirements, facts))
