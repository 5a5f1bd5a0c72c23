"""Verifying a stored release: every blob's digest, the manifest, the SBOM, the database
service images it carries and the signature."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from websonic.builds import signing
from websonic.builds.models import Release
from websonic.builds.oci import OciLayout
from websonic.builds.services import service_digests
from websonic.core.errors import WebsonicError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class VerifyReport:
    reference: str
    digest: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))


def verify_release(
    layout: OciLayout, release: Release, public: Ed25519PublicKey, reference: str
) -> VerifyReport:
    """Check everything about ``release``; never raises for a mismatch, reports it."""
    report = VerifyReport(reference, release.digest)
    _check(report, "manifest digest", lambda: _manifest(layout, release))
    for layer in release.layers:
        _check(
            report,
            f"layer {layer['digest'][:19]}",
            lambda layer=layer: layout.verify_blob(layer["digest"], layer["size"]),
        )
    _check(report, "config digest", lambda: layout.read_blob(release.config_digest))
    _check(report, "SBOM digest", lambda: layout.read_blob(release.sbom_digest))
    for service in release.services:
        _check_service(report, layout, service)
    _check(report, "signature", lambda: _signature(release, public, reference))
    return report


def _check_service(report: VerifyReport, layout: OciLayout, service: dict[str, Any]) -> None:
    """The service image's manifest (and what it names), config and every layer."""
    name = f"{service['engine']} image"
    _check(report, f"{name} manifest digest", lambda: _manifest_of(layout, service))
    for layer in service["layers"]:
        _check(
            report,
            f"{name} layer {layer['digest'][:19]}",
            lambda layer=layer: layout.verify_blob(layer["digest"], layer["size"]),
        )
    _check(report, f"{name} config digest", lambda: layout.read_blob(service["config_digest"]))


def _check(report: VerifyReport, name: str, action: object) -> None:
    try:
        action()  # type: ignore[operator]
    except (WebsonicError, KeyError, ValueError) as exc:
        report.add(name, False, str(exc).splitlines()[0])
    else:
        report.add(name, True)


def _manifest(layout: OciLayout, release: Release) -> None:
    _check_manifest(layout, release.digest, release.config_digest, release.layers)


def _manifest_of(layout: OciLayout, service: dict[str, Any]) -> None:
    _check_manifest(layout, service["digest"], service["config_digest"], service["layers"])


def _check_manifest(
    layout: OciLayout, digest: str, config_digest: str, recorded: list[dict[str, Any]]
) -> None:
    manifest = json.loads(layout.read_blob(digest))
    layers = [d["digest"] for d in manifest.get("layers", [])]
    if layers != [layer["digest"] for layer in recorded]:
        raise ValueError("the manifest's layers differ from the recorded ones")
    if manifest["config"]["digest"] != config_digest:
        raise ValueError("the manifest's config differs from the recorded one")


def _signature(release: Release, public: Ed25519PublicKey, reference: str) -> None:
    payload = release.signed_payload.encode("utf-8")
    signing.verify(public, payload, release.signature)
    claims = signing.read_payload(payload)
    if claims["manifest_digest"] != release.digest:
        raise ValueError(f"the signature is for {claims['manifest_digest']}, not {release.digest}")
    if claims["reference"] != reference:
        raise ValueError(f"the signature names {claims['reference']}, not {reference}")
    if claims["sbom_digest"] != release.sbom_digest:
        raise ValueError("the signature's SBOM digest differs from the recorded one")
    if claims["services"] != service_digests(release.services):
        raise ValueError("the signature's service images differ from the recorded ones")


def write_signature_bundle(release: Release, public_pem: bytes, dest: Path) -> dict[str, Path]:
    """Files for offline verification with OpenSSL: payload, raw signature, public key."""
    import base64

    dest.mkdir(parents=True, exist_ok=True)
    paths = {
        "payload": dest / "payload.json",
        "signature": dest / "payload.sig",
        "public_key": dest / "websonic-signing.pub.pem",
    }
    paths["payload"].write_bytes(release.signed_payload.encode("utf-8"))
    paths["signature"].write_bytes(base64.b64decode(release.signature))
    paths["public_key"].write_bytes(public_pem)
    return paths
