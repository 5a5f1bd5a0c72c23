"""No leaks between customers: another customer's repository answers exactly like none."""

from __future__ import annotations

from fastapi.testclient import TestClient

VOLATILE = {"date"}
NAMES = ("globex/shop", "globex/none", "nobody/shop")


def answer(response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    return response.status_code, response.content, headers


def same_as_missing(client: TestClient, headers: dict, path: str, method: str = "GET") -> None:
    """``path`` about globex/shop answers byte for byte like about globex/none and nobody/shop
    (names of one length, so that only the name in the body differs)."""
    answers = {
        name: answer(client.request(method, path.format(name=name), headers=headers))
        for name in NAMES
    }
    statuses = {name: a[0] for name, a in answers.items()}
    # The body names the repository asked for; apart from that name, everything is equal.
    normalised = {
        name: (a[0], a[1].replace(name.encode(), b"NAME"), a[2]) for name, a in answers.items()
    }
    assert len(set(map(repr, normalised.values()))) == 1, (path, statuses, answers)


def test_acme_basic_sees_globex_as_nonexistent(client: TestClient, world, acme) -> None:
    """With acme's token (Basic): manifests, blobs, tags of globex are NAME_UNKNOWN like none."""
    layer = world.images["globex/shop:1"].layers[0]
    manifest = world.images["globex/shop:1"].manifest
    for path in (
        "/v2/{name}/manifests/1",
        "/v2/{name}/manifests/latest",
        f"/v2/{{name}}/manifests/{manifest}",
        f"/v2/{{name}}/blobs/{layer}",
        "/v2/{name}/tags/list",
    ):
        for method in ("GET", "HEAD"):
            same_as_missing(client, acme, path, method)
    response = client.get(f"/v2/globex/shop/blobs/{layer}", headers=acme)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_acme_bearer_sees_globex_as_nonexistent(client: TestClient, world, acme, bearer) -> None:
    """Through the token flow: asking for globex's scope grants nothing, and answers match."""
    for name in NAMES:
        headers = bearer(acme, f"repository:{name}:pull")
        response = client.get(f"/v2/{name}/manifests/1", headers=headers)
        assert response.status_code == 404, name
    headers = bearer(acme, *(f"repository:{name}:pull" for name in NAMES))
    same_as_missing(client, headers, "/v2/{name}/manifests/1")
    same_as_missing(client, headers, f"/v2/{{name}}/blobs/{world.images['globex/shop:1'].config}")


def test_anonymous_answers_do_not_reveal_existence(client: TestClient) -> None:
    """Without credentials: the same 401 challenge for existing and missing repositories."""
    shop = client.get("/v2/globex/shop/manifests/1")
    nothing = client.get("/v2/globex/nothing/manifests/1")
    assert shop.status_code == nothing.status_code == 401
    assert shop.content == nothing.content
    assert shop.headers["www-authenticate"].replace("shop", "X") == nothing.headers[
        "www-authenticate"
    ].replace("nothing", "X")


def test_shared_blob_is_only_reachable_through_the_callers_repository(
    client: TestClient, world, acme, globex
) -> None:
    """A blob is served only through a repository of the caller that holds it."""
    globex_layer = world.images["globex/shop:1"].layers[1]
    assert client.get(f"/v2/globex/shop/blobs/{globex_layer}", headers=globex).status_code == 200
    for name in ("acme/brochure", "acme/blog"):
        response = client.get(f"/v2/{name}/blobs/{globex_layer}", headers=acme)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_catalog_and_tags_show_only_the_callers(client: TestClient, acme, globex) -> None:
    """Catalog and tag lists are per customer."""
    assert "globex/shop" not in client.get("/v2/_catalog", headers=acme).text
    assert "acme" not in client.get("/v2/_catalog", headers=globex).text
    assert client.get("/v2/globex/shop/tags/list", headers=acme).status_code == 404
