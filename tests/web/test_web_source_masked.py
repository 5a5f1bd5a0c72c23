"""Finding 9: the API never shows a git URL's password (sites, customer's sites, releases)."""

from __future__ import annotations

from sqlalchemy import select

from websonic.builds.models import Release
from websonic.sites import source as sources
from websonic.sites.service import get_site

from web.web_helpers import TestClient, World

URL = "https://deploy:pw-Secret%2F1@git.example/brochure.git"
SHOWN = "https://deploy:***@git.example/brochure.git"


def test_finding9_the_api_shows_a_git_urls_password_as_stars(
    world: World, as_admin: TestClient
) -> None:
    spec = sources.parse_source(f"{URL}#main")
    with world.platform.transaction() as session:
        site = get_site(session, "acme/brochure")
        site.source, site.ref = spec.stored(world.platform.secrets), "main"
        release = session.scalars(select(Release).where(Release.site_id == site.id)).one()
        release.source_ref = f"{URL}#main"  # recorded in the clear by an earlier version

    answers = [
        as_admin.get("/api/v1/sites/acme/brochure").text,
        as_admin.get("/api/v1/customers/acme/sites").text,
        as_admin.get("/api/v1/sites/acme/brochure/releases").text,
    ]
    assert as_admin.get("/api/v1/sites/acme/brochure").json()["source"] == SHOWN
    assert as_admin.get("/api/v1/sites/acme/brochure/releases").json()[0]["source_ref"] == (
        f"{SHOWN}#main"
    )
    for answer in answers:
        assert "Secret" not in answer and "sealed." not in answer
