from __future__ import annotations

from pathlib import Path

import pytest

from websonic.core.errors import InvalidInput
from websonic.sites import grammar
from websonic.sites.manifest import KINDS, detect_kind, load_manifest, parse_manifest

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
        ('[site]\nkind = "static"\nport = 70000', "site.port", "1024 to 65535"),
        ('[site]\nkind = "containerfile"\nport = 80', "site.port", "non-root"),
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
            "not an absolute path",
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


# --- finding 1: the grammar of values that reach a server --------------------------------------

INJECTED_PATHS = [
    "/data uploads/link:/host",  # an extra -v in the unit's ExecStart
    "/data ../..:/host",
    "/data/../..",
    "/srv/site/uploads/..",
    "/srv/./site",
    "/srv//site",
    "/srv/site/",
    "/srv/site:",
    "/srv/site:rw",
    "/srv/site,z",
    "/srv/$(id)",
    "/srv/`id`",
    "/srv/a\tb",
    "/srv/a\nb",
    "/srv/site/uploads\ndomain=evil.example",
    "/srv/'x'",
    '/srv/"x"',
    "/srv/x;y",
    "/srv/%n",
    "/srv/*",
    "/srv/\u00e9t\u00e9",
    "/",
    "relative/path",
    "",
    "/proc/self",
    "/sys",
    "/dev/shm/x",
    "/run/secrets",
    "/var/run/x",
    "/etc",
    "/usr/local/x",
    "/srv/site",
    "/" + "a" * 300,
]


def volume_manifest(kind: str, path: str) -> str:
    quoted = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    quoted = quoted.replace("\t", "\\t")
    return f'[site]\nkind = "{kind}"\n[[volumes]]\nname = "uploads"\npath = "{quoted}"\n'


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", INJECTED_PATHS)
def test_finding1_volume_path_cannot_inject_a_mount(kind: str, path: str) -> None:
    """Every kind, the containerfile kind too (its build skips builds/kinds.py's checks)."""
    with pytest.raises(InvalidInput) as refused:
        parse_manifest(volume_manifest(kind, path))
    assert "volumes.0.path" in refused.value.message


@pytest.mark.parametrize(
    "path", ["/srv/site/uploads", "/data", "/var/www/html/files", "/home/app/files.d", "/opt/x"]
)
def test_volume_paths_of_their_own_folder_pass(path: str) -> None:
    manifest = parse_manifest(volume_manifest("containerfile", path))
    assert manifest.volumes[0].path == path


def test_volumes_inside_one_another_are_refused() -> None:
    """A mount over a mount: a symlink planted in the outer volume would redirect the inner."""
    text = (
        '[site]\nkind = "containerfile"\n'
        '[[volumes]]\nname = "a"\npath = "/data"\n'
        '[[volumes]]\nname = "b"\npath = "/data/link"\n'
    )
    with pytest.raises(InvalidInput, match="overlap"):
        parse_manifest(text)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('"A B" = "x"', "env"),
        ('"A=B" = "x"', "env"),
        ('"1A" = "x"', "env"),
        ('"A*" = "x"', "env"),  # podman's --env-file passes the host's A* variables through
        ('"A\\u0000" = "x"', "env"),
        ('A = "line\\nbreak"', "env"),
        ('A = "carriage\\rreturn"', "env"),
        ('A = "nul\\u0000"', "env"),
        ('A = "escape\\u001b[2J"', "env"),
        ('A = "delete\\u007f"', "env"),
    ],
)
def test_env_names_and_values_outside_the_grammar_are_refused(entry: str, key: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_manifest(f'[site]\nkind = "containerfile"\n[env]\n{entry}\n')
    assert f"  {key}" in refused.value.message


@pytest.mark.parametrize(
    "health",
    ["/h z", "/h$(id)", "/h`id`", "/h#x", "/h[1-9]", "/h{a,b}", "/h'", '/h\\"', "/h\\n", "h"],
)
def test_health_paths_outside_the_grammar_are_refused(health: str) -> None:
    with pytest.raises(InvalidInput, match=r"site\.health"):
        parse_manifest(f'[site]\nkind = "containerfile"\nhealth = "{health}"\n')


@pytest.mark.parametrize("health", ["/healthz", "/", "/health.php?full=1&x=%20", "/a/b-c_d~e"])
def test_health_paths_of_the_grammar_pass(health: str) -> None:
    manifest = parse_manifest(f'[site]\nkind = "static"\nhealth = "{health}"\n')
    assert manifest.site.health == health


def test_env_values_may_hold_anything_printable() -> None:
    value = "Atelier Lumi\u00e8re $HOME `x` 'q' \\\" ; & | \u00a0 \U0001f600"
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    manifest = parse_manifest(f'[site]\nkind = "static"\n[env]\nA = "{quoted}"\n')
    assert manifest.plain_env == {"A": value}
    assert grammar.env_value("A", value) == value
