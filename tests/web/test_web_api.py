"""The JSON API: CSRF on changes, problem responses, and who sees what (tenant isolation)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from web.web_helpers import (
    ACME_OWNER,
    ADMIN,
    DEVELOPER,
    GLOBEX_VIEWER,
    TestClient,
    World,
    csrf_of,
    login,
)

Login = Callable[[tuple[str, str]], TestClient]


@pytest.fixture
def as_user(app: FastAPI) -> Iterator[Login]:
    """Log in as someone, each in their own client (own cookie jar)."""
    clients: list[TestClient] = []

    def make(credentials: tuple[str, str]) -> TestClient:
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        assert login(client, *credentials).status_code == 303
        return client

    yield make
    for client in clients:
        client.close()


def request_build(client: TestClient, site: str) -> int:
    response = client.post(
        f"/api/v1/sites/{site}/builds", json={}, headers={"X-CSRF-Token": csrf_of(client)}
    )
    assert response.status_code == 202, response.text
    job_id: int = response.json()["id"]
    assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
    return job_id


def test_changes_need_the_csrf_header(as_user: Login) -> None:
    admin = as_user(ADMIN)
    body = {"slug": "initech", "name": "Initech"}
    assert admin.post("/api/v1/customers", json=body).status_code == 403
    wrong = admin.post("/api/v1/customers", json=body, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "Missing or wrong CSRF token."
    right = admin.post("/api/v1/customers", json=body, headers={"X-CSRF-Token": csrf_of(admin)})
    assert right.status_code == 201
    assert right.json()["slug"] == "initech"
    assert right.headers["location"] == "/api/v1/customers/initech/sites"


def test_domain_errors_are_problems(as_user: Login) -> None:
    admin = as_user(ADMIN)
    headers = {"X-CSRF-Token": csrf_of(admin)}
    duplicate = admin.post("/api/v1/customers", json={"slug": "acme"}, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert duplicate.json()["detail"] == "Customer 'acme' already exists."
    invalid = admin.post("/api/v1/customers", json={"slug": "Not A Slug"}, headers=headers)
    assert invalid.status_code == 422
    assert "hint" in invalid.json()
    assert admin.get("/api/v1/sites/acme/nope").status_code == 404
    assert admin.get("/api/v1/jobs/999").status_code == 404


def test_only_admins_add_customers(as_user: Login) -> None:
    developer = as_user(DEVELOPER)
    response = developer.post(
        "/api/v1/customers", json={"slug": "initech"}, headers={"X-CSRF-Token": csrf_of(developer)}
    )
    assert response.status_code == 403


def test_admin_sees_every_customer(as_user: Login) -> None:
    admin = as_user(ADMIN)
    assert [c["slug"] for c in admin.get("/api/v1/customers").json()] == ["acme", "globex"]
    assert admin.get("/api/v1/customers/globex/sites").json()[0]["slug"] == "shop"
    site = admin.get("/api/v1/sites/acme/brochure").json()
    assert (site["customer"], site["slug"], site["kind"]) == ("acme", "brochure", "static")
    [release] = admin.get("/api/v1/sites/acme/brochure/releases").json()
    assert release["number"] == 1
    assert release["digest"] == "sha256:" + "ab" * 32
    assert release["signed"] is True


def test_customer_user_sees_only_their_customer(as_user: Login) -> None:
    alice = as_user(ACME_OWNER)
    me = alice.get("/api/v1/me").json()
    assert (me["username"], me["role"], me["customer"]) == ("alice", "owner", "acme")
    assert [c["slug"] for c in alice.get("/api/v1/customers").json()] == ["acme"]
    assert alice.get("/api/v1/sites/acme/brochure/releases").status_code == 200
    hidden = alice.get("/api/v1/customers/globex/sites")
    missing = alice.get("/api/v1/customers/nosuch/sites")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == "Unknown customer 'globex'."
    assert missing.json()["detail"] == "Unknown customer 'nosuch'."
    for path in ("/api/v1/sites/globex/shop", "/api/v1/sites/globex/shop/releases"):
        assert alice.get(path).status_code == 404, path


def test_customer_users_cannot_build(as_user: Login) -> None:
    alice = as_user(ACME_OWNER)
    headers = {"X-CSRF-Token": csrf_of(alice)}
    own = alice.post("/api/v1/sites/acme/brochure/builds", headers=headers)
    assert own.status_code == 403
    other = alice.post("/api/v1/sites/globex/shop/builds", headers=headers)
    assert other.status_code == 404  # not 403: globex's existence does not leak


def test_jobs_of_another_customer_are_not_found(as_user: Login) -> None:
    developer = as_user(DEVELOPER)
    globex_job = request_build(developer, "globex/shop")
    acme_job = request_build(developer, "acme/brochure")
    alice, gary = as_user(ACME_OWNER), as_user(GLOBEX_VIEWER)
    assert alice.get(f"/api/v1/jobs/{acme_job}").json()["status"] == "queued"
    for path in (f"/api/v1/jobs/{globex_job}", f"/api/v1/jobs/{globex_job}/log"):
        assert alice.get(path).status_code == 404
        assert gary.get(path).status_code == 200
    assert alice.get(f"/jobs/{globex_job}").status_code == 404  # the portal page too
    assert gary.get(f"/api/v1/jobs/{acme_job}").status_code == 404


def test_dashboard_lists_only_visible_customers(as_user: Login) -> None:
    admin, alice = as_user(ADMIN), as_user(ACME_OWNER)
    everything = admin.get("/").text
    assert "globex/shop" in everything and "acme/brochure" in everything
    assert "sha256:abababababab" in everything  # short digest
    assert "3.0 MiB" in everything
    assert 'action="/sites/acme/brochure/build"' in everything
    own = alice.get("/").text
    assert "acme/brochure" in own and "sha256:abababababab" in own
    assert "globex" not in own.lower()
    assert "/build" not in own  # no Build button for customer roles


def test_openapi_is_published(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/sites/{customer}/{site}/builds" in schema["paths"]
    assert "/api/v1/jobs/{job_id}/log" in schema["paths"]
    assert not any(path.startswith("/login") for path in schema["paths"])


def test_portal_errors_are_pages(as_user: Login, world: World) -> None:
    admin = as_user(ADMIN)
    response = admin.get("/jobs/999")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Unknown job 999." in response.text
    assert admin.get("/no/such/page").status_code == 404
