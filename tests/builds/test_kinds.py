"""Rendered Containerfiles per site kind (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from websonic.builds import kinds
from websonic.builds.kinds import SourceFacts, render_containerfile, scan_source, start_command
from websonic.core.errors import InvalidInput
from websonic.sites.manifest import load_manifest, parse_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = "localhost/websonic/base-{}:bookworm"


def manifest(text: str):
    return parse_manifest(text)


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def index_of(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


PY = """
[site]
kind = "python"
port = 8000
[[volumes]]
name = "uploads"
path = "/srv/site/uploads"
[[volumes]]
name = "cache"
path = "/var/lib/site-cache"
[env]
APP_ENV = "production"
GREETING = "it's \\"$HOME\\""
SECRET_KEY = { secret = true }
DATABASE_URL = { secret = true }
"""


def test_python_dependencies_before_site_files():
    facts = SourceFacts(
        frozenset({"requirements.txt", "wsgi.py"}), requirements="gunicorn==23.0.0\n"
    )
    text = render_containerfile(manifest(PY), BASE.format("python"), facts=facts)
    lines = lines_of(text)
    assert lines[1] == "FROM localhost/websonic/base-python:bookworm"
    copy_req = index_of(lines, "COPY requirements.txt")
    pip = index_of(lines, "RUN PIP_CERT=")
    copy_all = lines.index("COPY . /srv/site/")
    assert copy_req < pip < copy_all
    assert "--no-cache-dir" in lines[pip] and "--no-compile" in lines[pip]
    assert "__pycache__" in lines[pip]
    assert 'PYTHONDONTWRITEBYTECODE="1"' in text
    # default start: gunicorn on the manifest's port
    assert json.loads(lines[-1].removeprefix("CMD ")) == [
        "gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-",
        "wsgi:application",
    ]  # fmt: skip


def test_secrets_never_in_containerfile_plain_env_is():
    text = render_containerfile(manifest(PY), BASE.format("python"), facts={"app.py"})
    assert "SECRET_KEY" not in text
    assert "DATABASE_URL" not in text
    assert 'APP_ENV="production"' in text
    assert 'GREETING="it\'s \\"\\$HOME\\""' in text  # $ escaped: no build-time expansion


def test_volumes_owned_by_site_user_after_site_files_and_user_last():
    text = render_containerfile(manifest(PY), BASE.format("python"), facts={"app.py"})
    lines = lines_of(text)
    run = index_of(lines, "RUN mkdir -p /srv/site/uploads /var/lib/site-cache")
    assert "chown 10001:10001 /srv/site/uploads /var/lib/site-cache" in lines[run]
    assert lines.index("COPY . /srv/site/") < run < lines.index("USER 10001:10001")
    after_user = lines[lines.index("USER 10001:10001") + 1 :]
    assert not any(line.startswith(("RUN", "COPY", "ADD")) for line in after_user)
    assert "EXPOSE 8000" in lines


def test_python_command_from_manifest_and_missing_command():
    m = manifest('[site]\nkind = "python"\ncommand = ["python3", "-m", "shop"]\n')
    assert start_command(m, set()) == ["python3", "-m", "shop"]
    with pytest.raises(InvalidInput, match="command"):
        render_containerfile(manifest('[site]\nkind = "python"\n'), "b", facts={"README"})
    assert start_command(manifest('[site]\nkind = "python"\n'), {"app.py"}) == ["python3", "app.py"]


def test_python_without_requirements_installs_project_after_copy():
    text = render_containerfile(
        manifest('[site]\nkind = "python"\ncommand = ["shop"]\n'), "b", facts={"pyproject.toml"}
    )
    lines = lines_of(text)
    assert lines.index("COPY . /srv/site/") < index_of(lines, "RUN PIP_CERT=")


@pytest.mark.parametrize(
    ("files", "install"),
    [
        ({"package.json", "package-lock.json", "server.js"}, "npm ci --omit=dev"),
        ({"package.json", "server.js"}, "npm install --omit=dev"),
    ],
)
def test_node_dependencies(files, install):
    text = render_containerfile(manifest('[site]\nkind = "node"\n'), "b", facts=files)
    lines = lines_of(text)
    copy_deps = index_of(lines, "COPY package.json")
    if "package-lock.json" in files:
        assert "package-lock.json" in lines[copy_deps]
    run = index_of(lines, "RUN NODE_EXTRA_CA_CERTS=")
    assert install in lines[run] and "npm cache clean --force" in lines[run]
    assert copy_deps < run < lines.index("COPY . /srv/site/")
    assert 'NODE_ENV="production"' in text
    assert lines[-1] == 'CMD ["node", "server.js"]'


def test_node_start_script_when_no_server_js():
    facts = SourceFacts(frozenset({"package.json"}), package_json='{"scripts": {"start": "x"}}')
    assert start_command(manifest('[site]\nkind = "node"\n'), facts) == ["npm", "start", "--silent"]


def test_static_serves_root_with_caddy():
    m = manifest('[site]\nkind = "static"\nroot = "public"\nport = 9000\n')
    text = render_containerfile(m, BASE.format("static"), facts={"public"})
    assert json.loads(lines_of(text)[-1].removeprefix("CMD ")) == [
        "caddy", "file-server", "--root", "/srv/site/public", "--listen", ":9000", "--access-log",
    ]  # fmt: skip
    assert "RUN" not in text  # nothing to install: one layer on top of the base


def test_php_apache_and_composer():
    m = manifest('[site]\nkind = "php"\nroot = "web"\n')
    text = render_containerfile(m, "b", facts={"composer.json", "composer.lock", "web"})
    lines = lines_of(text)
    assert (
        index_of(lines, "COPY composer.json composer.lock")
        < index_of(lines, "RUN composer install")
        < lines.index("COPY . /srv/site/")
    )
    assert 'WEBSONIC_DOCROOT="/srv/site/web"' in text
    assert lines[-1] == 'CMD ["websonic-apache"]'


def test_low_port_refused_for_non_root_servers():
    with pytest.raises(InvalidInput, match="1024"):
        render_containerfile(manifest('[site]\nkind = "static"\nport = 80\n'), "b")


def test_volume_hiding_the_site_is_refused():
    with pytest.raises(InvalidInput, match="hide"):  # the manifest refuses it (sites/grammar.py)
        m = manifest('[site]\nkind = "static"\n[[volumes]]\nname = "all"\npath = "/srv/site"\n')
        render_containerfile(m, "b")


def test_containerfile_kind_uses_its_own():
    assert render_containerfile(manifest('[site]\nkind = "containerfile"\n'), "b") is None


def test_labels_are_added_and_stable():
    m = manifest('[site]\nkind = "static"\n')
    a = render_containerfile(m, "b", labels={"org.opencontainers.image.title": "acme/www"})
    b = render_containerfile(m, "b", labels={"org.opencontainers.image.title": "acme/www"})
    assert a == b
    assert '"org.opencontainers.image.title"' not in a  # keys unquoted, values quoted
    assert 'org.opencontainers.image.title="acme/www"' in a
    assert 'org.opencontainers.image.base.name="b"' in a


def test_newline_in_env_value_is_refused():
    with pytest.raises(InvalidInput, match="line break"):  # the manifest refuses it
        m = manifest('[site]\nkind = "static"\n[env]\nX = "a\\nb"\n')
        render_containerfile(m, "b")


def test_dependency_files_and_excludes():
    assert kinds.dependency_files("python") == ["requirements.txt"]
    assert kinds.dependency_files("node")[:2] == ["package.json", "package-lock.json"]
    assert kinds.dependency_files("static") == []
    with pytest.raises(InvalidInput):
        kinds.dependency_files("cobol")
    ex = kinds.excludes()
    assert {".git", "node_modules", "__pycache__", ".venv"} <= set(ex)
    assert "websonic.toml" not in ex
    assert kinds.is_excluded(".git/config")
    assert kinds.is_excluded("app/__pycache__/x.cpython-311.pyc")
    assert kinds.is_excluded("web/node_modules/left-pad/index.js")
    assert not kinds.is_excluded("websonic.toml")
    assert not kinds.is_excluded("static/git.png")


@pytest.mark.parametrize(
    "example", ["static-brochure", "python-shop", "php-guestbook", "node-status"]
)
def test_examples_render(example):
    source = EXAMPLES / example
    m, detected = load_manifest(source)
    assert not detected
    text = render_containerfile(m, BASE.format(m.kind), facts=scan_source(source))
    assert text is not None
    for name in m.secret_names:
        assert name not in text
    assert "USER 10001:10001" in text
    assert f"EXPOSE {m.site.port}" in text
