"""Password hashing with Argon2id (memory-hard), and secret generation.

Each hash takes 64 MiB and a good part of a second of a core, so at most :data:`HASHING`'s
number of slots (the process's CPU count) run at once; an attempt that finds no slot free
within a few seconds is refused with :class:`HashingBusy` (a 503 with Retry-After on the web)
instead of queueing without limit.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from websonic.core.errors import WebsonicError

_HASHER = PasswordHasher()  # argon2id, 64 MiB, t=3, p=4 (argon2-cffi's RFC 9106 low-memory profile)
MIN_LENGTH = 12


class HashingBusy(WebsonicError):
    """Every password-hashing slot stayed taken while this attempt waited."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("The server is busy checking passwords.", hint="Try again shortly.")
        self.retry_after = retry_after


class HashSlots:
    """A bound on the password hashes running at once in this process, with counters
    (hashes run, most at once) that tests read."""

    def __init__(self, slots: int | None = None, *, wait_seconds: float = 5.0) -> None:
        self.slots = slots or os.cpu_count() or 1
        self.wait_seconds = wait_seconds
        self._free = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self._running = 0
        self.runs = 0
        self.peak = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait_seconds):
            raise HashingBusy(max(1, round(self.wait_seconds)))
        try:
            with self._lock:
                self._running += 1
                self.runs += 1
                self.peak = max(self.peak, self._running)
            yield
        finally:
            with self._lock:
                self._running -= 1
            self._free.release()


HASHING = HashSlots()


def hash_password(password: str) -> str:
    with HASHING.hold():
        return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    with HASHING.hold():
        try:
            return _HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(18)
