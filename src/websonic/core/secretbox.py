"""Encryption of secret values kept in the state database (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from websonic.core.errors import VerificationFailed


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable only by its owner, atomically; never overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def create(cls, path: Path) -> SecretBox:
        key = Fernet.generate_key()
        write_private(path, key)
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> SecretBox:
        return cls(path.read_bytes().strip())

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def open(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode("utf-8")
        except InvalidToken as exc:
            raise VerificationFailed(
                "A stored secret cannot be decrypted: the secrets key does not match.",
                hint="Restore the state folder's keys/secrets.key from backup.",
            ) from exc
