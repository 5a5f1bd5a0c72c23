"""Building the Debian 12 "customer server" image with mmdebstrap, cached on disk.

The image is a plain Debian bookworm root filesystem (systemd as init, sshd, podman with runc)
made by ``mmdebstrap`` from Debian packages — no image registry is needed. The tarball is
cached under ``/var/cache/websonic-test`` (``WEBSONIC_TEST_CACHE`` overrides) keyed by a hash
of the recipe, so changing the recipe rebuilds automatically. Building and importing happen
under an exclusive file lock so concurrent test sessions do not race.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbed._proc import run
from testbed.podman import podman

CACHE_DIR = Path(os.environ.get("WEBSONIC_TEST_CACHE", "/var/cache/websonic-test"))
IMAGE_REPO = "localhost/websonic-test/host"
SUITE = "bookworm"
BUILD_TIMEOUT = 1200.0

PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "procps",
    "iproute2",
    "iputils-ping",
    "curl",
    "ca-certificates",
    "python3",
    "rsync",
    "less",
    "netbase",
    "podman",
    "runc",
    "conmon",
    "netavark",
    "aardvark-dns",
    "iptables",
    "catatonit",
    "fuse-overlayfs",
    "uidmap",
)

# Runtime settings for the podman *inside* a host: the machine's three settings, except that the
# cgroup manager is systemd (systemd is PID 1 in the host). Measured with podman 4.3 on this
# machine's hybrid cgroup v1 layout: with cgroupfs, nested runc fails with 'error mounting
# "cgroup" to rootfs at "/sys/fs/cgroup": stat /sys/fs/cgroup/systemd/libpod-...'; the
# containers.conf key ``cgroupns = "private"`` is ignored on cgroup v1. The host container itself
# runs with ``--cgroupns=private`` (see hosts.py); together, plain ``podman run`` works inside.
INNER_CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "systemd"
"""

# Every host must get its own SSH host keys, so the image ships none; this unit makes them.
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate SSH host keys (websonic test host)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
"""

SSHD_CONF = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

# Shell snippets mmdebstrap runs after installing packages; "$1" is the new root directory.
CUSTOMIZE_HOOKS: tuple[str, ...] = (
    'rm -f "$1"/etc/ssh/ssh_host_*',
    'mkdir -p -m 700 "$1"/root/.ssh',
    'chroot "$1" systemctl enable websonic-ssh-hostkeys.service',
    'chroot "$1" systemctl mask getty@tty1.service console-getty.service',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
)


def overlay_files() -> dict[str, str]:
    """Files (path inside the image -> content) copied into the image after installation."""
    return {
        "etc/containers/containers.conf": INNER_CONTAINERS_CONF,
        "etc/systemd/system/websonic-ssh-hostkeys.service": HOSTKEYS_UNIT,
        "etc/ssh/sshd_config.d/websonic-test.conf": SSHD_CONF,
    }


def recipe_hash() -> str:
    """Short hash of everything that defines the image; part of its tag and cache file name."""
    digest = hashlib.sha256()
    for part in (SUITE, *PACKAGES, *CUSTOMIZE_HOOKS, *sorted(overlay_files().items())):
        digest.update(repr(part).encode())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class HostImage:
    """A ready podman image for test hosts, and how long getting it took."""

    ref: str
    tarball: Path
    seconds: float
    built: bool
    imported: bool


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_overlay(directory: Path) -> None:
    for relative, content in overlay_files().items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def mmdebstrap_argv(overlay: Path, output: Path) -> list[str]:
    """The mmdebstrap command line that builds the root filesystem tarball."""
    argv = ["mmdebstrap", "--variant=apt", "--format=tar", f"--include={','.join(PACKAGES)}"]
    argv.append(f"--customize-hook=sync-in {overlay} /")
    argv += [f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS]
    return [*argv, SUITE, str(output)]


def build_tarball(output: Path) -> None:
    """Build the root filesystem tarball at ``output`` (atomically: temp file, then rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="websonic-test-overlay-") as tmp:
        overlay = Path(tmp) / "overlay"
        _write_overlay(overlay)
        partial = output.with_suffix(".tar.partial")
        run(mmdebstrap_argv(overlay, partial), timeout=BUILD_TIMEOUT)
        partial.replace(output)


def image_exists(ref: str) -> bool:
    """Tell whether podman already has the image ``ref``."""
    return podman("image", "exists", ref, check=False).returncode == 0


def import_tarball(tarball: Path, ref: str) -> None:
    """Turn a root filesystem tarball into the podman image ``ref``."""
    podman(
        "import",
        "--change",
        'CMD ["/sbin/init"]',
        "--change",
        "STOPSIGNAL SIGRTMIN+3",
        "--change",
        "ENV container=podman",
        str(tarball),
        ref,
        timeout=600,
    )


def ensure_host_image(cache_dir: Path = CACHE_DIR) -> HostImage:
    """Make sure the host image exists in podman: reuse, import the cached tarball, or build."""
    started = time.monotonic()
    key = recipe_hash()
    ref = f"{IMAGE_REPO}:{key}"
    tarball = cache_dir / f"host-{SUITE}-{key}.tar"
    built = imported = False
    with file_lock(cache_dir / f"host-{SUITE}-{key}.lock"):
        if not image_exists(ref):
            if not tarball.is_file():
                build_tarball(tarball)
                built = True
            import_tarball(tarball, ref)
            imported = True
    return HostImage(ref, tarball, time.monotonic() - started, built, imported)


__all__ = ["CACHE_DIR", "HostImage", "ensure_host_image", "recipe_hash"]
