"""Manifest media types: content negotiation and the Docker v2 schema 2 form (pure).

Releases are stored as OCI image manifests. A client whose ``Accept`` names the Docker schema 2
type but not the OCI one gets a Docker manifest made from the OCI one by changing media types
only; the conversion is deterministic, so its digest is stable and can be fetched by digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
LAYER_TYPES = {OCI_LAYER + "+gzip": DOCKER_LAYER + ".gzip", OCI_LAYER: DOCKER_LAYER}


@dataclass(frozen=True)
class Manifest:
    """Manifest bytes as served, with their media type and digest."""

    content: bytes
    media_type: str
    digest: str


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def accepted_types(accept_headers: Iterable[str]) -> set[str]:
    """The media types named in (possibly several) ``Accept`` headers, parameters dropped."""
    types = set()
    for header in accept_headers:
        for item in header.split(","):
            media_type = item.split(";")[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


def wants_docker(accept_headers: Iterable[str]) -> bool:
    """Serve Docker schema 2 only to a client that accepts it but not OCI (no Accept -> OCI)."""
    types = accepted_types(accept_headers)
    return DOCKER_MANIFEST in types and OCI_MANIFEST not in types and "*/*" not in types


def to_docker(oci: Manifest) -> Manifest | None:
    """The Docker schema 2 form of an OCI image manifest, or None if it has no such form."""
    data = json.loads(oci.content)
    layers = data.get("layers", [])
    if data.get("config", {}).get("mediaType") != OCI_CONFIG:
        return None
    if any(layer.get("mediaType") not in LAYER_TYPES for layer in layers):
        return None
    docker = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": _descriptor(data["config"], DOCKER_CONFIG),
        "layers": [_descriptor(layer, LAYER_TYPES[layer["mediaType"]]) for layer in layers],
    }
    content = json.dumps(docker, indent=3).encode("utf-8")
    return Manifest(content, DOCKER_MANIFEST, digest_of(content))


def _descriptor(descriptor: dict[str, Any], media_type: str) -> dict[str, Any]:
    converted = {"mediaType": media_type, "size": descriptor["size"]}
    converted["digest"] = descriptor["digest"]
    if descriptor.get("urls"):
        converted["urls"] = descriptor["urls"]
    return converted
