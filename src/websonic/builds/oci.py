"""The content-addressed store of every release: one OCI image layout in the state folder.

Blobs live at ``blobs/sha256/<hex>``; ``index.json`` names each release's manifest. Every read
that matters for trust re-hashes the bytes: a blob whose content no longer matches its digest is
an error, never served or accepted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websonic.core.errors import InvalidInput, NotFound, VerificationFailed

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def check_digest(digest: str) -> str:
    if not DIGEST.match(digest):
        raise InvalidInput(f"Invalid digest {digest!r}: expected sha256:<64 hex digits>.")
    return digest


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    diff_id: str
    media_type: str


@dataclass(frozen=True)
class ImageInfo:
    manifest_digest: str
    manifest_size: int
    config_digest: str
    config_size: int
    layers: tuple[Layer, ...]

    @property
    def total_size(self) -> int:
        return self.manifest_size + self.config_size + sum(layer.size for layer in self.layers)


class OciLayout:
    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / check_digest(digest).removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        """A small blob (manifest, config, SBOM), checked against its digest."""
        path = self.blob_path(digest)
        if not path.is_file():
            raise NotFound(f"Blob {digest} is missing from the image store {self.root}.")
        data = path.read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise VerificationFailed(f"Blob {digest} in {self.root} does not match its digest.")
        return data

    def verify_blob(self, digest: str, size: int | None = None) -> None:
        path = self.blob_path(digest)
        if not path.is_file():
            raise VerificationFailed(f"Blob {digest} is missing from the image store.")
        if size is not None and path.stat().st_size != size:
            raise VerificationFailed(f"Blob {digest} has size {path.stat().st_size}, not {size}.")
        if sha256_file(path) != digest:
            raise VerificationFailed(f"Blob {digest} does not match its digest (tampered?).")

    def write_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest

    def index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.is_file():
            return {"schemaVersion": 2, "manifests": []}
        return json.loads(path.read_text())

    def manifest_for_ref(self, ref_name: str) -> str:
        for entry in self.index().get("manifests", []):
            if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref_name:
                return str(entry["digest"])
        raise NotFound(f"No image named {ref_name!r} in {self.root}.")

    def image_info(self, manifest_digest: str) -> ImageInfo:
        manifest_bytes = self.read_blob(manifest_digest)
        manifest = json.loads(manifest_bytes)
        config_desc = manifest["config"]
        config = json.loads(self.read_blob(config_desc["digest"]))
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        layers = tuple(
            Layer(
                d["digest"],
                int(d["size"]),
                diff_ids[i] if i < len(diff_ids) else "",
                d.get("mediaType", ""),
            )
            for i, d in enumerate(manifest.get("layers", []))
        )
        return ImageInfo(
            manifest_digest,
            len(manifest_bytes),
            config_desc["digest"],
            int(config_desc["size"]),
            layers,
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise writers of index.json (builds pushing into the layout)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def layout_ref(repository: str, release: int) -> str:
    """The index.json ref name of a release ("acme/brochure" 3 -> "acme_brochure_r3")."""
    return f"{repository.replace('/', '_')}_r{release}"
