"""Checking a blob's bytes against its digest before serving it, with a memory of the result.

Hashing a 200 MB layer on every pull is too slow, so a verdict is remembered per file *state*:
(path, device, inode, size, mtime_ns, ctime_ns). Any change to the file — rewritten in place,
replaced, truncated, even with its mtime put back (ctime cannot be) — makes a new key, and the
file is hashed again. The check reads the same open file that is then served.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import BinaryIO

CHUNK = 1 << 20
MAX_ENTRIES = 4096

FileState = tuple[str, int, int, int, int, int]


def file_state(path: str, stat: os.stat_result) -> FileState:
    return (path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def sha256_of(handle: BinaryIO) -> str:
    """The digest of an open file's bytes (read from its start, leaving the position there)."""
    hasher = hashlib.sha256()
    handle.seek(0)
    while chunk := handle.read(CHUNK):
        hasher.update(chunk)
    handle.seek(0)
    return "sha256:" + hasher.hexdigest()


class IntegrityCache:
    """Remembered verdicts ``file state -> digest the bytes have``, least recently used out."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._verdicts: OrderedDict[FileState, str] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self.hashed = 0  # how many times a file was actually read (for tests and stats)

    def matches(self, handle: BinaryIO, path: str, digest: str) -> bool:
        """Do the bytes of the open file ``handle`` (at ``path``) have ``digest``?"""
        key = file_state(path, os.fstat(handle.fileno()))
        with self._lock:
            known = self._verdicts.get(key)
            if known is not None:
                self._verdicts.move_to_end(key)
        if known is None:
            known = sha256_of(handle)
            if file_state(path, os.fstat(handle.fileno())) != key:
                return False  # changed while being read: refuse, check again next time
            with self._lock:
                self.hashed += 1
                self._verdicts[key] = known
                while len(self._verdicts) > self._max:
                    self._verdicts.popitem(last=False)
        return known == digest
