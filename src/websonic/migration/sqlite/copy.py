"""The copy: SQLite's online backup API into a file beside the target, then an atomic rename.

The copy is written to ``.NAME.websonic-partial`` in the target's folder and only renamed to
the target once it is complete, on disk (fsync) and verified, so the target never looks
complete when it is not. The partial file is locked (``flock``) while a run writes it: a
second run into the same target is refused, and the partial file of a run that was killed
(its lock gone with it) is emptied by the next run, which starts the copy over.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from websonic.core.errors import MigrationFailed

#: Files SQLite keeps beside a database. A stale journal or WAL next to a new file would be
#: replayed into it, so they go before the copy is renamed into place.
SIDE_SUFFIXES = ("-journal", "-wal", "-shm")
STEP_BYTES = 8 << 20  # pages copied per backup step (then progress, and a chance to stop)
Step = Callable[[int, int], None]  # (pages copied, pages in all)
Log = Callable[[str], None]


def partial_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.websonic-partial")


def side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in SIDE_SUFFIXES]


def remove_side_files(path: Path) -> None:
    for side in side_files(path):
        side.unlink(missing_ok=True)


@contextmanager
def claimed(partial: Path, log: Log) -> Iterator[None]:
    """Own the partial file for this run (locked, emptied); it is closed when the block ends."""
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MigrationFailed(
                f"Another migration is copying into {partial.parent} right now ({partial})."
            ) from None
        left = os.fstat(fd).st_size
        if left:
            log(f"Removed the partial copy of an interrupted run ({left:,} bytes): starting over.")
        os.ftruncate(fd, 0)
        remove_side_files(partial)
        yield
    finally:
        os.close(fd)


def discard(partial: Path) -> None:
    """Remove the partial copy and anything SQLite made beside it."""
    partial.unlink(missing_ok=True)
    remove_side_files(partial)


def discard_unclaimed(partial: Path) -> bool:
    """Remove a partial copy no run is writing (``abandon``); False if a run holds it."""
    try:
        fd = os.open(partial, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        remove_side_files(partial)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    discard(partial)
    return True


def backup(source: sqlite3.Connection, partial: Path, step: Step) -> int:
    """Copy ``source`` (inside its snapshot) into ``partial`` page by page; its page size.

    The partial file needs no journal of its own (a failed copy is thrown away). The copy
    keeps the source's header, so a WAL database is still one (and opens in WAL mode)."""
    page_size = int(source.execute("PRAGMA page_size").fetchone()[0])
    dest = sqlite3.connect(partial, isolation_level=None)
    try:
        dest.execute("PRAGMA journal_mode=OFF")
        dest.execute("PRAGMA synchronous=OFF")
        source.backup(
            dest,
            pages=max(1, STEP_BYTES // page_size),
            progress=lambda _status, remaining, total: step(total - remaining, total),
        )
    finally:
        dest.close()
    fsync(partial)
    return page_size


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def put_in_place(partial: Path, target: Path, source: os.stat_result) -> None:
    """Rename the finished copy to the target (atomic), with the source file's permissions
    (and, when WebSonic runs as root, its owner: the application's user can open it)."""
    os.chmod(partial, source.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.chown(partial, source.st_uid, source.st_gid)
    remove_side_files(target)
    os.replace(partial, target)
    fsync(target.parent)
