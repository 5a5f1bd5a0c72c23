"""Integrity (a blob is checked before it is served) and the audit log of downloads."""

from __future__ import annotations

import os

from fastapi.testclient import TestClient
from sqlalchemy import select

from websonic.audit.models import AuditEvent


def events(world, action: str) -> list[AuditEvent]:
    with world.platform.transaction() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(query))


def tamper(path, offset: int = 1000) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_tampered_blob_is_refused_and_reported(client: TestClient, world, acme) -> None:
    """DESIGN: a blob whose bytes no longer match its digest -> 500 DIGEST_INVALID + audit."""
    digest = world.images["acme/brochure:1"].layers[1]
    url = f"/v2/acme/brochure/blobs/{digest}"
    assert client.get(url, headers=acme).status_code == 200
    tamper(world.layout.blob_path(digest))
    for headers in (acme, {**acme, "Range": "bytes=0-99"}):
        refused = client.get(url, headers=headers)
        assert refused.status_code == 500
        assert refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert refused.headers["content-type"] == "application/json"
    assert client.head(url, headers=acme).status_code == 500
    failures = events(world, "registry.integrity_failure")
    assert len(failures) == 3
    assert failures[0].target == f"acme/brochure@{digest}"
    assert failures[0].actor.startswith("token:") and failures[0].remote_addr == "testclient"


def test_tampered_manifest_is_refused(client: TestClient, world, acme) -> None:
    """DESIGN: the same for a manifest."""
    digest = world.images["acme/brochure:1"].manifest
    tamper(world.layout.blob_path(digest), offset=20)
    response = client.get("/v2/acme/brochure/manifests/1", headers=acme)
    assert response.status_code == 500
    assert [e.target for e in events(world, "registry.integrity_failure")] == [
        f"acme/brochure@{digest}"
    ]


def test_missing_blob_file_is_refused(client: TestClient, world, acme) -> None:
    """DESIGN: a release's blob gone from the store is an integrity failure too."""
    digest = world.images["acme/brochure:1"].config
    world.layout.blob_path(digest).unlink()
    assert client.get(f"/v2/acme/brochure/blobs/{digest}", headers=acme).status_code == 500


def test_verification_is_cached_until_the_file_changes(client: TestClient, world, acme) -> None:
    """The verdict cache: one hash per file state; a change (even hiding its mtime) rehashes."""
    digest = world.images["acme/brochure:1"].layers[0]
    url = f"/v2/acme/brochure/blobs/{digest}"
    for _ in range(3):
        assert client.get(url, headers=acme).status_code == 200
    cache = client.app.state.registry.cache  # type: ignore[attr-defined]
    assert cache.hashed == 1
    path = world.layout.blob_path(digest)
    before = os.stat(path)
    tamper(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the change from mtime
    assert client.get(url, headers=acme).status_code == 500
    assert cache.hashed == 2
    tamper(path)  # put the byte back: valid again
    assert client.get(url, headers=acme).status_code == 200
    assert cache.hashed == 3


def test_downloads_are_audited_once_per_get(client: TestClient, world, acme) -> None:
    """Audit: one event per manifest GET and per blob GET (who, what, where); none for HEAD."""
    image = world.images["acme/brochure:1"]
    client.head("/v2/acme/brochure/manifests/1", headers=acme)
    client.head(f"/v2/acme/brochure/blobs/{image.layers[0]}", headers=acme)
    client.get("/v2/acme/brochure/manifests/1", headers=acme)
    client.get(f"/v2/acme/brochure/blobs/{image.layers[0]}", headers={**acme, "Range": "bytes=0-9"})
    client.get(f"/v2/acme/brochure/blobs/{image.config}", headers=acme)
    client.get("/v2/acme/brochure/tags/list", headers=acme)
    manifests = events(world, "registry.pull.manifest")
    blobs = events(world, "registry.pull.blob")
    assert [e.detail["digest"] for e in manifests] == [image.manifest]
    assert [e.detail["digest"] for e in blobs] == [image.layers[0], image.config]
    public_id = world.tokens["acme"].split("_")[1]
    for event in (*manifests, *blobs):
        assert event.actor == f"token:{public_id}"
        assert event.detail["repository"] == "acme/brochure"
        assert event.remote_addr == "testclient" and event.at is not None
        assert event.customer_id is not None


def test_refused_requests_are_not_downloads(client: TestClient, world, globex) -> None:
    """Audit: nothing recorded as a download when the answer is an error."""
    client.get("/v2/acme/brochure/manifests/1", headers=globex)
    client.get("/v2/acme/brochure/manifests/1")
    assert events(world, "registry.pull.manifest") == []
