"""Files (a site's uploads) to or from a customer's server: ``websonic files sync``.

One side is a folder on this machine, the other a folder here or on a registered host
(``CUSTOMER/HOST:/path``), reached with its pinned host key checked strictly: rsync's remote
shell is WebSonic's own ``ssh`` command line (``-F /dev/null``, the known_hosts file written
from the pinned key, ``HostKeyAlias``), never the user's ``~/.ssh`` configuration.

The site-level migration calls :func:`sync` twice: a bulk pass with ``checksum=False`` while the
site still runs (size + modification time: fast, most of the data), then a final pass with
``checksum=True`` in the cutover window (whole contents compared: nothing that differs is
skipped). An interrupted transfer resumes from the part already received (``.websonic-partial``
on the receiving side); ``--delete`` is the only way anything is removed on the destination.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websonic.core.errors import (
    ConnectionFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ToolFailed,
    ToolMissing,
)
from websonic.core.runner import Result
from websonic.hosting import hosts
from websonic.platform import Platform
from websonic.tools import rsync, ssh

#: The UID and GID every WebSonic site image runs as: received files belong to it.
SITE_UID = SITE_GID = 10001
MAX_CHANGES = 10_000
MIN_RSYNC = (3, 2, 3)  # --mkpath  # changes kept in a report (the counts are always complete)
HOST_PATH = re.compile(r"^(?P<host>[a-z0-9-]+/[a-z0-9-]+):(?P<path>.*)$")
#: USER@HOST:PATH, HOST:PATH, rsync://… : a server WebSonic has not pinned.
UNPINNED = re.compile(r"^(?:rsync://|[^/:]*::|[^/:@]+@[^/:]+:|[^/:@]+:)")
INSPECT = """command -v rsync >/dev/null 2>&1 || { echo rsync=; exit 0; }
echo "rsync=$(rsync --version 2>/dev/null | head -n 1)"
echo "uid=$(id -u)"
if [ -d "$1" ]; then echo path=folder; elif [ -e "$1" ]; then echo path=other
else echo path=missing; fi
p=$1; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done
echo "nearest=$p"
if [ -r "$p" ] && [ -x "$p" ]; then echo readable=yes; else echo readable=no; fi
if [ -w "$p" ] && [ -x "$p" ]; then echo writable=yes; else echo writable=no; fi
"""


@dataclass(frozen=True)
class Endpoint:
    """A folder here (``host`` None) or on a registered host (``CUSTOMER/HOST``)."""

    path: str
    host: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.path}" if self.host else self.path


@dataclass(frozen=True)
class SyncOptions:
    delete: bool = False
    dry_run: bool = False
    checksum: bool = True  # False: size + modification time (a bulk pass)
    owner_uid: int = SITE_UID
    owner_gid: int = SITE_GID
    bwlimit_kib: int | None = None


@dataclass(frozen=True)
class SyncProgress:
    """The whole transfer so far, for a progress display."""

    bytes: int
    percent: int
    rate: float  # bytes per second
    files_checked: int | None
    files: int | None
    transfers: int
    current: str  # the file rsync last reported


@dataclass
class SyncReport:
    source: str
    dest: str
    dry_run: bool
    checksum: bool
    delete: bool
    files: int = 0  # entries in the source (files, folders, links)
    files_transferred: int = 0  # files whose contents were sent (would be, in a dry run)
    files_created: int = 0
    files_deleted: int = 0
    bytes_total: int = 0  # size of every file of the source
    bytes_transferred: int = 0  # size of the files transferred
    bytes_literal: int = 0  # data actually sent
    bytes_matched: int = 0  # data already on the receiving side (a resumed file)
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    changes: list[rsync.Change] = field(default_factory=list)
    changes_total: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["changes"] = [
            {"change": c.code, "action": c.action, "path": c.path} for c in self.changes
        ]
        return data


ProgressSink = Callable[[SyncProgress], None]


def parse_endpoint(text: str, what: str) -> Endpoint:
    """``CUSTOMER/HOST:/path`` or a local path; ``USER@HOST:/path`` is refused."""
    match = HOST_PATH.match(text)
    if match:
        path = match.group("path")
        if not path.startswith("/"):
            raise InvalidInput(
                f"The {what} {text!r} must name an absolute path on "
                f"{match.group('host')}: {match.group('host')}:/srv/uploads"
            )
        return Endpoint(os.path.normpath(path), match.group("host"))
    if UNPINNED.match(text):
        raise InvalidInput(
            f"The {what} {text!r} is a server WebSonic has not registered: WebSonic only "
            "talks to servers whose host key it pinned.",
            hint="Register it first (websonic host add CUSTOMER/NAME --ssh USER@HOST[:PORT]), "
            "then write CUSTOMER/NAME:/path.",
        )
    if not text:
        raise InvalidInput(f"The {what} is empty.")
    return Endpoint(os.path.abspath(os.path.expanduser(text)))


@dataclass(frozen=True)
class _Side:
    """One end as rsync sees it, and what was found there."""

    endpoint: Endpoint
    spec: str  # what rsync is given
    kind: str  # folder, other, missing
    uid: int  # the user that reads or writes there
    nearest: str  # the path, or its nearest parent that exists
    readable: bool  # by that user (the nearest folder)
    writable: bool


def sync(
    platform: Platform,
    source: str | Endpoint,
    dest: str | Endpoint,
    options: SyncOptions = SyncOptions(),
    progress: ProgressSink | None = None,
) -> SyncReport:
    """Make the folder ``dest`` hold what the folder ``source`` holds (see the module)."""
    src = source if isinstance(source, Endpoint) else parse_endpoint(source, "source")
    dst = dest if isinstance(dest, Endpoint) else parse_endpoint(dest, "destination")
    here, there, shell = _prepare(platform, src, dst)
    report = SyncReport(str(src), str(dst), options.dry_run, options.checksum, options.delete)
    report.warnings += _ownership_warnings(there, options)
    started = time.monotonic()
    result = _run(platform, here.spec, there.spec, options, shell, report, progress)
    report.seconds = round(time.monotonic() - started, 3)
    _finish(platform, report, result, src, dst)
    return report


def _prepare(platform: Platform, src: Endpoint, dst: Endpoint) -> tuple[_Side, _Side, str | None]:
    """Check everything before anything moves: rsync here and there, the host key, both ends."""
    if src.host and dst.host:
        raise InvalidInput(
            f"Both ends are servers ({src.host}, {dst.host}): one side must be this machine.",
            hint="Sync to a folder here first, then from it to the other server.",
        )
    _check_version(rsync.parse_version(platform.runner.run(rsync.version()).stdout), "here")
    remote = src.host or dst.host
    shell = _remote_shell(platform, remote) if remote else None
    here, there = _inspect(platform, src), _inspect(platform, dst)
    _check_source(here)
    _check_dest(there)
    return here, there, shell


def _finish(
    platform: Platform, report: SyncReport, result: Result, src: Endpoint, dst: Endpoint
) -> None:
    if result.returncode == rsync.EXIT_VANISHED:
        report.warnings.append(
            "Some source files vanished while copying (the site deleted "
            "them meanwhile): a later pass settles it."
        )
    elif result.returncode != 0:
        raise _failure(platform, result, src, dst, src.host or dst.host)
    try:
        _fill(report, rsync.parse_stats(result.stdout))
    except ValueError as exc:
        raise ToolFailed(
            f"rsync ended without its statistics ({exc})", returncode=0, stderr=result.stderr
        ) from None


# --- the two ends -------------------------------------------------------------------------------


def _remote_shell(platform: Platform, ref: str) -> str:
    platform.runner.which("ssh")
    with platform.sessions() as session:
        target = hosts.target(hosts.get_host(session, ref), _ssh_dir(platform))
    return rsync.remote_shell(["ssh", *ssh.options(target), "-p", str(target.port)])


def _ssh_dir(platform: Platform) -> Path:
    return platform.settings.home / "ssh"


def _inspect(platform: Platform, end: Endpoint) -> _Side:
    if end.host is None:
        path = Path(end.path)
        kind = "folder" if path.is_dir() else ("other" if path.exists() else "missing")
        nearest = next(p for p in (path, *path.parents) if p.exists())
        readable = os.access(nearest, os.R_OK | os.X_OK)
        writable = os.access(nearest, os.W_OK | os.X_OK)
        return _Side(end, end.path, kind, os.geteuid(), str(nearest), readable, writable)
    with platform.sessions() as session:
        host = hosts.get_host(session, end.host)
        result = hosts.run_remote(
            platform.runner,
            host,
            _ssh_dir(platform),
            ["sh", "-c", INSPECT, "sh", end.path],
            timeout=60,
        )
        facts = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
        if not result.ok or "rsync" not in facts:
            raise ConnectionFailed(
                f"Could not look at {end} (exit {result.returncode}): "
                f"{result.stderr.strip()[-300:]}"
            )
        if not facts["rsync"]:
            raise ToolMissing(
                f"rsync is not installed on {end.host}.",
                hint="Install it there: apt-get install -y rsync",
            )
        _check_version(rsync.parse_version(facts["rsync"]), f"on {end.host}")
        spec = rsync.remote_path(host.ssh_user, host.address, end.path)
    return _Side(end, spec, facts.get("path", "missing"), int(facts.get("uid") or -1),
                 facts.get("nearest", ""), facts.get("readable") == "yes",
                 facts.get("writable") == "yes")  # fmt: skip


def _check_version(found: str, where: str) -> None:
    numbers = tuple(int(n) for n in re.findall(r"\d+", found)[:3])
    if numbers and numbers < MIN_RSYNC:
        needed = ".".join(map(str, MIN_RSYNC))
        raise ToolMissing(
            f"rsync {found} {where} is too old: WebSonic needs {needed} or newer.",
            hint="Debian 12 and Ubuntu 22.04 have it: apt-get install -y rsync",
        )


def _where(side: _Side) -> str:
    return f" on {side.endpoint.host}" if side.endpoint.host else ""


def _check_source(side: _Side) -> None:
    if side.kind == "missing":
        raise NotFound(f"The source folder {side.endpoint.path} does not exist{_where(side)}.")
    if side.kind != "folder":
        raise InvalidInput(
            f"The source {side.endpoint.path}{_where(side)} is not a folder: "
            "files sync copies a folder's contents."
        )
    if not side.readable:
        raise PermissionDenied(
            f"The user {_who(side)} may not read the folder {side.endpoint.path}{_where(side)}."
        )


def _check_dest(side: _Side) -> None:
    if side.kind == "other":
        raise InvalidInput(
            f"The destination {side.endpoint.path}{_where(side)} exists and is not a folder."
        )
    if not side.writable:
        made = "" if side.nearest == side.endpoint.path else f" (to make {side.endpoint.path})"
        raise PermissionDenied(
            f"The user {_who(side)} may not write in {side.nearest}{_where(side)}{made}.",
            hint="Choose a folder that user may write in, log in as a user that may "
            "(websonic host add with another --ssh user), or fix the folder's owner and mode.",
        )


def _who(side: _Side) -> str:
    return f"uid {side.uid}"


def _ownership_warnings(dest: _Side, options: SyncOptions) -> list[str]:
    if dest.uid == 0:
        return []
    who = f"the login user on {dest.endpoint.host}" if dest.endpoint.host else "this user here"
    return [
        f"The files are received by {who} (uid {dest.uid}), not root: they cannot be "
        f"given to {options.owner_uid}:{options.owner_gid} and keep that user's "
        "ownership."
    ]


# --- the transfer -------------------------------------------------------------------------------


def _run(
    platform: Platform,
    source: str,
    dest: str,
    options: SyncOptions,
    shell: str | None,
    report: SyncReport,
    progress: ProgressSink | None,
) -> Result:
    flags = rsync.Flags(
        checksum=options.checksum,
        delete=options.delete,
        dry_run=options.dry_run,
        owner=(options.owner_uid, options.owner_gid),
        bwlimit_kib=options.bwlimit_kib,
    )
    listener = _Listener(report, progress)
    command = rsync.sync(source, dest, flags, remote_shell=shell)
    return platform.runner.run(command, on_line=listener, check=False)


@dataclass
class _Listener:
    """rsync's output as it comes: changes into the report, progress to the display. It never
    raises (an exception would stop reading rsync's output and leave rsync blocked)."""

    report: SyncReport
    progress: ProgressSink | None
    current: str = ""

    def __call__(self, stream: str, line: str) -> None:
        if stream != "out":
            return
        change = rsync.parse_change(line)
        if change is not None:
            self.report.changes_total += 1
            if len(self.report.changes) < MAX_CHANGES:
                self.report.changes.append(change)
            self.current = change.path
            return
        update = rsync.parse_progress(line)
        if update is not None and self.progress is not None:
            self._show(update)

    def _show(self, update: rsync.Progress) -> None:
        shown = SyncProgress(update.bytes, update.percent, update.rate, update.files_checked,
                             update.files, update.transfers or 0, self.current)  # fmt: skip
        try:
            assert self.progress is not None
            self.progress(shown)
        except Exception as exc:  # the display failed: the transfer goes on without it
            self.progress = None
            self.report.warnings.append(f"The progress display stopped: {exc!r}")


def _fill(report: SyncReport, stats: rsync.Stats) -> None:
    report.files, report.files_transferred = stats.files, stats.transferred
    report.files_created, report.files_deleted = stats.created, stats.deleted
    report.bytes_total, report.bytes_transferred = stats.total_size, stats.transferred_size
    report.bytes_literal, report.bytes_matched = stats.literal, stats.matched
    report.bytes_sent, report.bytes_received = stats.sent, stats.received


def _failure(
    platform: Platform, result: Result, src: Endpoint, dst: Endpoint, remote: str | None
) -> Exception:
    """The error to show for a failed rsync: a lost connection, a changed host key, a folder
    that cannot be written, a signal, or rsync's own words."""
    stderr, code = result.stderr, result.returncode
    resume = "Run the same command again: it resumes where it stopped."
    if code == rsync.EXIT_SIGNAL or code < 0:
        return ToolFailed("rsync was interrupted.", returncode=code, stderr=stderr, hint=resume)
    kind = rsync.classify_failure(stderr)
    if kind in ("permission", "read_only"):
        shown = "\n".join(rsync.error_lines(stderr, kind))
        return PermissionDenied(
            f"rsync may not read or write there ({src} -> {dst}):\n{shown}",
            hint="Write as a user allowed to (the host's login user), or "
            "fix the folder's owner and mode.",
        )
    if kind == "no_space":
        return ToolFailed(
            f"No space left on the receiving side ({dst}).",
            returncode=code,
            stderr=stderr,
            hint="Free some space, then run again: it resumes.",
        )
    if remote and (code in rsync.EXIT_CONNECTION or ssh.classify_failure(stderr)):
        _raise_connection(platform, remote)  # the host key, or why it cannot be reached
        return ConnectionFailed(
            f"The connection to {remote} was lost during the transfer.", hint=resume
        )
    tail = "".join(f"\n{line}" for line in stderr.strip().splitlines()[-5:] if line.strip())
    meaning = f" ({rsync.EXIT_MEANINGS[code]})" if code in rsync.EXIT_MEANINGS else ""
    return ToolFailed(
        f"rsync failed ({src} -> {dst}), exit {code}{meaning}{tail}",
        returncode=code,
        stderr=stderr,
        hint=resume if code != rsync.EXIT_PARTIAL else None,
    )


def _raise_connection(platform: Platform, ref: str) -> None:
    """Log in once more: raises HostKeyChanged or ConnectionFailed with the reason."""
    with platform.sessions() as session:
        host = hosts.get_host(session, ref)
        hosts.run_remote(platform.runner, host, _ssh_dir(platform), ["true"], timeout=60)
