"""Signatures: made with the state folder's key, checked in Python and offline with OpenSSL."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from websonic.builds import signing
from websonic.core.errors import VerificationFailed

DIGEST = "sha256:" + "ab" * 32
SBOM = "sha256:" + "cd" * 32


def test_key_files_are_private(tmp_path: Path) -> None:
    signer = signing.create_key(tmp_path)
    assert (tmp_path / signing.PRIVATE_NAME).stat().st_mode & 0o777 == 0o600
    assert signing.load_signer(tmp_path).key_id == signer.key_id
    with pytest.raises(FileExistsError):
        signing.create_key(tmp_path)  # never overwrites a key


def test_sign_and_verify(tmp_path: Path) -> None:
    signer = signing.create_key(tmp_path)
    payload = signing.make_payload("acme/shop", 3, DIGEST, SBOM)
    signature = signer.sign(payload)
    signing.verify(signer.public, payload, signature)
    assert signing.read_payload(payload) == {
        "reference": "acme/shop:3",
        "manifest_digest": DIGEST,
        "sbom_digest": SBOM,
        "services": {},
    }
    forged = signing.make_payload("acme/shop", 3, "sha256:" + "ef" * 32, SBOM)
    with pytest.raises(VerificationFailed):
        signing.verify(signer.public, forged, signature)
    other = signing.create_key(tmp_path / "other")
    with pytest.raises(VerificationFailed):
        signing.verify(other.public, payload, signature)
    with pytest.raises(VerificationFailed):
        signing.verify(signer.public, payload, "not base64!")


def test_openssl_verifies_offline(tmp_path: Path) -> None:
    signer = signing.create_key(tmp_path / "keys")
    payload = signing.make_payload("acme/shop", 1, DIGEST, SBOM)
    (tmp_path / "payload.json").write_bytes(payload)
    (tmp_path / "payload.sig").write_bytes(base64.b64decode(signer.sign(payload)))
    argv = [
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(tmp_path / "keys" / signing.PUBLIC_NAME),
        "-rawin",
        "-in",
        str(tmp_path / "payload.json"),
        "-sigfile",
        str(tmp_path / "payload.sig"),
    ]
    ok = subprocess.run(argv, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    (tmp_path / "payload.json").write_bytes(payload.replace(b"acme/shop:1", b"acme/shop:2"))
    bad = subprocess.run(argv, capture_output=True, text=True)
    assert bad.returncode != 0


def test_a_payload_without_services_is_unchanged() -> None:
    """Releases signed before service images existed keep byte-identical payloads."""
    expected = (
        '{"critical":{"identity":{"docker-reference":"acme/shop:3"},'
        f'"image":{{"docker-manifest-digest":"{DIGEST}"}},'
        '"type":"websonic release signature"},'
        f'"optional":{{"sbom-digest":"{SBOM}"}}}}'
    ).encode()
    assert signing.make_payload("acme/shop", 3, DIGEST, SBOM) == expected
    assert signing.make_payload("acme/shop", 3, DIGEST, SBOM, {}) == expected


def test_the_signature_covers_the_service_images(tmp_path: Path) -> None:
    signer = signing.create_key(tmp_path)
    postgres = "sha256:" + "12" * 32
    payload = signing.make_payload("acme/shop", 3, DIGEST, SBOM, {"postgresql": postgres})
    assert (
        b'"optional":{"sbom-digest":"' + SBOM.encode() + b'","services":{"postgresql":' in payload
    )
    assert signing.read_payload(payload)["services"] == {"postgresql": postgres}
    signature = signer.sign(payload)
    signing.verify(signer.public, payload, signature)
    swapped = signing.make_payload(
        "acme/shop", 3, DIGEST, SBOM, {"postgresql": "sha256:" + "34" * 32}
    )
    with pytest.raises(VerificationFailed):
        signing.verify(signer.public, swapped, signature)
    without = signing.make_payload("acme/shop", 3, DIGEST, SBOM)
    with pytest.raises(VerificationFailed):
        signing.verify(signer.public, without, signature)
