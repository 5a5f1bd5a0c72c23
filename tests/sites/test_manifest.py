from __future__ import annotations

from pathlib import Path

import pytest

from websonic.core.errors import InvalidInput
from websonic.sites.manifest import detect_kind, load_manifest, parse_manifest

FULL = """
[site]
kind = "python"
health = "/healthz"
port = 8000
command = ["gunicorn", "wsgi:application"]

[services]
database = "postgresql"

[[volumes]]
name = "uploads"
path = "/srv/site/uploads"

[env]
APP_ENV = "production"
SECRET_KEY = { secret = true }
"""


def test_full_manifest() -> None:
    manifest = parse_manifest(FULL)
    assert manifest.kind == "python" and manifest.site.port == 8000
    assert manifest.services.database == "postgresql"
    assert manifest.volumes[0].path == "/srv/site/uploads"
    assert manifest.secret_names == ["SECRET_KEY"]
    assert manifest.plain_env == {"APP_ENV": "production"}
    assert "secret" not in str(manifest.to_record()["env"]["APP_ENV"])


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ('[site]\nkind = "ruby"', "site.kind", "Input should be"),
        ('[site]\nkind = "static"\nhealth = "healthz"', "site.health", "starting with '/'"),
        ('[site]\nkind = "static"\nport = 70000', "site.port", "less than or equal"),
        ('[site]\nkind = "static"\ncolour = "red"', "site.colour", "unknown key"),
        ('[site]\nkind = "static"\n[services]\ndatabase = "oracle"', "services.database", ""),
        (
            '[site]\nkind = "static"\n[[volumes]]\nname = "Up loads"\npath = "/x"',
            "volumes.0.name",
            "lowercase",
        ),
        (
            '[site]\nkind = "static"\n[[volumes]]\nname = "u"\npath = "rel"',
            "volumes.0.path",
            "absolute",
        ),
        ('[site]\nkind = "static"\n[env]\nSECRET = { secret = false }', "env.SECRET", ""),
        ('[site]\nkind = "static"\nroot = "../etc"', "site.root", "inside"),
        ("[services]\ndatabase = 'none'", "site", "Field required"),
    ],
)
def test_invalid_manifest_names_the_key_and_why(text: str, key: str, why: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_manifest(text)
    message = str(info.value)
    assert f"  {key}" in message and why in message


def test_not_toml() -> None:
    with pytest.raises(InvalidInput, match="not valid TOML"):
        parse_manifest("[site\nkind=")


def test_secret_values_are_refused_in_the_manifest() -> None:
    with pytest.raises(InvalidInput, match=r"env\.TOKEN"):
        parse_manifest('[site]\nkind = "static"\n[env]\nTOKEN = { secret = true, value = "x" }')


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        (["Containerfile", "index.php"], "containerfile"),
        (["Dockerfile"], "containerfile"),
        (["index.php"], "php"),
        (["composer.json"], "php"),
        (["requirements.txt"], "python"),
        (["wsgi.py"], "python"),
        (["package.json"], "node"),
        (["index.html", "style.css"], "static"),
    ],
)
def test_detect_kind(tmp_path: Path, files: list[str], kind: str) -> None:
    for name in files:
        (tmp_path / name).write_text("x")
    assert detect_kind(tmp_path) == kind
    manifest, detected = load_manifest(tmp_path)
    assert detected and manifest.kind == kind and manifest.site.health == "/healthz"


def test_undetectable_kind_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidInput, match=r"websonic\.toml"):
        load_manifest(tmp_path)
