"""The distribution spec's pull side, endpoint by endpoint, through the real app.

The Go conformance suite cannot be built here (no Go module proxy); these checks stand in for
its pull and content-discovery workflows. Each docstring names the spec section it covers.
"""

from __future__ import annotations

import hashlib
import json

from fastapi.testclient import TestClient

from websonic.registry.manifests import DOCKER_MANIFEST, OCI_MANIFEST

BROCHURE = "/v2/acme/brochure"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def error_codes(response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


def test_base_requires_auth_then_answers_empty_json(client: TestClient, acme) -> None:
    """spec: Determining support (end-1): 401 + Bearer challenge, then 200 {}."""
    anonymous = client.get("/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == (
        'Bearer realm="http://testserver/v2/token",service="websonic"'
    )
    assert error_codes(anonymous) == ["UNAUTHORIZED"]
    ok = client.get("/v2/", headers=acme)
    assert ok.status_code == 200 and ok.json() == {}
    assert ok.headers["docker-distribution-api-version"] == "registry/2.0"
    assert client.get("/v2", headers=acme).status_code == 200


def test_manifest_by_tag_and_by_digest(client: TestClient, world, acme) -> None:
    """spec: Pull / Pulling manifests (end-3), by tag and by digest, OCI by default."""
    image = world.images["acme/brochure:1"]
    by_tag = client.get(f"{BROCHURE}/manifests/1", headers=acme)
    assert by_tag.status_code == 200
    assert by_tag.headers["content-type"] == OCI_MANIFEST
    assert sha(by_tag.content) == image.manifest
    assert by_tag.headers["docker-content-digest"] == image.manifest
    assert by_tag.headers["etag"] == f'"{image.manifest}"'
    assert int(by_tag.headers["content-length"]) == len(by_tag.content)
    by_digest = client.get(f"{BROCHURE}/manifests/{image.manifest}", headers=acme)
    assert by_digest.content == by_tag.content
    accepts_oci = {**acme, "Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}
    assert client.get(f"{BROCHURE}/manifests/1", headers=accepts_oci).content == by_tag.content


def test_latest_is_the_newest_release(client: TestClient, world, acme) -> None:
    """spec: Pull / Pulling manifests: the `latest` tag."""
    latest = client.get(f"{BROCHURE}/manifests/latest", headers=acme)
    assert latest.headers["docker-content-digest"] == world.images["acme/brochure:2"].manifest


def test_head_manifest_has_headers_and_no_body(client: TestClient, world, acme) -> None:
    """spec: Checking if content exists in the registry (HEAD manifest)."""
    head = client.head(f"{BROCHURE}/manifests/1", headers=acme)
    get = client.get(f"{BROCHURE}/manifests/1", headers=acme)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["docker-content-digest"] == get.headers["docker-content-digest"]
    missing = client.head(f"{BROCHURE}/manifests/99", headers=acme)
    assert missing.status_code == 404 and missing.content == b""


def test_docker_schema2_for_clients_without_oci(client: TestClient, world, acme) -> None:
    """spec: Pulling manifests, content negotiation: Docker v2 schema 2 synthesized from OCI."""
    headers = {**acme, "Accept": DOCKER_MANIFEST}
    docker = client.get(f"{BROCHURE}/manifests/1", headers=headers)
    assert docker.status_code == 200
    assert docker.headers["content-type"] == DOCKER_MANIFEST
    body = json.loads(docker.content)
    oci = json.loads(client.get(f"{BROCHURE}/manifests/1", headers=acme).content)
    assert body["mediaType"] == DOCKER_MANIFEST
    assert body["config"] == {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": oci["config"]["size"],
        "digest": oci["config"]["digest"],
    }
    assert [layer["digest"] for layer in body["layers"]] == [
        layer["digest"] for layer in oci["layers"]
    ]
    assert {layer["mediaType"] for layer in body["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    digest = docker.headers["docker-content-digest"]
    assert digest == sha(docker.content) != world.images["acme/brochure:1"].manifest
    again = client.get(f"{BROCHURE}/manifests/1", headers=headers)
    assert again.content == docker.content  # deterministic
    by_digest = client.get(f"{BROCHURE}/manifests/{digest}", headers=acme)
    assert by_digest.status_code == 200 and by_digest.content == docker.content
    assert by_digest.headers["content-type"] == DOCKER_MANIFEST


def test_unknown_manifests(client: TestClient, acme) -> None:
    """spec: Pulling manifests: MANIFEST_UNKNOWN (404) for unknown tags and digests."""
    for reference in ("99", "nope", "01", "sha256:" + "0" * 64, "bad..tag!"):
        response = client.get(f"{BROCHURE}/manifests/{reference}", headers=acme)
        assert response.status_code == 404, reference
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]


def test_blob_whole_and_head(client: TestClient, world, acme) -> None:
    """spec: Pulling blobs (end-2) and Checking if content exists (HEAD blob)."""
    image = world.images["acme/brochure:1"]
    for digest in (*image.layers, image.config, image.sbom, image.manifest):
        response = client.get(f"{BROCHURE}/blobs/{digest}", headers=acme)
        assert response.status_code == 200
        assert sha(response.content) == digest
        assert response.headers["docker-content-digest"] == digest
        assert response.headers["etag"] == f'"{digest}"'
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-length"] == str(len(response.content))
        head = client.head(f"{BROCHURE}/blobs/{digest}", headers=acme)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(response.content))


def test_blob_ranges(client: TestClient, world, acme) -> None:
    """spec: Pulling blobs, `Range` (RFC 9110 §14): 206 with Content-Range, suffix, open end."""
    digest = world.images["acme/brochure:1"].layers[0]
    url = f"{BROCHURE}/blobs/{digest}"
    whole = client.get(url, headers=acme).content
    size = len(whole)
    first = client.get(url, headers={**acme, "Range": "bytes=0-99"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-99/{size}"
    assert first.headers["content-length"] == "100" and first.content == whole[:100]
    rest = client.get(url, headers={**acme, "Range": "bytes=100-"})
    assert rest.status_code == 206 and first.content + rest.content == whole
    tail = client.get(url, headers={**acme, "Range": "bytes=-10"})
    assert tail.content == whole[-10:]
    past_end = client.get(url, headers={**acme, "Range": f"bytes={size - 5}-{size + 100}"})
    assert past_end.status_code == 206 and past_end.content == whole[-5:]
    head = client.head(url, headers={**acme, "Range": "bytes=10-19"})
    assert head.status_code == 206 and head.headers["content-length"] == "10"


def test_unsatisfiable_and_malformed_ranges(client: TestClient, world, acme) -> None:
    """spec: Pulling blobs, Range: 416 when unsatisfiable; malformed ranges ignored (200)."""
    digest = world.images["acme/brochure:1"].layers[0]
    url = f"{BROCHURE}/blobs/{digest}"
    size = len(client.get(url, headers=acme).content)
    for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = client.get(url, headers={**acme, "Range": unsatisfiable})
        assert response.status_code == 416, unsatisfiable
        assert response.headers["content-range"] == f"bytes */{size}"
    for malformed in ("bytes=abc", "items=0-10", "bytes=5-2", "bytes=0-1,4-5", "bytes=-", "0-10"):
        response = client.get(url, headers={**acme, "Range": malformed})
        assert response.status_code == 200, malformed
        assert len(response.content) == size
    stale = client.get(url, headers={**acme, "Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200
    fresh = client.get(url, headers={**acme, "Range": "bytes=0-9", "If-Range": f'"{digest}"'})
    assert fresh.status_code == 206


def test_blob_of_another_repository_is_unknown(client: TestClient, world, acme) -> None:
    """spec: Pulling blobs: BLOB_UNKNOWN for a blob that is not in *this* repository."""
    blog_layer = world.images["acme/blog:1"].layers[0]
    assert client.get(f"/v2/acme/blog/blobs/{blog_layer}", headers=acme).status_code == 200
    for digest in (blog_layer, world.images["globex/shop:1"].layers[0], "sha256:" + "1" * 64):
        response = client.get(f"{BROCHURE}/blobs/{digest}", headers=acme)
        assert response.status_code == 404
        assert error_codes(response) == ["BLOB_UNKNOWN"]


def test_tags_list_and_pagination(client: TestClient, acme) -> None:
    """spec: Content discovery / Listing tags (end-8a, end-8b): lexical order, n, last, Link."""
    listing = client.get(f"{BROCHURE}/tags/list", headers=acme)
    assert listing.json() == {"name": "acme/brochure", "tags": ["1", "2", "latest"]}
    assert "link" not in listing.headers
    page = client.get(f"{BROCHURE}/tags/list?n=2", headers=acme)
    assert page.json()["tags"] == ["1", "2"]
    assert page.headers["link"] == '</v2/acme/brochure/tags/list?n=2&last=2>; rel="next"'
    following = client.get(f"{BROCHURE}/tags/list?n=2&last=2", headers=acme)
    assert following.json()["tags"] == ["latest"] and "link" not in following.headers
    assert client.get(f"{BROCHURE}/tags/list?n=0", headers=acme).json()["tags"] == []
    assert client.get(f"{BROCHURE}/tags/list?last=1", headers=acme).json()["tags"] == [
        "2",
        "latest",
    ]


def test_catalog_lists_only_what_the_caller_may_pull(
    client: TestClient, acme, globex, basic_auth
) -> None:
    """Listing repositories (`/v2/_catalog`, n/last): filtered per caller; no empty sites."""
    assert client.get("/v2/_catalog", headers=acme).json() == {
        "repositories": ["acme/blog", "acme/brochure"]
    }
    assert client.get("/v2/_catalog", headers=globex).json() == {"repositories": ["globex/shop"]}
    first = client.get("/v2/_catalog?n=1", headers=acme)
    assert first.json() == {"repositories": ["acme/blog"]}
    assert first.headers["link"] == '</v2/_catalog?n=1&last=acme%2Fblog>; rel="next"'
    assert client.get("/v2/_catalog?n=1&last=acme/blog", headers=acme).json() == {
        "repositories": ["acme/brochure"]
    }
    assert client.get("/v2/_catalog").status_code == 401


def test_repository_unknown(client: TestClient, acme) -> None:
    """Error codes: NAME_UNKNOWN (404) for a repository without releases or that does not exist."""
    for name in ("acme/empty", "acme/nothing", "acme/a/b"):
        response = client.get(f"/v2/{name}/tags/list", headers=acme)
        assert response.status_code == 404, name
        assert error_codes(response) == ["NAME_UNKNOWN"]


def test_invalid_names(client: TestClient, acme) -> None:
    """Error codes: NAME_INVALID (400) for names outside the spec's grammar."""
    for name in ("ACME/brochure", "acme/bro chure", "acme//brochure", "acme/-x", "a" * 300):
        response = client.get(f"/v2/{name}/manifests/1", headers=acme)
        assert response.status_code == 400, name
        assert error_codes(response) == ["NAME_INVALID"]


def test_invalid_and_unsupported_digests(client: TestClient, acme) -> None:
    """Error codes: DIGEST_INVALID (malformed), UNSUPPORTED (a well-formed sha512)."""
    for digest in ("sha256:abc", "sha256:" + "G" * 64, "sha256:" + "A" * 64, "nodigest:", "md5"):
        response = client.get(f"{BROCHURE}/blobs/{digest}", headers=acme)
        assert response.status_code == 400, digest
        assert error_codes(response) == ["DIGEST_INVALID"], digest
    sha512 = client.get(f"{BROCHURE}/blobs/sha512:{'a' * 128}", headers=acme)
    assert sha512.status_code == 400 and error_codes(sha512) == ["UNSUPPORTED"]
    bad512 = client.get(f"{BROCHURE}/blobs/sha512:{'a' * 64}", headers=acme)
    assert error_codes(bad512) == ["DIGEST_INVALID"]
    manifest = client.get(f"{BROCHURE}/manifests/sha256:1234", headers=acme)
    assert error_codes(manifest) == ["DIGEST_INVALID"]


def test_path_traversal_is_refused(client: TestClient, world, acme) -> None:
    """Error codes for traversal in names and digests, raw and percent-encoded."""
    layer = world.images["globex/shop:1"].layers[0]
    attempts = {
        f"/v2/acme/%2e%2e/globex/shop/blobs/{layer}": "NAME_INVALID",
        f"/v2/acme/brochure/%2E%2E/%2e%2e/globex/shop/blobs/{layer}": "NAME_INVALID",
        "/v2/acme/brochure/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd": "DIGEST_INVALID",
        "/v2/acme/brochure/blobs/..%2f..%2fstate.db": "DIGEST_INVALID",
        "/v2/acme/brochure/manifests/..%2f..%2findex.json": "MANIFEST_UNKNOWN",
        "/v2/acme%2f..%2fglobex%2fshop/tags/list": "NAME_INVALID",
    }
    for path, code in attempts.items():
        response = client.get(path, headers=acme)
        assert error_codes(response) == [code], path
        assert response.status_code in (400, 404), path


def test_writes_are_unsupported(client: TestClient, acme) -> None:
    """Error codes: UNSUPPORTED (405) for push and delete: this registry is pull-only."""
    for method, path in (
        ("POST", f"{BROCHURE}/blobs/uploads/"),
        ("PUT", f"{BROCHURE}/manifests/3"),
        ("PATCH", f"{BROCHURE}/blobs/uploads/x"),
        ("DELETE", f"{BROCHURE}/manifests/1"),
    ):
        response = client.request(method, path, headers=acme)
        assert response.status_code == 405
        assert error_codes(response) == ["UNSUPPORTED"]
    unknown = client.get(f"{BROCHURE}/referrers/sha256:{'0' * 64}", headers=acme)
    assert unknown.status_code == 404 and error_codes(unknown) == ["UNSUPPORTED"]
