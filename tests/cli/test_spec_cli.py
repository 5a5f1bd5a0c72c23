"""`websonic spec` on a real state folder: formats, files, revisions and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from websonic.hosting.spec import schema

from conftest import EXAMPLES, Cli


@pytest.fixture
def shop(cli: Cli) -> Cli:
    cli.run("customer", "add", "acme", "--name", "<script>alert('x')</script>")
    cli.run("site", "add", "acme/shop", "--source", str(EXAMPLES / "python-shop"))
    return cli


def test_json_spec_validates_and_is_stable(shop: Cli) -> None:
    first = shop.json("spec", "acme/shop", "--domain", "shop.example.org")
    jsonschema.validate(first, schema())
    assert first["database"]["engine"] == "postgresql" and first["release"] is None
    assert first["network"]["domains"] == ["shop.example.org"]
    again = shop.run("spec", "acme/shop", "--format", "json", "--domain", "shop.example.org")
    assert json.loads(again.stdout) == first


def test_markdown_and_html_for_people(shop: Cli) -> None:
    markdown = shop.run("spec", "acme/shop").stdout
    assert markdown.startswith("# Hosting specification: acme/shop")
    assert "postgresql | 15" in markdown and "not measured yet" in markdown
    html = shop.run("spec", "acme/shop", "--format", "html").stdout
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_output_file(shop: Cli, tmp_path: Path) -> None:
    target = tmp_path / "spec.html"
    proc = shop.run("spec", "acme/shop", "--format", "html", "-o", str(target))
    assert str(target) in proc.stdout and "revision sha256:" in proc.stdout
    assert target.read_text().startswith("<!DOCTYPE html>")
    written = shop.json("spec", "acme/shop", "-o", str(tmp_path / "spec.json"))
    saved = json.loads((tmp_path / "spec.json").read_text())
    assert written["revision"] == saved["revision"] and written["format"] == "json"


def test_revision_changes_with_the_manifest(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "site"
    shutil.copytree(EXAMPLES / "static-brochure", source)
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/one", "--source", str(source))
    manifest = source / "websonic.toml"
    manifest.write_text(manifest.read_text() + '\n[services]\ndatabase = "sqlite"\n')
    cli.run("site", "add", "acme/two", "--source", str(source))
    one, two = cli.json("spec", "acme/one"), cli.json("spec", "acme/two")
    assert one["database"]["engine"] == "none" and two["database"]["engine"] == "sqlite"
    assert one["revision"] != two["revision"]
    assert two["server"]["disk_mib"] >= one["server"]["disk_mib"]


def test_bad_input(shop: Cli) -> None:
    assert "Unknown site" in shop.fails("spec", "acme/none", code=3)
    assert "Unknown customer" in shop.fails("spec", "nobody/x", code=3)
    assert "Unknown format" in shop.fails("spec", "acme/shop", "--format", "pdf", code=2)
    assert "not a domain" in shop.fails("spec", "acme/shop", "--domain", "a b", code=2)


@pytest.mark.containers
def test_built_release_is_measured(cli: Cli) -> None:
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    before = cli.json("spec", "acme/brochure")
    cli.run("base", "build", "static")
    built = cli.json("build", "acme/brochure")
    after = cli.json("spec", "acme/brochure")
    jsonschema.validate(after, schema())
    assert after["release"] == {
        "number": built["release"],
        "digest": built["digest"],
        "size_bytes": built["size"],
    }
    assert after["sizes"]["image"]["measured"] is True
    assert after["revision"] != before["revision"]
