"""Customer servers: adding one (its host key pinned on first contact, or only if it has the
fingerprint the agency read on the server itself), finding, re-trusting (the new key's
fingerprint confirmed), and the one way to run a command on it over SSH with the pinned key
checked strictly.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import Customer
from websonic.accounts.service import get_customer
from websonic.audit.service import record
from websonic.core.errors import (
    AlreadyExists,
    ConnectionFailed,
    HostKeyChanged,
    InvalidInput,
    NotFound,
)
from websonic.core.naming import check_slug
from websonic.core.runner import Command, LineSink, Result, Runner
from websonic.hosting.models import Host
from websonic.tools import ssh

USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$", re.IGNORECASE)
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*$", re.IGNORECASE)
TCP_TIMEOUT = 10.0
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


@dataclass(frozen=True)
class HostRef:
    customer: str
    name: str

    def __str__(self) -> str:
        return f"{self.customer}/{self.name}"


@dataclass(frozen=True)
class SshAddress:
    user: str
    address: str
    port: int = 22


def parse_host_ref(value: str) -> HostRef:
    customer, slash, name = value.partition("/")
    if not slash:
        raise InvalidInput(f"Expected CUSTOMER/NAME, got {value!r} (e.g. acme/web1).")
    return HostRef(check_slug(customer, "customer slug"), check_slug(name, "host name"))


def parse_ssh_address(value: str) -> SshAddress:
    """``USER@HOST[:PORT]`` (an IPv6 address in brackets: ``root@[2001:db8::1]:2222``)."""
    user, at, rest = value.rpartition("@")
    if not at or not USER.match(user):
        raise InvalidInput(
            f"Invalid --ssh {value!r}.", hint="Use USER@HOST[:PORT], e.g. root@203.0.113.7:22."
        )
    port_text = ""
    if rest.startswith("["):
        address, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise InvalidInput(f"Invalid address in --ssh {value!r}.")
        port_text = tail[1:]
    elif rest.count(":") == 1:
        address, _, port_text = rest.partition(":")
    else:
        address = rest
    _check_address(address, value)
    return SshAddress(user, address, _port(port_text, value))


def _check_address(address: str, value: str) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not HOSTNAME.match(address):
            raise InvalidInput(f"Invalid host {address!r} in --ssh {value!r}.") from None


def _port(text: str, value: str) -> int:
    if not text:
        return 22
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidInput(f"Invalid port {text!r} in --ssh {value!r}: use 1 to 65535.")
    return int(text)


def check_key_file(path: Path) -> Path:
    """The private key file, resolved; refused if missing, unreadable or not a private key."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"Key file {path} does not exist.")
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise InvalidInput(f"Key file {path} cannot be read: {exc.strerror}.") from None
    if not ssh.looks_like_private_key(text):
        raise InvalidInput(
            f"{path} is not an SSH private key.",
            hint="Give the private half (e.g. ~/.ssh/id_ed25519), not the .pub file.",
        )
    return path


def check_fingerprint(text: str) -> str:
    """``SHA256:…`` as ssh-keygen -l prints it (a trailing ``(ED25519)`` or ``=`` allowed)."""
    value = text.strip().split()[0] if text.strip() else ""
    if not FINGERPRINT.match(value):
        raise InvalidInput(
            f"Invalid fingerprint {text!r}: expected SHA256:… (43 base64 characters).",
            hint="Read it on the server itself: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
        )
    return value.rstrip("=")


# --- connecting ---------------------------------------------------------------------------


def alias(host: Host) -> str:
    """The HostKeyAlias the pinned key is filed under (unique per WebSonic host)."""
    return f"websonic-host-{host.customer_id}-{host.name}"


def target(host: Host, ssh_dir: Path, key: str | None = None) -> ssh.Target:
    """The SSH target of ``host``, with a known_hosts file written from its pinned key."""
    pinned = key or host.host_key
    if not pinned:
        raise InvalidInput(f"Host {host.name} has no pinned host key.")
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = alias(host)
    known_hosts = ssh_dir / f"{name}.known_hosts"
    scratch = known_hosts.with_name(f".{known_hosts.name}.{os.getpid()}")
    scratch.write_text(ssh.known_hosts_line(name, pinned))
    scratch.replace(known_hosts)  # atomic: a concurrent connection never reads half a file
    key_path = Path(host.key_path) if host.key_path else None
    return ssh.Target(host.ssh_user, host.address, host.port, name, known_hosts, key_path)


def remote_command(
    host: Host, ssh_dir: Path, remote: Sequence[str], *, stdin: bytes | None = None
) -> Command:
    """A Command running ``remote`` (an argv) on ``host``, checked against its pinned key."""
    return ssh.ssh(target(host, ssh_dir), remote, stdin=stdin)


def run_remote(
    runner: Runner,
    host: Host,
    ssh_dir: Path,
    remote: Sequence[str],
    *,
    stdin: bytes | None = None,
    timeout: float = 300,
    on_line: LineSink | None = None,
) -> Result:
    """Run ``remote`` on ``host``; connection failures raise ConnectionFailed/HostKeyChanged."""
    command = remote_command(host, ssh_dir, remote, stdin=stdin)
    result = runner.run(command, check=False, timeout=timeout, on_line=on_line)
    if result.returncode == 255:
        _raise_failure(runner, host, result.stderr)
    return result


def _raise_failure(runner: Runner, host: Host, stderr: str) -> None:
    kind = ssh.classify_failure(stderr)
    where = f"{host.ssh_user}@{host.address}:{host.port}"
    if kind == "host_key_changed":
        _raise_key_changed(runner, host)
    _raise_kind(kind, where, stderr)


def _raise_kind(kind: str | None, where: str, stderr: str) -> None:
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    if kind == "auth":
        raise ConnectionFailed(
            f"{where} refused the login (authentication failed).",
            hint="Check the user and that the key's public half is in its authorized_keys.",
        )
    if kind == "bad_key":
        raise ConnectionFailed(f"The SSH key cannot be used: {tail}", hint="Use an unencrypted "
                               "private key (BatchMode: no passphrase prompt).")  # fmt: skip
    messages = {
        "refused": "refused the connection (is sshd running on that port?)",
        "timeout": "did not answer in time (firewall, wrong address or port?)",
        "unreachable": "is unreachable (no route)",
        "unresolved": "cannot be resolved (unknown host name)",
        "closed": "closed the connection",
    }
    raise ConnectionFailed(f"{where} {messages.get(kind or '', 'could not be reached')}: {tail}")


def _raise_key_changed(runner: Runner, host: Host) -> None:
    old = fingerprint(runner, host.host_key or "")
    keys = scan(runner, host.address, host.port)
    new = fingerprint(runner, keys[0]) if keys else "(could not read it)"
    ref = f"{host.customer.slug}/{host.name}"
    raise HostKeyChanged(
        f"The host key of {ref} ({host.address}:{host.port}) has CHANGED: pinned {old}, "
        f"server now shows {new}. Refusing to connect (this may be an attack).",
        hint=f"If the server was reinstalled or its keys regenerated, check the new fingerprint "
        f"on the server itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
        f"re-pin it with: websonic host trust {ref}",
    )


def probe_tcp(address: str, port: int, timeout: float = TCP_TIMEOUT) -> None:
    """Refuse early with a clear message when nothing answers on ADDRESS:PORT."""
    where = f"{address}:{port}"
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return
    except socket.gaierror:
        raise ConnectionFailed(f"{address} cannot be resolved (unknown host name).") from None
    except ConnectionRefusedError:
        raise ConnectionFailed(
            f"{where} refused the connection (is sshd running on that port?)."
        ) from None
    except TimeoutError:
        raise ConnectionFailed(
            f"{where} did not answer within {timeout:.0f} s (firewall, wrong address or port?)."
        ) from None
    except OSError as exc:
        raise ConnectionFailed(f"{where} is unreachable: {exc.strerror or exc}.") from None


def scan(runner: Runner, address: str, port: int) -> list[str]:
    """The server's host keys, preferred first."""
    result = runner.run(ssh.keyscan(address, port), check=False, timeout=60)
    keys = ssh.parse_keyscan(result.stdout)
    best = ssh.preferred_key(keys)
    return [best, *(k for k in keys if k != best)] if best else []


def fingerprint(runner: Runner, key: str) -> str:
    if not key:
        return "(none)"
    return ssh.parse_fingerprint(runner.run(ssh.fingerprint(key)).stdout)


def _first_contact(runner: Runner, host: Host, ssh_dir: Path, expected: str | None) -> str:
    """Scan and pin the host key (the one with the ``expected`` fingerprint, if given), then
    prove a login works with it; returns the key."""
    probe_tcp(host.address, host.port)
    keys = scan(runner, host.address, host.port)
    if not keys:
        raise ConnectionFailed(
            f"{host.address}:{host.port} did not show an SSH host key (is it an SSH server?)."
        )
    key = keys[0] if expected is None else _key_with(runner, host, keys, expected)
    host.host_key = key
    result = run_remote(runner, host, ssh_dir, ["true"], timeout=60)
    if not result.ok:
        raise ConnectionFailed(f"Logged in, but `true` failed (exit {result.returncode}).")
    return key


def _key_with(runner: Runner, host: Host, keys: list[str], expected: str) -> str:
    """The key whose fingerprint is ``expected``; refused (both shown) if the server has none."""
    shown = {fingerprint(runner, key): key for key in keys}
    for printed, key in shown.items():
        if printed.split()[0].rstrip("=") == expected:
            return key
    raise HostKeyChanged(
        f"{host.address}:{host.port} shows the host key {' / '.join(shown)}, not the expected "
        f"{expected}. Refusing to pin it (this may be an attack, or the fingerprint is wrong); "
        "nothing was stored.",
        hint="Read the fingerprint again on the server itself: "
        "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
    )


# --- services -----------------------------------------------------------------------------


def add_host(
    session: Session,
    runner: Runner,
    ssh_dir: Path,
    ref: str,
    ssh_text: str,
    *,
    key_path: Path | None,
    actor: str,
    expected: str | None = None,
) -> Host:
    """Register CUSTOMER/NAME: pin its host key (only one with the ``expected`` fingerprint,
    if given) and prove the login; nothing kept on failure."""
    host_ref = parse_host_ref(ref)
    where = parse_ssh_address(ssh_text)
    expected = check_fingerprint(expected) if expected is not None else None
    key = check_key_file(key_path) if key_path is not None else None
    customer = get_customer(session, host_ref.customer)
    if _find(session, customer, host_ref.name):
        raise AlreadyExists(f"Host {host_ref} already exists.")
    host = Host(
        customer_id=customer.id,
        name=host_ref.name,
        ssh_user=where.user,
        address=where.address,
        port=where.port,
        key_path=str(key) if key else None,
        facts={},
    )
    host.customer = customer
    _first_contact(runner, host, ssh_dir, expected)
    session.add(host)
    session.flush()
    detail = {"ssh": f"{where.user}@{where.address}:{where.port}"}
    detail["fingerprint"] = fingerprint(runner, host.host_key or "")
    detail["checked"] = "against --fingerprint" if expected else "trusted on first use"
    record(session, actor, "host.add", customer_id=customer.id, target=str(host_ref), detail=detail)
    return host


def key_change(session: Session, runner: Runner, ref: str) -> tuple[str, str]:
    """The pinned key's fingerprint and the one the server shows now (to confirm a trust)."""
    host = get_host(session, ref)
    probe_tcp(host.address, host.port)
    keys = scan(runner, host.address, host.port)
    return fingerprint(runner, host.host_key or ""), (
        fingerprint(runner, keys[0]) if keys else "(no key shown)"
    )


def trust_host(
    session: Session, runner: Runner, ssh_dir: Path, ref: str, *, expected: str, actor: str
) -> tuple[Host, str]:
    """Pin the server's key in place of the old one, only if its fingerprint is ``expected``
    (read on the server, or confirmed by the user); audited. Returns the host and the old
    fingerprint."""
    expected = check_fingerprint(expected)
    host = get_host(session, ref)
    old = fingerprint(runner, host.host_key or "")
    _first_contact(runner, host, ssh_dir, expected)
    new = fingerprint(runner, host.host_key or "")
    record(
        session,
        actor,
        "host.trust",
        customer_id=host.customer_id,
        target=ref,
        detail={"old_fingerprint": old, "new_fingerprint": new},
    )
    return host, old


def get_host(session: Session, ref: str) -> Host:
    host_ref = parse_host_ref(ref)
    customer = get_customer(session, host_ref.customer)
    host = _find(session, customer, host_ref.name)
    if host is None:
        raise NotFound(
            f"Unknown host {host_ref}.",
            hint=f"List the hosts with: websonic host list {customer.slug}",
        )
    return host


def list_hosts(session: Session, customer_slug: str) -> list[Host]:
    customer = get_customer(session, customer_slug)
    query = select(Host).where(Host.customer_id == customer.id).order_by(Host.name)
    return list(session.scalars(query))


def _find(session: Session, customer: Customer, name: str) -> Host | None:
    return session.scalar(select(Host).where(Host.customer_id == customer.id, Host.name == name))
