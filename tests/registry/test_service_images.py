"""A release's database service image, served by digest under the site's own repository.

The seeded world's acme/brochure:2 and globex/shop:1 are given a service image each (a real
OCI image written into the store, as a build leaves it); everything the registry promises for
releases — isolation, integrity checks, audit — must hold for these too.
"""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from websonic.builds.models import Release
from websonic.registry import manifests
from websonic.sites.service import get_site

from .conftest import OCI_MANIFEST, Image, write_image
from .test_integrity_audit import events, tamper

VOLATILE = {"date"}


def attach_service(world, ref: str, number: int, seeds: tuple[int, ...]) -> Image:
    image, rows = write_image(world.layout, seeds)
    with world.platform.transaction() as session:
        site = get_site(session, ref)
        release = session.scalar(
            select(Release).where(Release.site_id == site.id, Release.number == number)
        )
        release.services = [
            {
                "engine": "postgresql",
                "version": "15",
                "digest": image.manifest,
                "config_digest": image.config,
                "size": sum(row["size"] for row in rows),
                "layers": rows,
            }
        ]
    return image


@pytest.fixture
def services(world) -> dict[str, Image]:
    return {
        "acme/brochure": attach_service(world, "acme/brochure", 2, (31, 32)),
        "globex/shop": attach_service(world, "globex/shop", 1, (33,)),
    }


def test_service_manifest_and_blobs_are_served_by_digest(
    client: TestClient, world, acme, services
) -> None:
    """OCI dist spec §pull: the service image's manifest by digest, its blobs by digest."""
    image = services["acme/brochure"]
    url = f"/v2/acme/brochure/manifests/{image.manifest}"
    response = client.get(url, headers=acme)
    assert response.status_code == 200
    assert response.headers["docker-content-digest"] == image.manifest
    assert response.headers["content-type"] == OCI_MANIFEST
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == image.manifest
    assert client.head(url, headers=acme).status_code == 200
    for digest in (image.config, *image.layers):
        blob = client.get(f"/v2/acme/brochure/blobs/{digest}", headers=acme)
        assert blob.status_code == 200, digest
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == digest
    # Its Docker form, by that form's digest, like a release's.
    docker = manifests.to_docker(manifests.Manifest(response.content, OCI_MANIFEST, image.manifest))
    assert docker is not None
    converted = client.get(f"/v2/acme/brochure/manifests/{docker.digest}", headers=acme)
    assert converted.status_code == 200 and converted.content == docker.content


def test_no_tag_names_a_service_image(client: TestClient, acme, services) -> None:
    tags = client.get("/v2/acme/brochure/tags/list", headers=acme).json()["tags"]
    assert tags == ["1", "2", "latest"]
    latest = client.get("/v2/acme/brochure/manifests/latest", headers=acme)
    assert latest.headers["docker-content-digest"] != services["acme/brochure"].manifest
    for tag in ("postgresql", "postgresql-15", "services"):
        response = client.get(f"/v2/acme/brochure/manifests/{tag}", headers=acme)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def answer(response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    return response.status_code, response.content, headers


def test_another_customers_service_image_answers_like_a_missing_repository(
    client: TestClient, acme, globex, services
) -> None:
    """With acme's token, globex's service image (manifest, config, layer; GET and HEAD) is
    answered exactly like a repository that does not exist; and the other way round."""
    cases = [
        (acme, ("globex/shop", "globex/none", "nobody/shop"), services["globex/shop"]),
        (globex, ("acme/brochure", "acme/brochur2", "nobody/brochu"), services["acme/brochure"]),
    ]
    for credentials, names, image in cases:
        for kind, digest in (("manifests", image.manifest), ("blobs", image.config),
                             ("blobs", image.layers[0])):  # fmt: skip
            for method in ("GET", "HEAD"):
                answers = [
                    answer(client.request(method, f"/v2/{n}/{kind}/{digest}", headers=credentials))
                    for n in names
                ]
                normalised = {
                    repr((a[0], a[1].replace(n.encode(), b"NAME"), a[2]))
                    for n, a in zip(names, answers, strict=True)
                }
                assert len(normalised) == 1, (names, kind, method, answers)
                assert answers[0][0] == 404


def test_a_service_blob_belongs_to_its_sites_repository_only(
    client: TestClient, acme, services
) -> None:
    """acme's other repository does not serve acme/brochure's service image."""
    image = services["acme/brochure"]
    blob = client.get(f"/v2/acme/blog/blobs/{image.layers[0]}", headers=acme)
    assert blob.status_code == 404
    assert blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    manifest = client.get(f"/v2/acme/blog/manifests/{image.manifest}", headers=acme)
    assert manifest.status_code == 404
    assert manifest.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_tampered_service_blobs_are_refused_and_reported(
    client: TestClient, world, acme, services
) -> None:
    image = services["acme/brochure"]
    tamper(world.layout.blob_path(image.layers[1]))
    refused = client.get(f"/v2/acme/brochure/blobs/{image.layers[1]}", headers=acme)
    assert refused.status_code == 500
    assert refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    tamper(world.layout.blob_path(image.manifest), offset=20)
    refused = client.get(f"/v2/acme/brochure/manifests/{image.manifest}", headers=acme)
    assert refused.status_code == 500
    assert [e.target for e in events(world, "registry.integrity_failure")] == [
        f"acme/brochure@{image.layers[1]}",
        f"acme/brochure@{image.manifest}",
    ]


def test_service_pulls_are_audited(client: TestClient, world, acme, services) -> None:
    image = services["acme/brochure"]
    client.get(f"/v2/acme/brochure/manifests/{image.manifest}", headers=acme)
    client.head(f"/v2/acme/brochure/manifests/{image.manifest}", headers=acme)
    client.get(f"/v2/acme/brochure/blobs/{image.layers[0]}", headers=acme)
    pulls = events(world, "registry.pull.manifest")
    assert [(e.action, e.target) for e in pulls] == [
        ("registry.pull.manifest", f"acme/brochure@{image.manifest}"),
    ]
    assert all(e.actor.startswith("token:") for e in pulls)
