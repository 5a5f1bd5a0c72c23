"""Signed archives of releases: one ``oci-archive`` tar per release, made once, checked on use.

skopeo stamps the current time into the tar it writes, so two runs never give the same bytes.
The archive of a release is therefore made once, on first use, from a release that verifies
(every blob digest and the signature), into ``$WEBSONIC_HOME/exports/<customer>/<site>/
<release>.tar`` (written to a temporary file, checked, renamed), with its SHA-256, size and file
stamp (size, modification and change times, inode) recorded beside it in ``<release>.tar.json``.
Every export and every portal download (ranges included) hands out those same bytes. A use
checks only what is cheap: the record names this release and the file still has the recorded
stamp. A file whose stamp changed (anything written to it changes its change time, which no
program can set back) is hashed again: if its bytes still have the recorded SHA-256 the new
stamp is recorded, otherwise it was damaged or tampered with and is made again from the
verified release.

``export_release`` copies the archive to ``FILE.tar`` and writes beside it:

- ``FILE.tar.sha256``       the archive's SHA-256 (``sha256sum -c`` format)
- ``FILE.tar.sig.json``     the signature bundle: signed payload, signature, key id, public key
- ``FILE.tar.payload.json`` the exact signed bytes          } for ``openssl pkeyutl -verify``,
- ``FILE.tar.sig``          the raw Ed25519 signature       } no other tool needed
- ``FILE.tar.pub.pem``      the public signing key          }
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from websonic.audit.service import record
from websonic.builds import signing
from websonic.builds.models import Release
from websonic.builds.oci import CHUNK, OciLayout, layout_ref
from websonic.builds.verify import verify_release
from websonic.core.errors import InvalidInput, VerificationFailed
from websonic.platform import Platform
from websonic.settings import Settings
from websonic.tools import skopeo

SIDE_FILES = ("sha256", "sig.json", "payload.json", "sig", "pub.pem")


@dataclass(frozen=True)
class FileStamp:
    """What a file's metadata says of its contents: any write changes ``ctime_ns``."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Path) -> FileStamp | None:
        try:
            found = path.stat()
        except FileNotFoundError:
            return None
        return cls(found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino)


@dataclass(frozen=True)
class ReleaseArchive:
    """The cached archive of a release and what was recorded about it when it was made."""

    reference: str  # "acme/brochure:3"
    digest: str  # the release's manifest digest
    path: Path
    sha256: str  # hex digest of the archive file
    size: int
    stamp: FileStamp | None = None  # the file as it was when its SHA-256 was last taken

    @property
    def filename(self) -> str:
        """The name offered for download: ``acme-brochure-3.tar``."""
        return file_stem(self.reference) + ".tar"

    @property
    def checksum_line(self) -> str:
        return f"{self.sha256}  {self.filename}\n"


@dataclass(frozen=True)
class Export:
    archive: ReleaseArchive
    files: dict[str, Path]  # "archive", "sha256", "sig.json", "payload.json", "sig", "pub.pem"


def file_stem(reference: str) -> str:
    """``acme/brochure:3`` -> ``acme-brochure-3``: the base of downloaded file names."""
    return reference.replace("/", "-").replace(":", "-")


def reference_of(release: Release) -> str:
    return f"{release.site.ref_name}:{release.number}"


def exports_dir(settings: Settings) -> Path:
    return settings.home / "exports"


def archive_path(settings: Settings, release: Release) -> Path:
    return exports_dir(settings) / release.site.ref_name / f"{release.number}.tar"


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


# Making and checking the cached archive ------------------------------------------------------


def ensure_archive(platform: Platform, release: Release) -> ReleaseArchive:
    """The release's archive: made (from the verified release) on first use, afterwards
    checked only against its record, and made again if its file was changed."""
    reference = reference_of(release)
    path = archive_path(platform.settings, release)
    with _locked(path):
        archive = _recorded_archive(path, release)
        if archive is None:
            require_verified(platform, release, reference)
            _make_archive(platform, release, reference, path)
            archive = _read_record(path)
    return archive


def _recorded_archive(path: Path, release: Release) -> ReleaseArchive | None:
    """The recorded archive if its file is still the one made for this release; None if there
    is none or it must be made again. Hashes the file only when its stamp changed."""
    if not _record_path(path).is_file():
        return None
    archive = _read_record(path)
    stamp = FileStamp.of(path)
    if archive.digest != release.digest or stamp is None:
        return None
    if stamp == archive.stamp:
        return archive
    if stamp.size != archive.size or sha256_hex(path) != archive.sha256:
        return None  # damaged or tampered with
    archive = replace(archive, stamp=stamp)  # the same bytes, e.g. after a copy of the folder
    _write_record(archive)
    return archive


def cached_archive(settings: Settings, release: Release) -> ReleaseArchive | None:
    """What was recorded of the release's archive, if it was made (not re-checked)."""
    path = archive_path(settings, release)
    return _read_record(path) if _record_path(path).is_file() else None


def require_verified(platform: Platform, release: Release, reference: str) -> None:
    layout = OciLayout(platform.settings.oci_dir)
    report = verify_release(layout, release, platform.signer.public, reference)
    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
    if failed:
        raise VerificationFailed(
            f"{reference} failed verification ({'; '.join(failed)}): it will not be exported.",
            hint=f"See: websonic release verify {reference}",
        )


def _make_archive(platform: Platform, release: Release, reference: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    layout = OciLayout(platform.settings.oci_dir)
    ref_name = layout_ref(release.site.ref_name, release.number)
    try:
        with layout.locked():
            platform.runner.run(
                skopeo.copy_layout_to_archive(layout.root, ref_name, tmp, reference),
                error=f"skopeo could not write the archive of {reference}",
            )
        found = archive_manifest_digest(tmp)
        if found != release.digest:
            raise VerificationFailed(
                f"skopeo wrote {found} for {reference}, expected {release.digest}."
            )
        sha256, size = sha256_hex(tmp), tmp.stat().st_size
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_record(ReleaseArchive(reference, release.digest, path, sha256, size, FileStamp.of(path)))


def _write_record(archive: ReleaseArchive) -> None:
    data: dict[str, Any] = {
        "reference": archive.reference,
        "digest": archive.digest,
        "sha256": archive.sha256,
        "size": archive.size,
        "stamp": asdict(archive.stamp) if archive.stamp else None,
    }
    _write_atomic(_record_path(archive.path), json.dumps(data, sort_keys=True).encode())


def _read_record(path: Path) -> ReleaseArchive:
    data = json.loads(_record_path(path).read_text())
    stamp = FileStamp(**data["stamp"]) if data.get("stamp") else None
    return ReleaseArchive(
        data["reference"], data["digest"], path, data["sha256"], data["size"], stamp
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One maker per archive, across processes (CLI exports and the portal)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def archive_manifest_digest(path: Path) -> str:
    """The digest of the (single) manifest named by an oci-archive's ``index.json``."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise VerificationFailed(f"{path} has no index.json: not an OCI archive.")
        manifests = json.load(member).get("manifests", [])
    if len(manifests) != 1:
        raise VerificationFailed(f"{path} holds {len(manifests)} images, expected one.")
    return str(manifests[0]["digest"])


def sha256_hex(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# Signatures ----------------------------------------------------------------------------------


def signature_bundle(release: Release, public_pem: bytes) -> dict[str, Any]:
    """Everything needed to check the release's signature offline, as one JSON object."""
    return {
        "reference": reference_of(release),
        "manifest_digest": release.digest,
        "sbom_digest": release.sbom_digest,
        "payload": release.signed_payload,
        "signature": release.signature,
        "key_id": release.signing_key_id,
        "public_key": public_pem.decode("ascii"),
        "algorithm": "ed25519",
    }


def signature_valid(release: Release, platform: Platform) -> bool:
    """A quick check (no blob is read): the signature matches and names this release."""
    try:
        payload = release.signed_payload.encode("utf-8")
        signing.verify(platform.signer.public, payload, release.signature)
        claims = signing.read_payload(payload)
    except (VerificationFailed, ValueError, KeyError):
        return False
    return claims["manifest_digest"] == release.digest and claims["reference"] == reference_of(
        release
    )


# Exporting to a file -------------------------------------------------------------------------


def export_release(
    platform: Platform, session: Session, release: Release, dest: Path, *, actor: str
) -> Export:
    """Copy the release's archive to ``dest`` with its checksum and signature files beside it."""
    dest = _check_dest(dest)
    archive = ensure_archive(platform, release)
    bundle = signature_bundle(release, signing.public_pem(platform.signer.public))
    contents = {
        "sha256": f"{archive.sha256}  {dest.name}\n".encode(),
        "sig.json": (json.dumps(bundle, indent=2, sort_keys=True) + "\n").encode(),
        "payload.json": release.signed_payload.encode("utf-8"),
        "sig": base64.b64decode(release.signature),
        "pub.pem": bundle["public_key"].encode("ascii"),
    }
    files = {name: dest.with_name(f"{dest.name}.{name}") for name in SIDE_FILES}
    _copy_checked(archive, dest)
    for name, data in contents.items():
        _write_atomic(files[name], data)
    record(
        session,
        actor,
        "release.export",
        customer_id=release.site.customer_id,
        target=archive.reference,
        detail={"digest": release.digest, "sha256": archive.sha256, "file": str(dest)},
    )
    return Export(archive, {"archive": dest, **files})


def _check_dest(dest: Path) -> Path:
    dest = dest.expanduser().absolute()
    if dest.is_dir():
        raise InvalidInput(f"{dest} is a folder: give a file name, e.g. -o {dest}/site.tar")
    if not dest.parent.is_dir():
        raise InvalidInput(f"The folder {dest.parent} does not exist.")
    return dest


def _copy_checked(archive: ReleaseArchive, dest: Path) -> None:
    """Copy the archive, hashing as it goes: the copy must have the recorded SHA-256."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    hasher = hashlib.sha256()
    try:
        with open(archive.path, "rb") as source, open(tmp, "wb") as target:
            while chunk := source.read(CHUNK):
                hasher.update(chunk)
                target.write(chunk)
        if hasher.hexdigest() != archive.sha256:
            raise VerificationFailed(f"The archive of {archive.reference} changed while copied.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# Downloads -----------------------------------------------------------------------------------


def record_download(
    session: Session,
    release: Release,
    what: str,
    *,
    actor: str,
    remote_addr: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit one download (``what``: "archive", "sbom", "signature", "checksum")."""
    record(
        session,
        actor,
        f"release.download.{what}",
        customer_id=release.site.customer_id,
        target=reference_of(release),
        detail={"digest": release.digest, **(detail or {})},
        remote_addr=remote_addr,
    )


def download_archive(
    platform: Platform,
    session: Session,
    release: Release,
    *,
    actor: str,
    remote_addr: str | None,
    byte_range: str | None = None,
) -> ReleaseArchive:
    """The checked archive to send, its download recorded (``byte_range``: the Range header)."""
    archive = ensure_archive(platform, release)
    detail = {"sha256": archive.sha256, "range": byte_range}
    record_download(
        session, release, "archive", actor=actor, remote_addr=remote_addr, detail=detail
    )
    return archive


def download_sbom(
    platform: Platform, session: Session, release: Release, *, actor: str, remote_addr: str | None
) -> bytes:
    """The release's SBOM (checked against its digest), its download recorded."""
    sbom = OciLayout(platform.settings.oci_dir).read_blob(release.sbom_digest)
    detail = {"sbom_digest": release.sbom_digest}
    record_download(session, release, "sbom", actor=actor, remote_addr=remote_addr, detail=detail)
    return sbom


@dataclass(frozen=True)
class ReleaseDownloads:
    """What the download page shows of one release."""

    release: Release
    reference: str
    signature_valid: bool
    archive: ReleaseArchive | None  # None until first made


def downloads_of(platform: Platform, releases: list[Release]) -> list[ReleaseDownloads]:
    """The releases, newest first, with a quick signature check and their archive if made."""
    return [
        ReleaseDownloads(
            release,
            reference_of(release),
            signature_valid(release, platform),
            cached_archive(platform.settings, release),
        )
        for release in sorted(releases, key=lambda r: r.number, reverse=True)
    ]
