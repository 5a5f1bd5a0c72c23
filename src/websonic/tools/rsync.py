"""rsync: the argv of a sync, and parsers of what it prints (no I/O).

rsync runs with ``--itemize-changes`` (one line per file changed, created or deleted),
``--info=progress2`` (the whole transfer's bytes, percent, rate and files left to check, on
lines separated by carriage returns) and ``--info=stats2`` (totals at the end), numbers
without digit separators (``--no-h``) and file names unescaped (``-8``, UTF-8 locale).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from websonic.core.runner import Command

#: Where an interrupted file is kept (in its folder on the receiving side) to resume from.
PARTIAL_DIR = ".websonic-partial"
#: Exit codes of rsync that are worth a sentence of their own.
EXIT_PARTIAL = 23  # some files or attributes were not transferred (see the errors)
EXIT_VANISHED = 24  # some source files vanished while copying (a live site deleted them)
EXIT_SIGNAL = 20  # received SIGINT, SIGTERM or SIGHUP
EXIT_SSH = 255
#: What rsync's exit codes mean, for messages (a remote side's own error line can get lost when
#: it ends the connection first).
EXIT_MEANINGS = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or folders",
    5: "error starting the client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O: a folder or file that cannot be made or written?",
    12: "error in the rsync protocol data stream",
    23: "some files or attributes were not transferred",
    30: "timeout in data send/receive",
}
#: The connection failed or was lost: socket I/O, protocol stream, timeouts, the remote shell.
EXIT_CONNECTION = frozenset({10, 12, 30, 35, EXIT_SSH})


@dataclass(frozen=True)
class Flags:
    """How a sync behaves (see ``websonic files sync --help``)."""

    checksum: bool = True  # compare whole contents (else size + modification time)
    delete: bool = False  # remove what the source no longer has (after the transfer)
    dry_run: bool = False  # list what would change, change nothing
    owner: tuple[int, int] | None = (10001, 10001)  # UID, GID given to every file received
    bwlimit_kib: int | None = None  # KiB/s


def sync(source: str, dest: str, flags: Flags, *, remote_shell: str | None = None) -> Command:
    """``rsync … -- SOURCE DEST``: the contents of the folder SOURCE into the folder DEST.

    Paths are given as they are: ``-s`` (``--secluded-args``, formerly ``--protect-args``)
    sends them through the protocol, so spaces and other characters reach the remote side
    without any shell in between."""
    argv = [
        "rsync",
        "--recursive",
        "--links",
        "--perms",
        "--times",
        "-s",
        "-8",
        "--no-h",
        "--itemize-changes",
        "--info=progress2,stats2",
        "--no-inc-recursive",
        "--partial",
        f"--partial-dir={PARTIAL_DIR}",
        "--mkpath",
    ]
    if flags.checksum:
        argv.append("--checksum")
    if flags.owner is not None:
        argv.append(f"--chown={flags.owner[0]}:{flags.owner[1]}")
    if flags.delete:
        argv.append("--delete-after")
    if flags.dry_run:
        argv.append("--dry-run")
    if flags.bwlimit_kib:
        argv.append(f"--bwlimit={flags.bwlimit_kib}")
    if remote_shell is not None:
        argv += ["-e", remote_shell]
    argv += ["--", as_folder(source), as_folder(dest)]
    return Command(tuple(argv), env={"LC_ALL": "C.UTF-8"})


def as_folder(path: str) -> str:
    """A trailing slash: rsync then copies the folder's contents, not the folder itself."""
    return path if path.endswith("/") else path + "/"


def remote_path(user: str, address: str, path: str) -> str:
    """``USER@ADDRESS:PATH`` (an IPv6 address in brackets)."""
    host = f"[{address}]" if ":" in address else address
    return f"{user}@{host}:{path}"


def remote_shell(argv: Sequence[str]) -> str:
    """The ``-e`` value: one string that rsync splits on spaces, where quotes keep an
    argument whole (a quote inside is doubled; rsync knows no backslash escapes)."""
    return " ".join(_shell_word(arg) for arg in argv)


def _shell_word(arg: str) -> str:
    if arg and not any(c in arg for c in " \t'\""):
        return arg
    return "'" + arg.replace("'", "''") + "'"


def version() -> Command:
    return Command.of("rsync", "--version")


def parse_version(output: str) -> str:
    """``rsync  version 3.5.0  protocol version 32`` (or ``version v3.2.7``) -> the number."""
    match = re.search(r"version\s+v?(\d+\.\d+\.\d+\S*)", output)
    return match.group(1) if match else ""


# --- progress -----------------------------------------------------------------------------------

PROGRESS = re.compile(
    r"^\s*(?P<bytes>[\d,]+)\s+(?P<percent>\d+)%\s+(?P<rate>[\d.,]+)(?P<unit>[kMGT]?B)/s\s+"
    r"(?P<time>\d+:\d\d:\d\d)"
    r"(?:\s+\(xfr#(?P<xfr>\d+),\s+(?:to|ir)-chk=(?P<left>\d+)/(?P<total>\d+)\))?\s*$"
)
UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass(frozen=True)
class Progress:
    """One ``--info=progress2`` update: the whole transfer so far."""

    bytes: int  # bytes of file data transferred (or matched) so far
    percent: int
    rate: float  # bytes per second
    transfers: int | None = None  # files transferred so far
    to_check: int | None = None  # files still to look at
    files: int | None = None  # files in all

    @property
    def files_checked(self) -> int | None:
        if self.files is None or self.to_check is None:
            return None
        return self.files - self.to_check


def parse_progress(line: str) -> Progress | None:
    """The newest progress update in a line (updates are separated by carriage returns)."""
    for segment in reversed(line.split("\r")):
        match = PROGRESS.match(segment)
        if match:
            return _progress(match)
    return None


def _progress(match: re.Match[str]) -> Progress:
    def number(name: str) -> int | None:
        value = match.group(name)
        return int(value) if value is not None else None

    rate = float(match.group("rate").replace(",", "")) * UNITS[match.group("unit")]
    return Progress(
        bytes=int(match.group("bytes").replace(",", "")),
        percent=int(match.group("percent")),
        rate=rate,
        transfers=number("xfr"),
        to_check=number("left"),
        files=number("total"),
    )


# --- changes ------------------------------------------------------------------------------------

ITEMIZE = re.compile(r"^(?P<code>\*deleting|[<>ch.][fdLDS][.+?a-zA-Z ]{9})\s(?P<name>.+)$")


@dataclass(frozen=True)
class Change:
    """One line of ``--itemize-changes``: ``>f+++++++++ photos/été.jpg``, ``*deleting old``."""

    code: str
    path: str

    @property
    def action(self) -> str:
        """deleted, created, transferred (content), or changed (attributes only)."""
        if self.code == "*deleting":
            return "deleted"
        if "+++" in self.code:
            return "created"
        if self.code[0] in "<>":
            return "transferred"
        return "changed"


def parse_change(line: str) -> Change | None:
    match = ITEMIZE.match(line.rstrip("\n"))
    if match is None:
        return None
    code, name = match.group("code"), unescape(match.group("name"))
    if code == "*deleting":  # padded to the width of the other codes
        name = name.removeprefix("  ")
    if code[1] == "L" and " -> " in name:  # a symlink: NAME -> TARGET
        name = name.split(" -> ", 1)[0]
    return Change(code, name)


def unescape(name: str) -> str:
    """rsync writes unprintable bytes of a name as ``\\#ooo`` (octal)."""
    if "\\#" not in name:
        return name
    raw = re.sub(rb"\\#([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), name.encode())
    return raw.decode("utf-8", errors="replace")


# --- the end ------------------------------------------------------------------------------------

STATS = {
    "files": "Number of files",
    "created": "Number of created files",
    "deleted": "Number of deleted files",
    "transferred": "Number of regular files transferred",
    "total_size": "Total file size",
    "transferred_size": "Total transferred file size",
    "literal": "Literal data",
    "matched": "Matched data",
    "sent": "Total bytes sent",
    "received": "Total bytes received",
}


@dataclass(frozen=True)
class Stats:
    """``--info=stats2`` totals (sizes in bytes; files counts every kind: files, folders…)."""

    files: int
    created: int
    deleted: int
    transferred: int  # regular files whose data was sent
    total_size: int  # all regular files of the source
    transferred_size: int  # of the files transferred
    literal: int  # data sent as is
    matched: int  # data found already on the receiving side (a resumed or changed file)
    sent: int
    received: int


def parse_stats(output: str) -> Stats:
    values: dict[str, int] = {}
    for line in output.splitlines():
        label, colon, rest = line.partition(":")
        for name, text in STATS.items():
            if colon and label.strip() == text:
                values[name] = int(rest.split()[0].replace(",", ""))
    missing = set(STATS) - set(values)
    if missing:
        raise ValueError(f"no {', '.join(sorted(missing))} in rsync's statistics")
    return Stats(**values)


#: stderr of a failed rsync -> what went wrong (the ssh patterns are in ``ssh.FAILURES``).
FAILURES = (
    ("remote_rsync_missing", "rsync: command not found"),
    ("remote_rsync_missing", "rsync: not found"),
    ("no_space", "No space left on device"),
    ("permission", "Permission denied (13)"),
    ("permission", "Operation not permitted (1)"),
    ("read_only", "Read-only file system (30)"),
    ("missing", "No such file or directory (2)"),
)


def classify_failure(stderr: str) -> str | None:
    for kind, pattern in FAILURES:
        if pattern in stderr:
            return kind
    return None


def error_lines(stderr: str, kind: str) -> list[str]:
    """The lines of stderr that show a kind of failure (at most three)."""
    patterns = [pattern for name, pattern in FAILURES if name == kind]
    lines = [line.strip() for line in stderr.splitlines() if any(p in line for p in patterns)]
    return lines[:3]
