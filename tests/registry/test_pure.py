"""The pure parts: paths, digests, ranges, manifest conversion, scopes and pagination."""

from __future__ import annotations

import json

import pytest

from websonic.registry.access import Decision, Principal, decide, grant, parse_scopes
from websonic.registry.errors import RegistryError
from websonic.registry.manifests import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    Manifest,
    digest_of,
    to_docker,
    wants_docker,
)
from websonic.registry.names import Endpoint, check_digest, parse_route
from websonic.registry.ranges import ByteRange, Unsatisfiable, parse_range
from websonic.registry.service import paginate

HEX = "a" * 64


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("acme/brochure/manifests/1", (Endpoint.MANIFEST, "acme/brochure", "1")),
        (f"acme/blobs/blobs/sha256:{HEX}", (Endpoint.BLOB, "acme/blobs", f"sha256:{HEX}")),
        ("acme/brochure/tags/list", (Endpoint.TAGS, "acme/brochure", "")),
        ("acme/brochure/blobs/sha256:../../x", (Endpoint.BLOB, "acme/brochure", "sha256:../../x")),
    ],
)
def test_routes(path: str, expected: tuple) -> None:
    route = parse_route(path)
    assert (route.endpoint, route.name, route.reference) == expected


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("acme/../globex/shop/manifests/1", "NAME_INVALID"),
        ("Acme/x/tags/list", "NAME_INVALID"),
        ("acme/brochure/uploads", "UNSUPPORTED"),
    ],
)
def test_bad_routes(path: str, code: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_route(path)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("digest", "code"),
    [
        ("sha256:" + "a" * 63, "DIGEST_INVALID"),
        ("sha256:" + "A" * 64, "DIGEST_INVALID"),
        ("sha512:" + "a" * 128, "UNSUPPORTED"),
        ("blake3:" + "a" * 64, "UNSUPPORTED"),
        ("sha256", "DIGEST_INVALID"),
        ("sha256:../x", "DIGEST_INVALID"),
    ],
)
def test_digests(digest: str, code: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_digest(digest)
    assert caught.value.code == code
    assert check_digest(f"sha256:{HEX}") == f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-10", ByteRange(990, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=990-5000", ByteRange(990, 999)),
        ("bytes = 1-2", ByteRange(1, 2)),
        ("bytes=5-1", None),
        ("bytes=0-1,5-6", None),
        ("lines=0-1", None),
        ("bytes=x-", None),
    ],
)
def test_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=2000-3000", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 1000)


def test_docker_conversion_is_deterministic_and_refuses_other_layers() -> None:
    oci = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{HEX}",
            "size": 3,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{'b' * 64}",
                "size": 5,
                "annotations": {"x": "y"},
            }
        ],
        "annotations": {"a": "b"},
    }
    content = json.dumps(oci).encode()
    docker = to_docker(Manifest(content, OCI_MANIFEST, digest_of(content)))
    assert docker is not None and docker == to_docker(
        Manifest(content, OCI_MANIFEST, digest_of(content))
    )
    assert json.loads(docker.content)["layers"][0] == {
        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "size": 5,
        "digest": f"sha256:{'b' * 64}",
    }
    oci["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    zstd = json.dumps(oci).encode()
    assert to_docker(Manifest(zstd, OCI_MANIFEST, digest_of(zstd))) is None


def test_negotiation() -> None:
    assert not wants_docker([])
    assert wants_docker([DOCKER_MANIFEST])
    assert wants_docker([f"{DOCKER_MANIFEST}; q=0.5", "application/json"])
    assert not wants_docker([DOCKER_MANIFEST, OCI_MANIFEST])
    assert not wants_docker([f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"])
    assert not wants_docker(["*/*", DOCKER_MANIFEST])


def test_scopes_and_decisions() -> None:
    acme = Principal("token:1", "acme")
    assert parse_scopes(["repository:a/b:pull,push registry:catalog:*"]) == [
        ("repository", "a/b", ["pull", "push"]),
        ("registry", "catalog", ["*"]),
    ]
    assert grant(acme, ["repository:globex/shop:pull", "repository:acme/x:push"]) == []
    assert decide(None, "acme/x", scoped=True) is Decision.CHALLENGE
    assert decide(acme, "globex/x", scoped=True) is Decision.HIDE
    assert decide(acme, "globex/x", scoped=False) is Decision.HIDE
    assert decide(acme, "acme/x", scoped=False) is Decision.CHALLENGE
    assert decide(acme, "acme/x", scoped=True) is Decision.ALLOW
    assert decide(Principal("user:dev", None, agency=True), "globex/x", scoped=True) is (
        Decision.ALLOW
    )
    assert decide(Principal("token:2", "acme", can_pull=False), "acme/x", scoped=True) is (
        Decision.DENY
    )


def test_paginate() -> None:
    items = ["1", "10", "2", "latest"]
    assert paginate(items, None, None).items == items
    assert paginate(items, 2, None).next_last == "10"
    assert paginate(items, 2, "10").items == ["2", "latest"]
    assert paginate(items, 2, "10").next_last is None
    assert paginate(items, 0, None).items == [] and paginate(items, 0, None).next_last is None
