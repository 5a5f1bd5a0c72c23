"""ssh, ssh-keyscan and ssh-keygen: argv builders, known_hosts lines and output parsers (no I/O).

Every connection WebSonic makes to a customer's server checks the server's host key strictly
against the key pinned on first contact: WebSonic writes a known_hosts file holding only that key
under a ``HostKeyAlias`` of its own, so neither the user's ``~/.ssh`` files nor another host that
once had the same address can interfere.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from websonic.core.runner import Command

#: Host key types asked for, most preferred first.
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
KEYSCAN_TYPES = "ed25519,ecdsa,rsa"
CONNECT_TIMEOUT = 10
PRIVATE_KEY_HEADERS = (
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN DSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
)


@dataclass(frozen=True)
class Target:
    """Where and as whom to log in, and how the server's key is checked."""

    user: str
    address: str
    port: int
    alias: str  # HostKeyAlias: the name the pinned key is filed under
    known_hosts: Path
    key_path: Path | None = None
    connect_timeout: int = CONNECT_TIMEOUT


def options(target: Target, *, forwarding: bool = False) -> list[str]:
    """Options for a non-interactive, strictly checked login that forwards nothing (but the
    ports given on the command line, with ``forwarding``)."""
    opts = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={target.connect_timeout}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={target.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"HostKeyAlias={target.alias}",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "LogLevel=ERROR",
    ]
    if not forwarding:
        opts += ["-o", "ClearAllForwardings=yes"]
    if target.key_path is not None:
        opts += ["-o", "IdentitiesOnly=yes", "-i", str(target.key_path)]
    return opts


def ssh(target: Target, remote: Sequence[str], *, stdin: bytes | None = None) -> Command:
    """``ssh ... USER@ADDRESS -- REMOTE`` (the remote argv is quoted for the remote shell)."""
    return Command.of(
        "ssh",
        *options(target),
        "-p",
        target.port,
        f"{target.user}@{target.address}",
        "--",
        shlex.join(remote),
        stdin=stdin,
    )


def tunnel(target: Target, local_port: int, remote_host: str, remote_port: int) -> Command:
    """``ssh -N -L 127.0.0.1:LOCAL:REMOTE_HOST:REMOTE_PORT``: a local port reaching a service
    the server can reach (a database on it or behind it); fails at once if it cannot listen."""
    forward = f"127.0.0.1:{local_port}:{_bracket(remote_host)}:{remote_port}"
    return Command.of(
        "ssh",
        *options(target, forwarding=True),
        "-o",
        "ExitOnForwardFailure=yes",
        "-N",
        "-L",
        forward,
        "-p",
        target.port,
        f"{target.user}@{target.address}",
    )


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def keyscan(address: str, port: int, *, timeout: int = CONNECT_TIMEOUT) -> Command:
    """``ssh-keyscan``: the server's public host keys (ed25519, ecdsa, rsa)."""
    return Command.of("ssh-keyscan", "-T", timeout, "-p", port, "-t", KEYSCAN_TYPES, "--", address)


def fingerprint(key: str) -> Command:
    """``ssh-keygen -lf -`` on one public key (given on stdin)."""
    return Command.of("ssh-keygen", "-l", "-E", "sha256", "-f", "-", stdin=(key + "\n").encode())


def parse_fingerprint(output: str) -> str:
    """``256 SHA256:abc... comment (ED25519)`` -> ``SHA256:abc... (ED25519)``."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("SHA256:"):
            kind = parts[-1] if parts[-1].startswith("(") else ""
            return f"{parts[1]} {kind}".strip()
    raise ValueError(f"no fingerprint in ssh-keygen output: {output!r}")


def parse_keyscan(output: str) -> list[str]:
    """Public keys (``TYPE BASE64``) from ``ssh-keyscan`` output (comments and hosts dropped)."""
    keys = []
    for line in output.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 3 and re.fullmatch(r"[A-Za-z0-9+/]+=*", parts[2]):
            keys.append(f"{parts[1]} {parts[2]}")
    return keys


def preferred_key(keys: Sequence[str]) -> str | None:
    """The key to pin: ed25519, then ecdsa, then whatever else the server offered (rsa)."""
    for kind in KEY_TYPES:
        for key in keys:
            if key.split()[0] == kind:
                return key
    return keys[0] if keys else None


def known_hosts_line(alias: str, key: str) -> str:
    """One known_hosts line filing ``key`` under ``alias`` (the HostKeyAlias of the target)."""
    kind, blob = key.split()[:2]
    return f"{alias} {kind} {blob}\n"


def looks_like_private_key(text: str) -> bool:
    """True for PEM/OpenSSH private key files (public keys and other files are refused)."""
    head = text.lstrip()[:64]
    return any(head.startswith(header) for header in PRIVATE_KEY_HEADERS)


#: stderr patterns of a failed ``ssh`` login -> what went wrong.
FAILURES = (
    ("host_key_changed", "REMOTE HOST IDENTIFICATION HAS CHANGED"),
    ("host_key_changed", "Host key verification failed"),
    ("refused", "Connection refused"),
    ("timeout", "timed out"),
    ("unreachable", "No route to host"),
    ("unreachable", "Network is unreachable"),
    ("unresolved", "Could not resolve hostname"),
    ("bad_key", "invalid format"),
    ("bad_key", "error in libcrypto"),
    ("bad_key", "incorrect passphrase"),
    ("auth", "Permission denied"),
    ("auth", "Too many authentication failures"),
    ("closed", "Connection closed"),
    ("closed", "Connection reset"),
)


def classify_failure(stderr: str) -> str | None:
    """What a failed ssh call's stderr says went wrong, or None (the remote command failed)."""
    for kind, pattern in FAILURES:
        if pattern.lower() in stderr.lower():
            return kind
    return None
