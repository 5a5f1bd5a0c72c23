"""Session SSH key pairs and the option set used for every ssh/scp call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testbed._proc import run


@dataclass(frozen=True)
class SshKeyPair:
    """An ed25519 key pair made with ssh-keygen (no passphrase)."""

    private_path: Path
    public_path: Path

    @property
    def public_key(self) -> str:
        """The public key line (``ssh-ed25519 AAAA... comment``)."""
        return self.public_path.read_text().strip()


def generate_keypair(directory: Path, name: str = "id_ed25519") -> SshKeyPair:
    """Create a fresh ed25519 key pair in ``directory``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = directory / name
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "websonic-test", "-f", str(private)])
    return SshKeyPair(private, private.with_name(name + ".pub"))


def ssh_options(
    key_path: Path | None, known_hosts_path: Path, *, connect_timeout: int = 5
) -> list[str]:
    """Options for ``ssh``/``scp``: batch mode, only our key, only our known_hosts, strict."""
    options = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts_path}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ServerAliveInterval=10",
    ]
    if key_path is None:
        return [*options, "-o", "PubkeyAuthentication=no"]
    return [*options, "-o", "IdentitiesOnly=yes", "-i", str(key_path)]
