"""Building the Debian 12 "customer server" images with mmdebstrap, cached on disk.

Two recipes, both plain Debian bookworm root filesystems made by ``mmdebstrap`` from Debian
packages (no image registry is needed):

- ``FULL`` (``host``): systemd as init, sshd, podman with runc, netavark, rsync, python3 … — a
  server that already runs containers, for the tests that are not about installing them;
- ``MINIMAL`` (``minimal``): systemd, sshd, curl and ca-certificates only, package lists empty —
  a minimal cloud image, for the tests of installing everything on a truly fresh server.

Each tarball is cached under ``/var/cache/websonic-test`` (``WEBSONIC_TEST_CACHE`` overrides)
keyed by a hash of its recipe, so changing a recipe rebuilds it automatically. Building and
importing happen under an exclusive file lock so concurrent test sessions do not race.
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
MINIMAL_IMAGE_REPO = "localhost/websonic-test/minimal"
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

# What a minimal Debian 12 cloud or container image ships and nothing more: init, sshd and a
# downloader for the portal's one-liner. No podman, runc, netavark, rsync, caddy, python3 or
# iproute2: installing those is what the tests on this image are about.
MINIMAL_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "curl",
    "ca-certificates",
)

# Runtime settings for the podman *inside* a host: the machine's three settings, except that the
# cgroup manager is systemd (systemd is PID 1 in the host). Measured with podman 4.3 on this
# machine's hybrid cgroup v1 layout: with cgroupfs, nested runc fails with 'error mounting
# "cgroup" to rootfs at "/sys/fs/cgroup": stat /sys/fs/cgroup/systemd/libpod-...'; the
# containers.conf key ``cgroupns = "private"`` is ignored on cgroup v1. The host container itself
# runs with ``--cgroupns=private`` (see hosts.py); together, plain ``podman run`` works inside.
#
# The minimal image carries this file too, and that is not a preinstall: no package owns
# /etc/containers/containers.conf (Debian's podman reads its defaults from /usr/share), so it
# installs nothing and hides nothing the installer must do. It describes this test MACHINE —
# a nested podman under a hybrid cgroup v1 layout that crun refuses and that cannot raise
# rlimits — which a real server (cgroup v2, podman on bare systemd) does not need. Without it
# no container could start inside any test host, whatever the installer did.
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


@dataclass(frozen=True)
class HostRecipe:
    """What one host image is made of; ``name`` names its tag and cache files."""

    name: str
    repo: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...] = CUSTOMIZE_HOOKS

    def hash(self) -> str:
        """Short hash of everything that defines the image; part of its tag and file name."""
        digest = hashlib.sha256()
        # The full recipe hashes as it always did, so its cached tarball stays valid.
        prefix = () if self.name == "host" else (self.name,)
        parts = (*prefix, SUITE, *self.packages, *self.hooks, *sorted(overlay_files().items()))
        for part in parts:
            digest.update(repr(part).encode())
        return digest.hexdigest()[:12]


FULL = HostRecipe("host", IMAGE_REPO, PACKAGES)
MINIMAL = HostRecipe("minimal", MINIMAL_IMAGE_REPO, MINIMAL_PACKAGES)


def recipe_hash(recipe: HostRecipe = FULL) -> str:
    """Short hash of everything that defines the image; part of its tag and cache file name."""
    return recipe.hash()


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


def mmdebstrap_argv(overlay: Path, output: Path, recipe: HostRecipe = FULL) -> list[str]:
    """The mmdebstrap command line that builds the root filesystem tarball."""
    include = ",".join(recipe.packages)
    argv = ["mmdebstrap", "--variant=apt", "--format=tar", f"--include={include}"]
    argv.append(f"--customize-hook=sync-in {overlay} /")
    argv += [f"--customize-hook={hook}" for hook in recipe.hooks]
    return [*argv, SUITE, str(output)]


def build_tarball(output: Path, recipe: HostRecipe = FULL) -> None:
    """Build the root filesystem tarball at ``output`` (atomically: temp file, then rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="websonic-test-overlay-") as tmp:
        overlay = Path(tmp) / "overlay"
        _write_overlay(overlay)
        partial = output.with_suffix(".tar.partial")
        run(mmdebstrap_argv(overlay, partial, recipe), timeout=BUILD_TIMEOUT)
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


def ensure_host_image(cache_dir: Path = CACHE_DIR, recipe: HostRecipe = FULL) -> HostImage:
    """Make sure the host image exists in podman: reuse, import the cached tarball, or build."""
    started = time.monotonic()
    key = recipe.hash()
    ref = f"{recipe.repo}:{key}"
    stem = f"{recipe.name}-{SUITE}-{key}"
    tarball = cache_dir / f"{stem}.tar"
    built = imported = False
    with file_lock(cache_dir / f"{stem}.lock"):
        if not image_exists(ref):
            if not tarball.is_file():
                build_tarball(tarball, recipe)
                built = True
            import_tarball(tarball, ref)
            imported = True
    return HostImage(ref, tarball, time.monotonic() - started, built, imported)


def ensure_minimal_host_image(cache_dir: Path = CACHE_DIR) -> HostImage:
    """The minimal server's image (see ``MINIMAL``), built and cached like the full one."""
    return ensure_host_image(cache_dir, MINIMAL)


__all__ = [
    "CACHE_DIR",
    "FULL",
    "MINIMAL",
    "HostImage",
    "HostRecipe",
    "ensure_host_image",
    "ensure_minimal_host_image",
    "recipe_hash",
]
