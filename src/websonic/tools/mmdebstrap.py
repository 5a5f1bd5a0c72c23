"""mmdebstrap argv builders and dpkg parsers (pure; no I/O).

A base image's root filesystem is made by ``mmdebstrap`` from Debian packages. With
``SOURCE_DATE_EPOCH`` set, mmdebstrap clamps file times and skips its own logs; the customize
hooks below remove what is left that differs between two runs (backup files of dpkg and debconf,
the ldconfig cache, apt's binary caches), add the site user and empty the machine id.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from websonic.core.runner import Command

#: The non-root user every site runs as.
SITE_UID = 10001
SITE_USER = "site"

#: Files that differ between two otherwise identical runs; removed by a customize hook.
NON_REPRODUCIBLE = (
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*_*",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/*",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
    "var/lib/systemd/random-seed",
    "tmp/*",
    "var/tmp/*",
    "root/.cache",
)


def cleanup_hook() -> str:
    """A customize hook (``$1`` is the root) removing non-reproducible files."""
    paths = " ".join(f'"$1"/{p}' for p in NON_REPRODUCIBLE)
    return (
        f"rm -rf {paths}; "
        # An empty machine id: systemd/dbus make one at boot if they ever run; none do here.
        'if [ -e "$1"/etc/machine-id ]; then : > "$1"/etc/machine-id; fi; '
        'rm -f "$1"/var/lib/dbus/machine-id'
    )


def site_user_hook(uid: int = SITE_UID, name: str = SITE_USER) -> str:
    """A customize hook adding the site's user and group (no login, home /srv/site).

    Written straight into the account files so the base needs no ``passwd`` package, and the
    result does not depend on the date (useradd would write today's date into /etc/shadow).
    """
    return (
        account_hook(name, uid, home="/srv/site", login_shell="/usr/sbin/nologin")
        + '; mkdir -p "$1"/srv/site && chmod 0755 "$1"/srv/site'
    )


def account_hook(
    name: str, uid: int, *, home: str, login_shell: str, gecos: str | None = None
) -> str:
    """A hook adding user and group ``name`` with id ``uid`` unless they exist (idempotent).

    As an essential hook (before the remaining packages are installed) it fixes the id of a
    user that a package's maintainer script would otherwise create with the next free id: the
    scripts keep an existing user.
    """
    passwd = f"{name}:x:{uid}:{uid}:{gecos or name}:{home}:{login_shell}"
    group = f"{name}:x:{uid}:"
    shadow = f"{name}:*:0:0:99999:7:::"
    return (
        f'grep -q \'^{name}:\' "$1"/etc/passwd || echo {shlex.quote(passwd)} >> "$1"/etc/passwd; '
        f'grep -q \'^{name}:\' "$1"/etc/group || echo {shlex.quote(group)} >> "$1"/etc/group; '
        f'if [ -e "$1"/etc/shadow ] && ! grep -q \'^{name}:\' "$1"/etc/shadow; then '
        f'echo {shlex.quote(shadow)} >> "$1"/etc/shadow; fi; '
        f'if [ -e "$1"/etc/gshadow ] && ! grep -q \'^{name}:\' "$1"/etc/gshadow; then '
        f'echo {shlex.quote(name + ":!::")} >> "$1"/etc/gshadow; fi'
    )


def write_file_hook(path: str, content: str, mode: int = 0o644) -> str:
    """A customize hook writing ``content`` to ``path`` (absolute, inside the root)."""
    if not path.startswith("/"):
        raise ValueError(f"path must be absolute inside the root: {path!r}")
    return (
        f'mkdir -p "$1"{shlex.quote(str(Path(path).parent))} && '
        f'printf %s {shlex.quote(content)} > "$1"{shlex.quote(path)} && '
        f'chmod {mode:o} "$1"{shlex.quote(path)}'
    )


def chroot_hook(*argv: str) -> str:
    """A customize hook running a command inside the new root."""
    return 'chroot "$1" ' + " ".join(shlex.quote(a) for a in argv)


def mmdebstrap(
    *,
    suite: str,
    mirror: str,
    packages: Sequence[str],
    output: Path,
    epoch: int,
    variant: str = "apt",
    customize_hooks: Sequence[str] = (),
    components: Sequence[str] = ("main",),
    essential_hooks: Sequence[str] = (),
) -> Command:
    """``mmdebstrap`` writing a tarball of a Debian root filesystem to ``output``.

    ``output`` must end in ``.tar`` (mmdebstrap picks the format from the name).
    ``essential_hooks`` run after the essential packages are installed, before the others;
    ``customize_hooks`` at the end.
    """
    if not str(output).endswith(".tar"):
        raise ValueError(f"output must end in .tar: {output}")
    argv: list[str] = [
        "mmdebstrap",
        f"--variant={variant}",
        "--format=tar",
        f"--components={','.join(components)}",
        '--aptopt=Acquire::Retries "3"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    ]
    if packages:
        argv.append(f"--include={','.join(packages)}")
    for hook in essential_hooks:
        argv.append(f"--essential-hook={hook}")
    for hook in customize_hooks:
        argv.append(f"--customize-hook={hook}")
    argv += [suite, str(output), mirror]
    return Command.of(*argv, env={"SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C.UTF-8"})


def parse_dpkg_status(text: str) -> list[tuple[str, str]]:
    """(package, version) of every installed package in a dpkg ``status`` file, sorted.

    Architecture-qualified duplicates (multi-arch ``same``) are listed once per architecture as
    ``name:arch`` when the same name appears for more than one architecture.
    """
    entries: list[tuple[str, str, str]] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if not line or line[0] in " \t":
                continue  # continuation lines of multi-line fields
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        status = fields.get("Status", "").split()
        if "Package" in fields and status[-1:] == ["installed"]:
            entries.append((fields["Package"], fields.get("Architecture", ""), fields["Version"]))
    archs: dict[str, set[str]] = {}
    for name, arch, _ in entries:
        archs.setdefault(name, set()).add(arch)
    result = {
        (f"{name}:{arch}" if len(archs[name]) > 1 else name, version)
        for name, arch, version in entries
    }
    return sorted(result)


def parse_dpkg_query(output: str) -> list[tuple[str, str]]:
    """(package, version) pairs from ``dpkg-query -W -f '${Package}\\t${Version}\\n'``."""
    pairs = set()
    for line in output.splitlines():
        name, sep, version = line.partition("\t")
        if sep and name.strip():
            pairs.add((name.strip(), version.strip()))
    return sorted(pairs)


def dpkg_query_argv() -> list[str]:
    """The command listing installed packages inside an image (for ``podman run``)."""
    return ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n"]
