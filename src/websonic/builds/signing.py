"""Release signatures: Ed25519 over a JSON payload that names the image by digest.

The payload follows the "simple signing" layout of containers/image, so the signed statement
is "this manifest digest is <customer>/<site> release N". Anyone with the public key verifies it
offline with OpenSSL 3 (see docs/verifying-releases.md)::

    openssl pkeyutl -verify -pubin -inkey websonic-signing.pub.pem -rawin \
        -in release.payload.json -sigfile release.sig
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from websonic.core.errors import NotInitialised, VerificationFailed
from websonic.core.secretbox import write_private

PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub.pem"
PAYLOAD_TYPE = "websonic release signature"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.private.sign(payload)).decode("ascii")


def create_key(keys_dir: Path) -> Signer:
    """Make the state folder's signing key (private key mode 600, public key beside it)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(keys_dir / PRIVATE_NAME, pem)
    (keys_dir / PUBLIC_NAME).write_bytes(public_pem(private.public_key()))
    return Signer(private)


def load_signer(keys_dir: Path) -> Signer:
    path = keys_dir / PRIVATE_NAME
    if not path.is_file():
        raise NotInitialised(f"No signing key at {path}.", hint="Run: websonic init")
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise VerificationFailed(f"{path} is not an Ed25519 private key.")
    return Signer(private)


def load_public(path: Path) -> Ed25519PublicKey:
    public = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(public, Ed25519PublicKey):
        raise VerificationFailed(f"{path} is not an Ed25519 public key.")
    return public


def make_payload(
    repository: str,
    release: int,
    manifest_digest: str,
    sbom_digest: str,
    services: Mapping[str, str] | None = None,
) -> bytes:
    """The exact bytes that are signed (canonical JSON: sorted keys, no spaces).

    ``services`` (engine -> manifest digest of its service image) is signed too; it is left
    out when empty, so the payload of a release without services is what it always was.
    """
    optional: dict[str, Any] = {"sbom-digest": sbom_digest}
    if services:
        optional["services"] = dict(services)
    statement = {
        "critical": {
            "identity": {"docker-reference": f"{repository}:{release}"},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": optional,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")


def read_payload(payload: bytes) -> dict[str, Any]:
    """The claims of a payload: reference, manifest digest, SBOM digest (str) and services
    (engine -> manifest digest; empty when the payload names none)."""
    data = json.loads(payload)
    critical = data["critical"]
    if critical.get("type") != PAYLOAD_TYPE:
        raise VerificationFailed("The signed payload is not a WebSonic release signature.")
    optional = data.get("optional", {})
    services = optional.get("services", {})
    if not isinstance(services, dict):
        raise VerificationFailed("The signed payload's services are not a mapping.")
    return {
        "reference": critical["identity"]["docker-reference"],
        "manifest_digest": critical["image"]["docker-manifest-digest"],
        "sbom_digest": optional.get("sbom-digest", ""),
        "services": {str(k): str(v) for k, v in services.items()},
    }


def verify(public: Ed25519PublicKey, payload: bytes, signature_b64: str) -> None:
    try:
        public.verify(base64.b64decode(signature_b64, validate=True), payload)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationFailed("The release signature does not match its payload.") from exc
