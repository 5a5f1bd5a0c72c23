"""Disposable Debian 12 "customer servers": privileged podman system containers reached by SSH.

Each host is a privileged container running systemd as PID 1 (``--systemd=always /sbin/init``)
on a podman network the test session creates, with its own filesystem, IP address, sshd and a
working nested podman (its ``/var/lib/containers`` is a podman volume, because overlay storage
does not work on top of overlay). Root's ``authorized_keys`` holds the session's public key;
the host's own ed25519 host key is read through ``podman exec`` and pinned in a per-host
known_hosts file, so every ``ssh`` call checks host keys strictly.

All podman objects are named ``websonic-test-<pid>-...`` where ``<pid>`` is the test process;
``remove_stale_podman_objects`` deletes those whose process is gone (a killed earlier run).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from testbed._proc import CommandError, pid_alive, run, tail
from testbed.podman import podman, podman_lines, remove_objects
from testbed.ssh import SshKeyPair, ssh_options

PREFIX = "websonic-test-"
#: Candidate subnets for the session network (10.213.<n>.0/24); the first free one is used.
SUBNET_THIRD_OCTETS = range(77, 107)
SSH_READY_TIMEOUT = 90.0
DEFAULT_SSH_TIMEOUT = 120.0
_HOST_NUMBERS = itertools.count(1)


def session_prefix(pid: int | None = None) -> str:
    """Name prefix for all podman objects of the test process ``pid`` (default: this one)."""
    return f"{PREFIX}{pid if pid is not None else os.getpid()}-"


def _owner_pid(name: str) -> int | None:
    """The process id encoded in a ``websonic-test-<pid>-...`` name, if any."""
    if not name.startswith(PREFIX):
        return None
    head = name[len(PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _stale(names: list[str]) -> list[str]:
    stale = []
    for name in names:
        pid = _owner_pid(name)
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            stale.append(name)
    return stale


def remove_stale_podman_objects() -> list[str]:
    """Remove containers, volumes and networks left behind by dead test processes."""
    removed: list[str] = []
    listings = {
        "container": ("ps", "--all", "--format", "{{.Names}}"),
        "volume": ("volume", "ls", "--format", "{{.Name}}"),
        "network": ("network", "ls", "--format", "{{.Name}}"),
    }
    for kind, listing in listings.items():
        names = _stale(podman_lines(*listing))
        remove_objects(kind, names)
        removed += names
    return removed


@dataclass
class TestNetwork:
    """A podman bridge network for one test session."""

    __test__ = False  # not a pytest test class

    name: str
    subnet: ipaddress.IPv4Network

    @classmethod
    def create(cls, name: str | None = None) -> TestNetwork:
        """Create the network on the first free 10.213.<n>.0/24 subnet (never 10.88/16)."""
        name = name or f"{session_prefix()}net"
        used = _used_subnets()
        errors = []
        for octet in SUBNET_THIRD_OCTETS:
            subnet = ipaddress.IPv4Network(f"10.213.{octet}.0/24")
            if any(subnet.overlaps(other) for other in used):
                continue
            result = podman("network", "create", "--subnet", str(subnet), name, check=False)
            if result.returncode == 0:
                return cls(name, subnet)
            errors.append(result.stderr.strip())
        raise CommandError(f"no free subnet for network {name}: {errors[-3:]}")

    @property
    def gateway(self) -> str:
        """This machine's address on the network (where hosts reach services of the tests)."""
        return str(next(self.subnet.hosts()))

    def bring_up(self, image: str) -> str:
        """Make the bridge (and the gateway address) exist before any host does: a network's
        interface appears with its first container, so an idle one holds it. The gateway."""
        anchor = f"{self.name}-anchor"
        if podman("container", "exists", anchor, check=False).returncode != 0:
            podman(
                "run", "-d", "--name", anchor, "--network", self.name, "--entrypoint", "sleep",
                image, "infinity", timeout=120,
            )  # fmt: skip
        return self.gateway

    def remove(self) -> None:
        """Delete the network (hosts on it must be gone already)."""
        remove_objects("container", [f"{self.name}-anchor"])
        podman("network", "rm", "--force", self.name, check=False, timeout=60)


def _used_subnets() -> list[ipaddress.IPv4Network]:
    subnets = []
    for line in podman_lines("network", "ls", "--format", "{{range .Subnets}}{{.Subnet}} {{end}}"):
        for item in line.split():
            try:
                subnets.append(ipaddress.IPv4Network(item))
            except ValueError:
                continue  # IPv6 or unexpected text
    return subnets


@dataclass
class TestHost:
    """One disposable customer server. Use ``ssh``/``put``/``get`` like a real remote machine."""

    __test__ = False  # not a pytest test class

    name: str
    container: str
    volume: str
    address: str
    key_path: Path
    known_hosts_path: Path
    user: str = "root"
    ssh_port: int = 22

    def ssh_target(self) -> str:
        """``user@address``, e.g. ``root@10.213.77.5``."""
        return f"{self.user}@{self.address}"

    def host_key_fingerprint(self) -> str:
        """The SHA256 fingerprint of the ed25519 host key sshd shows now (read on the host)."""
        shown = self.exec("ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub").stdout
        return shown.split()[1]

    def ssh_argv(self, *, key_path: Path | Literal["session"] | None = "session") -> list[str]:
        """The ``ssh`` argv prefix (no remote command). ``key_path=None``: offer no key at all."""
        key = self.key_path if key_path == "session" else key_path
        return [
            "ssh",
            *ssh_options(key, self.known_hosts_path),
            "-p",
            str(self.ssh_port),
            self.ssh_target(),
        ]

    def ssh(
        self,
        *command: str,
        check: bool = True,
        timeout: float = DEFAULT_SSH_TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the host over real SSH.

        One argument is a remote shell command line (``host.ssh("ls /etc | wc -l")``); several
        arguments are an argv, quoted for the remote shell (``host.ssh("cat", "/etc/hostname")``).
        """
        remote = command[0] if len(command) == 1 else shlex.join(command)
        return run([*self.ssh_argv(), "--", remote], check=check, timeout=timeout, input=input)

    def put(self, local_path: Path | str, remote_path: str, *, timeout: float = 300) -> None:
        """Copy a local file or directory to the host with scp."""
        self._scp(str(local_path), f"{self.ssh_target()}:{remote_path}", timeout)

    def get(self, remote_path: str, local_path: Path | str, *, timeout: float = 300) -> None:
        """Copy a file or directory from the host with scp."""
        self._scp(f"{self.ssh_target()}:{remote_path}", str(local_path), timeout)

    def write_file(self, remote_path: str, content: str, mode: str = "0644") -> None:
        """Write text to a file on the host (through ssh stdin)."""
        quoted = shlex.quote(remote_path)
        self.ssh(f"cat > {quoted} && chmod {mode} {quoted}", input=content)

    def _scp(self, source: str, destination: str, timeout: float) -> None:
        options = ssh_options(self.key_path, self.known_hosts_path)
        run(
            ["scp", "-q", "-r", *options, "-P", str(self.ssh_port), source, destination],
            timeout=timeout,
        )

    def exec(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the host via ``podman exec`` (a back door for test assertions)."""
        return podman("exec", self.container, *argv, check=check, timeout=timeout)

    def logs(self) -> str:
        """Container console output plus the tail of the systemd journal, for error messages."""
        console = podman("logs", "--tail", "60", self.container, check=False).stdout
        journal = self.exec("journalctl", "--no-pager", "-n", "60", check=False, timeout=20)
        return f"--- console ---\n{tail(console)}\n--- journal ---\n{tail(journal.stdout)}"

    def restart(self, timeout: float = SSH_READY_TIMEOUT) -> None:
        """Restart the container (like a reboot: systemd boots again) and wait for sshd."""
        podman("restart", "--time", "20", self.container, timeout=120)
        self.address = _container_address(self.container)
        wait_for_ssh(self, timeout)

    def import_tiny_image(self, ref: str = "localhost/websonic-test/tiny:1") -> str:
        """Import a minimal image (dash + libc from the host) into the host's podman.

        No registry is reachable, so this is how tests get an image to run inside a host.
        """
        script = (
            "set -e; r=$(mktemp -d); "
            "mkdir -p $r/bin $r/lib/x86_64-linux-gnu $r/lib64 $r/tmp $r/etc; "
            "cp /bin/dash $r/bin/sh; cp /lib/x86_64-linux-gnu/libc.so.6 $r/lib/x86_64-linux-gnu/; "
            "cp /lib64/ld-linux-x86-64.so.2 $r/lib64/; "
            f"tar -C $r -cf $r.tar . && podman import -q $r.tar {shlex.quote(ref)} >/dev/null; "
            "rm -rf $r $r.tar"
        )
        self.ssh(script, timeout=300)
        return ref


def _container_address(container: str) -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    addresses = podman("inspect", "--format", fmt, container).stdout.split()
    if not addresses:
        raise CommandError(f"container {container} has no IP address")
    return addresses[0]


def _pin_host_key(host: TestHost, deadline: float) -> None:
    """Wait for the host's ed25519 host key and write it as the only known_hosts entry."""
    while True:
        result = host.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub", check=False, timeout=20)
        if result.returncode == 0 and result.stdout.strip():
            key_type, key = result.stdout.split()[:2]
            host.known_hosts_path.write_text(f"{host.address} {key_type} {key}\n")
            return
        if time.monotonic() > deadline:
            raise CommandError(f"host {host.name}: no SSH host key appeared\n{host.logs()}")
        time.sleep(0.3)


def wait_for_ssh(host: TestHost, timeout: float = SSH_READY_TIMEOUT) -> None:
    """Poll until ``ssh host true`` succeeds; raise with container logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    _pin_host_key(host, deadline)
    last = ""
    while time.monotonic() < deadline:
        result = host.ssh("true", check=False, timeout=15)
        if result.returncode == 0:
            return
        last = result.stderr.strip()
        time.sleep(0.3)
    raise CommandError(
        f"sshd on host {host.name} ({host.address}) not reachable after {timeout:.0f}s; "
        f"last ssh error: {last}\n{host.logs()}"
    )


@dataclass
class HostFactory:
    """Creates hosts on one network from one image and removes every host it made."""

    image: str
    network: TestNetwork
    keypair: SshKeyPair
    workdir: Path
    hosts: list[TestHost] = field(default_factory=list)
    _counter: int = 0

    def create(
        self,
        name: str | None = None,
        *,
        memory: str | None = None,
        cpus: float | None = None,
        ready_timeout: float = SSH_READY_TIMEOUT,
        extra_args: tuple[str, ...] = (),
    ) -> TestHost:
        """Start a new host and wait until SSH works. ``memory`` like ``"1g"``."""
        self._counter += 1
        name = name or f"host{self._counter}"
        container = f"{session_prefix()}{next(_HOST_NUMBERS)}-{name}"
        volume = f"{container}-containers"
        host = TestHost(
            name,
            container,
            volume,
            "",
            self.keypair.private_path,
            self.workdir / f"known_hosts-{container}",
        )
        self.hosts.append(host)  # registered first so cleanup also covers half-made hosts
        podman("volume", "create", volume)
        podman("create", *self._run_args(host, memory, cpus, extra_args), self.image, "/sbin/init")
        podman("cp", str(self.keypair.public_path), f"{container}:/root/.ssh/authorized_keys")
        podman("start", container, timeout=120)
        host.address = _container_address(container)
        wait_for_ssh(host, ready_timeout)
        return host

    def _run_args(
        self, host: TestHost, memory: str | None, cpus: float | None, extra: tuple[str, ...]
    ) -> list[str]:
        args = [
            "--name",
            host.container,
            "--hostname",
            host.name,
            "--privileged",
            "--systemd=always",
            "--cgroupns=private",
            "--log-driver=k8s-file",
            "--network",
            self.network.name,
            "--network-alias",
            host.name,
            "--volume",
            f"{host.volume}:/var/lib/containers",
        ]
        if memory:
            args += ["--memory", memory]
        if cpus:
            args += ["--cpus", str(cpus)]
        return [*args, *extra]

    def remove(self, host: TestHost) -> None:
        """Delete one host's container, its storage volume and known_hosts file."""
        remove_objects("container", [host.container])
        remove_objects("volume", [host.volume])
        host.known_hosts_path.unlink(missing_ok=True)
        if host in self.hosts:
            self.hosts.remove(host)

    def remove_all(self) -> None:
        """Delete every host this factory made (used by the fixtures' finalizers)."""
        for host in list(self.hosts):
            self.remove(host)
