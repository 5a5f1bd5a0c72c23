"""The hosting specification as a document: numbers, schema, revision, renderings."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy.orm import Session

from websonic.accounts.service import add_customer
from websonic.builds.models import Release
from websonic.core.errors import InvalidInput
from websonic.core.runner import Runner
from websonic.hosting import spec
from websonic.hosting.requirements import Requirements
from websonic.hosting.spec_render import markdown_cell, mib_text, render
from websonic.platform import Platform
from websonic.sites.manifest import parse_manifest
from websonic.sites.service import add_site

from conftest import EXAMPLES, ROOT

MIB = 1024 * 1024
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def session(platform: Platform) -> Iterator[Session]:
    with platform.transaction() as opened:
        add_customer(opened, "acme", "Acme <script>alert(1)</script>", actor="test")
        yield opened


def _site(session: Session, name: str, example: str) -> Any:
    return add_site(session, Runner(), f"acme/{name}", str(EXAMPLES / example), actor="test")


def _release(session: Session, site: Any, number: int, size: int) -> Release:
    release = Release(
        site=site,
        number=number,
        digest=DIGEST,
        config_digest=DIGEST,
        size=size,
        layers=[],
        tool_versions={},
        source_ref=site.source,
        source_epoch=0,
        signature="",
        signed_payload="",
        signing_key_id="k",
        sbom_digest=DIGEST,
    )
    session.add(release)
    session.flush()
    return release


def _validate(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(spec.schema()).validate(document)


def test_schema_is_published_identically_in_the_docs() -> None:
    packaged = ROOT / "src" / "websonic" / "hosting" / "spec.schema.json"
    assert (ROOT / "docs" / "hosting-spec.schema.json").read_text() == packaged.read_text()
    jsonschema.Draft202012Validator.check_schema(spec.schema())


@pytest.mark.parametrize(
    ("example", "engine", "version", "volumes", "cpus"),
    [
        ("static-brochure", "none", None, [], 1),
        ("python-shop", "postgresql", "15", ["uploads"], 2),
        ("php-guestbook", "mariadb", "10.11", ["uploads"], 2),
    ],
)
def test_spec_of_each_example_validates(
    session: Session, example: str, engine: str, version: str | None, volumes: list, cpus: int
) -> None:
    site = _site(session, "s", example)
    document = spec.build_spec(site, None, domains=["www.example.org"])
    _validate(document)
    assert document["database"]["engine"] == engine
    assert document["database"]["version"] == version
    assert [v["name"] for v in document["volumes"]] == volumes
    assert document["server"]["cpus"] == cpus
    assert document["release"] is None
    assert document["sizes"]["image"]["measured"] is False
    assert "not measured yet" in document["sizes"]["database"]["note"]
    assert {r["type"] for r in document["network"]["dns_records"]} == {"A", "AAAA"}
    assert document["requirements"]["disk_mib"] == document["server"]["disk_mib"]
    assert document["revision"] == spec.revision_of(document)
    markdown = render(document, "md")
    html = render(document, "html")
    for text in (markdown, html):
        assert "acme/s" in text and document["revision"] in text
        assert "Debian 12+" in text and "podman" in text and "www.example.org" in text
        assert "not measured yet" in text and "Who is responsible for what" in text
        assert engine in text
    if "secrets" in document["env"] and document["env"]["secrets"]:
        assert document["env"]["secrets"][0] in markdown


def test_schema_rejects_broken_documents(session: Session) -> None:
    document = spec.build_spec(_site(session, "shop", "python-shop"), None)
    missing = copy.deepcopy(document)
    del missing["server"]["disk_mib"]
    wrong_type = copy.deepcopy(document)
    wrong_type["server"]["memory_mib"] = "2 GiB"
    bad_revision = {**document, "revision": "md5:1234"}
    unknown = {**document, "surprise": True}
    for broken in (missing, wrong_type, bad_revision, unknown):
        with pytest.raises(jsonschema.ValidationError):
            _validate(broken)


def test_requirements_follow_the_headroom_rules(session: Session) -> None:
    site = _site(session, "shop", "python-shop")
    baseline = spec.requirements_for(site, None, domains=["Shop.Example.org."])
    assert isinstance(baseline, Requirements)
    assert baseline.site == "acme/shop" and baseline.domains == ("shop.example.org",)
    assert baseline.ports == (80, 443) and baseline.runtime_min_version == "4.3"
    # 400 x 3 + 450 engine + 1024 data + 1024 uploads + 2048 margin = 5746 -> 6144
    assert baseline.disk_mib == 6144
    assert baseline.memory_mib == 1536 and baseline.cpus == 2
    measured = spec.requirements_for(site, _release(session, site, 1, 2000 * MIB))
    # 2000 x 3 + 450 + 1024 + 1024 + 2048 = 10546 -> 10752
    assert measured.disk_mib == 10752
    larger = spec.requirements_for(site, _release(session, site, 2, 3000 * MIB))
    assert larger.disk_mib - measured.disk_mib >= 3 * 1000 - spec.DISK_STEP_MIB


def test_static_site_needs_the_least() -> None:
    manifest = parse_manifest('[site]\nkind = "static"\n')
    requirements = spec.requirements_from("a/b", manifest, 10 * MIB)
    assert requirements.cpus == 1 and requirements.memory_mib == 1024
    assert requirements.disk_mib == 2560  # 10 x 3 + 2048 margin, rounded up to 512


def test_rsync_is_required_where_files_go_into_volumes(session: Session) -> None:
    """migrate and files sync copy a site's volumes with rsync on the server."""
    assert spec.requirements_for(_site(session, "shop", "python-shop"), None).rsync
    assert not spec.requirements_for(_site(session, "web", "static-brochure"), None).rsync


def test_newest_release_is_measured(session: Session) -> None:
    site = _site(session, "web", "static-brochure")
    _release(session, site, 1, 50 * MIB)
    _release(session, site, 2, 80 * MIB)
    document = spec.hosting_spec(session, "acme/web")
    _validate(document)
    assert document["release"]["number"] == 2
    assert document["sizes"]["image"] == {
        "mib": 80,
        "measured": True,
        "note": "measured (newest release, compressed)",
    }
    assert "Based on release 2" in render(document, "md")


def test_revision_is_stable_and_follows_the_inputs(session: Session, tmp_path: Path) -> None:
    site = _site(session, "web", "static-brochure")
    first = spec.build_spec(site, None)
    assert spec.build_spec(site, None) == first
    assert spec.build_spec(site, None, domains=["example.org"])["revision"] != first["revision"]
    site.manifest = parse_manifest(
        '[site]\nkind = "static"\n[[volumes]]\nname = "files"\npath = "/srv/files"\n'
    ).to_record()
    assert spec.build_spec(site, None)["revision"] != first["revision"]


def test_html_escapes_and_markdown_neutralises_names(session: Session) -> None:
    document = spec.build_spec(_site(session, "web", "static-brochure"), None)
    html = render(document, "html")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.startswith("<!DOCTYPE html>")
    assert "<script>" not in render(document, "md")
    assert markdown_cell("a|b\nc<d") == "a\\|b c&lt;d"


def test_json_rendering_is_canonical_and_complete(session: Session) -> None:
    document = spec.build_spec(_site(session, "web", "static-brochure"), None)
    assert json.loads(render(document, "json")) == document


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput):
        spec.check_domains(["not a domain"])
    with pytest.raises(InvalidInput):
        render({}, "pdf")


def test_sizes_are_written_for_people() -> None:
    assert (mib_text(300), mib_text(2048), mib_text(1536), mib_text(1200)) == (
        "300 MiB",
        "2 GiB",
        "1.5 GiB",
        "1200 MiB",
    )
