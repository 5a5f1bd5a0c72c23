"""Integrity (a blob is checked before it is served) and the audit log of downloads."""

from __future__ import annotations

import datetime as dt
import os

from fastapi.testclient import TestClient
from sqlalchemy import select

from registry.conftest import basic
from websonic.accounts.models import Customer
from websonic.accounts.tokens import create_token
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


def pull(client: TestClient, image, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """What a client pulling the release does: HEAD then GET the manifest, GET each blob."""
    client.head("/v2/acme/brochure/manifests/1", headers=headers)
    assert client.get("/v2/acme/brochure/manifests/1", headers=headers).status_code == 200
    for digest in (image.config, *image.layers):
        assert client.get(f"/v2/acme/brochure/blobs/{digest}", headers=headers).status_code == 200
    ranged = {**headers, "Range": "bytes=0-9"}
    assert (
        client.get(f"/v2/acme/brochure/blobs/{image.layers[0]}", headers=ranged).status_code == 206
    )
    client.get("/v2/acme/brochure/tags/list", headers=headers)


def test_finding9_a_pull_is_one_audit_row_not_one_per_get(client: TestClient, world, acme) -> None:  # type: ignore[no-untyped-def]
    """Audit: one event per caller, manifest and day, on its first manifest GET; blob GETs
    and the same pull again add none. Another caller's pull is its own event."""
    image = world.images["acme/brochure:1"]
    before = len(all_events(world))
    pull(client, image, acme)
    pull(client, image, acme)
    manifests = events(world, "registry.pull.manifest")
    assert [e.detail["digest"] for e in manifests] == [image.manifest]
    assert len(all_events(world)) == before + 1
    public_id = world.tokens["acme"].split("_")[1]
    event = manifests[0]
    assert event.actor == f"token:{public_id}"
    assert event.target == f"acme/brochure@{image.manifest}"
    assert event.detail["repository"] == "acme/brochure"
    assert event.remote_addr == "testclient" and event.at is not None
    assert event.customer_id is not None
    pull(client, image, basic("acme", second_token(world)))
    assert len(events(world, "registry.pull.manifest")) == 2


def test_a_pull_on_another_day_is_audited_again(client: TestClient, world, acme) -> None:  # type: ignore[no-untyped-def]
    image = world.images["acme/brochure:1"]
    public_id = world.tokens["acme"].split("_")[1]
    with world.platform.transaction() as session:  # yesterday's pull, as the log holds it
        yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        session.add(
            AuditEvent(
                at=yesterday.replace(hour=23, minute=59),
                actor=f"token:{public_id}",
                action="registry.pull.manifest",
                target=f"acme/brochure@{image.manifest}",
            )
        )
    pull(client, image, acme)
    assert len(events(world, "registry.pull.manifest")) == 2


def all_events(world) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with world.platform.transaction() as session:
        return list(session.scalars(select(AuditEvent)))


def second_token(world) -> str:  # type: ignore[no-untyped-def]
    with world.platform.transaction() as session:
        acme = session.scalar(select(Customer).where(Customer.slug == "acme"))
        made = create_token(
            session, acme, scope="pull", expires_in=dt.timedelta(days=1), actor="test"
        )
        return made.secret


def test_refused_requests_are_not_downloads(client: TestClient, world, globex) -> None:
    """Audit: nothing recorded as a download when the answer is an error."""
    client.get("/v2/acme/brochure/manifests/1", headers=globex)
    client.get("/v2/acme/brochure/manifests/1")
    assert events(world, "registry.pull.manifest") == []
