"""The stored release archive's record: a use checks the file's stamp, hashes it only when the
stamp changed, and gives it up (to be made again) when its bytes no longer match."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from websonic.builds import exports
from websonic.builds.exports import FileStamp, ReleaseArchive

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    path = tmp_path / "1.tar"
    path.write_bytes(b"an archive " * 1000)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    archive = ReleaseArchive("acme/brochure:1", DIGEST, path, sha, 11000, FileStamp.of(path))
    exports._write_record(archive)
    return path


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = exports.sha256_hex

    def counted(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(exports, "sha256_hex", counted)
    return seen


def recorded(path: Path, digest: str = DIGEST) -> ReleaseArchive | None:
    return exports._recorded_archive(path, SimpleNamespace(digest=digest))  # type: ignore[arg-type]


def test_finding9_an_unchanged_archive_is_not_hashed_again(
    stored: Path, hashes: list[Path]
) -> None:
    for _ in range(3):
        archive = recorded(stored)
        assert archive is not None and archive.size == 11000
    assert hashes == []


def test_finding9_a_tampered_archive_is_detected_even_with_its_mtime_put_back(
    stored: Path, hashes: list[Path]
) -> None:
    before = stored.stat()
    with open(stored, "r+b") as handle:
        handle.write(b"AN")
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stored.stat().st_size == before.st_size
    assert recorded(stored) is None  # to be made again
    assert hashes == [stored]


def test_a_touched_but_intact_archive_is_hashed_once_then_trusted(
    stored: Path, hashes: list[Path]
) -> None:
    os.utime(stored, ns=(1, 1))
    assert recorded(stored) is not None
    assert recorded(stored) is not None
    assert hashes == [stored]  # the new stamp was recorded


def test_an_archive_of_another_digest_or_gone_is_made_again(stored: Path) -> None:
    assert recorded(stored, "sha256:" + "cd" * 32) is None
    stored.unlink()
    assert recorded(stored) is None


def test_a_record_without_a_stamp_is_checked_once(stored: Path, hashes: list[Path]) -> None:
    record = stored.with_name("1.tar.json")
    record.write_text(record.read_text().replace('"stamp": {', '"old": {'))
    assert recorded(stored) is not None and recorded(stored) is not None
    assert hashes == [stored]
