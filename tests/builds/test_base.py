"""Base images and the example sites, built and run for real (podman, buildah, mmdebstrap).

The rootfs tarballs are cached in /var/cache/websonic-test/base (reused for a long time) so that
reruns are fast; the base images stay in local storage. Everything else a test makes (site
images, containers, volumes, databases, database users) is removed afterwards.

Databases: the PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and the MariaDB on
127.0.0.1:3306 (root, no password), each with a uniquely named database. The containers reach
the host's loopback through slirp4netns (``allow_host_loopback``) at 10.0.2.2.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from websonic.builds import kinds
from websonic.builds.base import BuiltBase, build_base, spec_for
from websonic.core.runner import Command, Runner
from websonic.settings import load_settings
from websonic.sites.manifest import load_manifest
from websonic.tools import buildah

pytestmark = pytest.mark.containers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CACHE = Path(os.environ.get("WEBSONIC_TEST_BASE_CACHE", "/var/cache/websonic-test/base"))
MAX_AGE = 30 * 24 * 3600.0  # tests reuse a month-old rootfs; production rebuilds more often
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1 as seen from a slirp4netns container
NETWORK = "slirp4netns:allow_host_loopback=true"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
EPOCH = 1700000000


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runner() -> Runner:
    for tool in ("podman", "buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    settings = load_settings()
    return Runner(base_env={"CONTAINERS_CONF": str(settings.effective_containers_conf)})


@pytest.fixture(scope="module")
def base_of(runner: Runner) -> Callable[[str], BuiltBase]:
    """Build (or reuse from the cache) the base of a kind, once per test module."""
    settings = load_settings()
    built: dict[str, BuiltBase] = {}

    def get(kind: str) -> BuiltBase:
        if kind not in built:
            built[kind] = build_base(
                spec_for(kind, settings), runner=runner, cache_dir=CACHE, max_age_seconds=MAX_AGE
            )
        return built[kind]

    return get


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stage(example: str, dest: Path) -> Path:
    """Copy an example's source as the build pipeline does (exclusions applied)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(EXAMPLES / example)
        return {n for n in names if kinds.is_excluded(str(rel / n))}

    shutil.copytree(EXAMPLES / example, dest, ignore=ignore)
    return dest


def build_site(runner: Runner, source: Path, base: BuiltBase, tag: str, *, no_cache=False) -> str:
    """Render the site's Containerfile and build it on its base; the image ID."""
    manifest, _ = load_manifest(source)
    text = kinds.render_containerfile(manifest, base.image, facts=kinds.scan_source(source))
    assert text is not None
    containerfile = source.parent / f"{source.name}.Containerfile"
    containerfile.write_text(text, encoding="utf-8")
    # Outbound TLS from this machine goes through an intercepting proxy whose CA is only in the
    # host's bundle: lend it to RUN steps (a bind mount, never committed to a layer).
    volumes = [f"{HOST_CA}:{kinds.SYSTEM_CA}:ro"] if HOST_CA.is_file() else []
    iid = source.parent / f"{source.name}.iid"
    runner.run(
        buildah.build(
            source, tag=tag, timestamp=EPOCH, containerfile=containerfile, iidfile=iid,
            volumes=volumes, no_cache=no_cache,
        )
    )  # fmt: skip
    return buildah.parse_iidfile(iid.read_text())


def inspect(runner: Runner, ref: str) -> buildah.ImageInfo:
    return buildah.parse_image_inspect(runner.run(buildah.image_inspect(ref)).stdout)


class Site:
    """A running site container, removed on exit."""

    def __init__(self, runner: Runner, image: str, env: dict[str, str], secrets=(), volumes=()):
        self.runner = runner
        self.name = f"websonic-test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        argv: list[str] = [
            "podman", "run", "-d", "--name", self.name, "--network", NETWORK,
            "-p", f"127.0.0.1:{self.port}:8080",
        ]  # fmt: skip
        for name, value in env.items():
            argv += ["-e", f"{name}={value}"]
        for volume in volumes:
            argv += ["-v", volume]
        argv.append(image)
        runner.run(Command.of(*argv, secrets=tuple(secrets)))
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def wait_status(self, path: str, status: int, timeout: float = 60) -> httpx.Response:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                response = self.http.get(path)
                if response.status_code == status:
                    return response
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"{path} never answered {status} (last: {last})\n{self.logs()}")

    def logs(self) -> str:
        result = self.runner.run(Command.of("podman", "logs", self.name), check=False)
        return (result.stdout + result.stderr)[-4000:]

    def close(self) -> None:
        self.http.close()
        self.runner.run(Command.of("podman", "rm", "-f", "-t", "2", self.name), check=False)


@pytest.fixture
def cleanup(runner: Runner) -> Iterator[list[Callable[[], object]]]:
    """Callbacks run at teardown, last first (containers before images before databases)."""
    todo: list[Callable[[], object]] = []
    yield todo
    for action in reversed(todo):
        try:
            action()
        except Exception as exc:  # teardown must go on
            print(f"cleanup failed: {exc}")


def png_bytes() -> bytes:
    """A valid 2x2 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- base images


def test_static_base_is_reproducible_from_its_cached_rootfs(runner, base_of):
    first = base_of("static")
    assert first.image == "localhost/websonic/base-static:bookworm"
    assert first.digest.startswith("sha256:") and len(first.digest) == 71
    assert first.size > 10_000_000
    names = dict(first.packages)
    assert {"caddy", "ca-certificates", "base-files", "dpkg"} <= names.keys()
    assert names["caddy"].startswith("2.")

    # Rebuilt without buildah's layer cache, from the same cached tarball: the same image.
    again = build_base(
        spec_for("static", load_settings()),
        runner=runner, cache_dir=CACHE, max_age_seconds=MAX_AGE, no_cache=True,
    )  # fmt: skip
    assert again.rootfs_cached
    assert again.rootfs_sha256 == first.rootfs_sha256
    assert again.digest == first.digest
    assert again.packages == first.packages

    info = inspect(runner, first.image)
    assert info.labels["io.websonic.base.kind"] == "static"
    assert info.labels["io.websonic.base.rootfs"] == first.rootfs_sha256
    assert "io.buildah.version" not in info.labels
    out = runner.run(
        Command.of("podman", "run", "--rm", "--network", "none", first.image,
                   "sh", "-c", "id site; caddy version; test ! -s /etc/machine-id && echo clean")
    ).stdout  # fmt: skip
    assert "uid=10001(site) gid=10001(site)" in out
    assert "clean" in out


def test_rootfs_cache_is_keyed_and_written_atomically(base_of):
    base = base_of("static")
    key = spec_for("static", load_settings()).cache_key
    assert (CACHE / f"{key}.tar").is_file()
    assert (CACHE / f"{key}.json").is_file()
    # nothing half-written left behind by this process (others may be building right now)
    assert not list(CACHE.glob(f"{key}.tmp-{os.getpid()}*"))
    assert not list(CACHE.glob(f"{key}.tmp-ctx-{os.getpid()}"))
    assert base.rootfs_sha256.startswith("sha256:")
    other = spec_for("static", load_settings().model_copy(update={"debian_mirror": "http://x/"}))
    assert other.cache_key != key


# --------------------------------------------------------------------------- example sites


def test_static_brochure(runner, base_of, tmp_path, cleanup):
    base = base_of("static")
    tag = f"localhost/websonic-test/static-brochure-{uuid.uuid4().hex[:8]}:1"
    source = stage("static-brochure", tmp_path / "src")
    image = build_site(runner, source, base, tag)
    cleanup.append(lambda: runner.run(buildah.rmi(tag), check=False))
    info = inspect(runner, tag)
    assert info.id == image
    assert info.user == "10001:10001"
    assert (
        info.layers[: len(inspect(runner, base.image).layers)] == inspect(runner, base.image).layers
    )

    site = Site(runner, tag, env={})
    cleanup.append(site.close)
    assert site.wait_status("/healthz", 200).text.strip() == "ok"
    for page, needle in [("/", "Furniture made to last"), ("/about.html", "About us"),
                         ("/contact.html", "rue des Artisans")]:  # fmt: skip
        response = site.http.get(page)
        assert response.status_code == 200 and needle in response.text
    assert site.http.get("/img/logo.svg").headers["content-type"].startswith("image/svg+xml")
    assert site.http.get("/css/style.css").status_code == 200
    assert site.http.get("/websonic.toml").status_code == 200  # the manifest ships; no secrets
    assert site.http.get("/missing.html").status_code == 404


def test_python_shop_with_postgresql(runner, base_of, tmp_path, cleanup):
    import psycopg

    if not port_open(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    base = base_of("python")
    db = f"websonic_test_shop_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')

    def drop_db() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    cleanup.append(drop_db)

    tag = f"localhost/websonic-test/python-shop-{uuid.uuid4().hex[:8]}:1"
    source = stage("python-shop", tmp_path / "src")
    image = build_site(runner, source, base, tag)
    cleanup.append(lambda: runner.run(buildah.rmi(tag), check=False))
    info = inspect(runner, tag)
    assert info.id == image
    assert not any(e.startswith("DATABASE_URL=") for e in info.env)
    assert "SHOP_NAME=Atelier Lumière" in info.env

    volume = f"websonic-test-uploads-{uuid.uuid4().hex[:8]}"
    cleanup.append(
        lambda: runner.run(Command.of("podman", "volume", "rm", "-f", volume), check=False)
    )
    url = f"postgresql://postgres@{HOST_LOOPBACK}:5432/{db}"
    site = Site(runner, tag, env={"DATABASE_URL": url}, volumes=[f"{volume}:/srv/site/uploads"])
    cleanup.append(site.close)

    assert site.wait_status("/healthz", 200).text.strip() == "ok"
    response = site.http.post("/products", data={"name": "Lampe <b>laiton</b>", "price": "89,90"})
    assert response.status_code == 303
    page = site.http.get("/")
    assert page.status_code == 200
    assert "Lampe &lt;b&gt;laiton&lt;/b&gt;" in page.text and "89.90" in page.text
    assert "<b>laiton" not in page.text
    upload = site.http.post(
        "/upload", files={"file": ("../../etc/passwd notes.txt", b"hello shop\n", "text/plain")}
    )
    assert upload.status_code == 303
    listing = site.http.get("/").text
    assert "passwd_notes.txt" in listing and "../" not in listing
    stored = runner.run(Command.of("podman", "exec", site.name, "ls", "/srv/site/uploads")).stdout
    name = next(n for n in stored.split() if n.endswith("passwd_notes.txt"))
    assert site.http.get(f"/uploads/{name}").content == b"hello shop\n"
    assert site.http.post("/products", data={"name": "", "price": "x"}).status_code == 400

    # The database goes away: the site says so.
    drop_db()
    assert "unavailable" in site.wait_status("/healthz", 503, timeout=20).text
    assert site.http.get("/").status_code == 503


def test_php_guestbook_with_mariadb(runner, base_of, tmp_path, cleanup):
    if not port_open(3306):
        pytest.skip("no MariaDB on 127.0.0.1:3306")
    base = base_of("php")
    suffix = uuid.uuid4().hex[:8]
    db, user, password = f"websonic_test_gb_{suffix}", f"gb_{suffix}", uuid.uuid4().hex

    def sql(statement: str, *, secret: str = "") -> None:
        runner.run(
            Command.of("mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", statement,
                       secrets=(secret,) if secret else ())
        )  # fmt: skip

    sql(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    cleanup.append(lambda: sql(f"DROP DATABASE IF EXISTS `{db}`"))
    sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'", secret=password)
    cleanup.append(lambda: sql(f"DROP USER IF EXISTS '{user}'@'%'"))
    sql(f"GRANT ALL ON `{db}`.* TO '{user}'@'%'")

    tag = f"localhost/websonic-test/php-guestbook-{suffix}:1"
    source = stage("php-guestbook", tmp_path / "src")
    image = build_site(runner, source, base, tag)
    cleanup.append(lambda: runner.run(buildah.rmi(tag), check=False))
    info = inspect(runner, tag)
    assert info.id == image
    assert not any(e.startswith("DB_PASSWORD") for e in info.env)
    assert "DB_NAME=guestbook" in info.env  # the manifest's plain default

    volume = f"websonic-test-uploads-{suffix}"
    cleanup.append(
        lambda: runner.run(Command.of("podman", "volume", "rm", "-f", volume), check=False)
    )
    env = {"DB_HOST": HOST_LOOPBACK, "DB_NAME": db, "DB_USER": user, "DB_PASSWORD": password}
    site = Site(runner, tag, env=env, secrets=[password],
                volumes=[f"{volume}:/srv/site/public/uploads"])  # fmt: skip
    cleanup.append(site.close)

    assert site.wait_status("/healthz", 200).text.strip() == "ok"
    assert site.http.get("/healthz.php").status_code == 200
    home = site.http.get("/")
    assert home.status_code == 200 and "No messages yet" in home.text
    posted = site.http.post(
        "/",
        data={"name": "Zoë <script>", "message": "Très bon café ☕\nÀ bientôt"},
        files={"image": ("photo.png", png_bytes(), "image/png")},
    )
    assert posted.status_code == 303, posted.text
    page = site.http.get("/").text
    assert "Zoë &lt;script&gt;" in page and "<script>" not in page
    assert "Très bon café ☕<br />" in page
    src = page.split('src="/uploads/', 1)[1].split('"', 1)[0]
    assert src.endswith(".png")
    picture = site.http.get(f"/uploads/{src}")
    assert picture.status_code == 200 and picture.content == png_bytes()
    rejected = site.http.post(
        "/", data={"name": "x", "message": "y"},
        files={"image": ("shell.php", b"<?php echo 1;", "image/png")},
    )  # fmt: skip
    assert rejected.status_code == 400
    assert site.http.get("/lib/db.php").status_code == 404  # only public/ is served
    assert password not in site.logs()

    # The database goes away: the site says so.
    sql(f"DROP DATABASE `{db}`")
    assert "unavailable" in site.wait_status("/healthz", 503, timeout=20).text


def test_editing_a_page_rebuilds_only_the_last_layers(runner, base_of, tmp_path, cleanup):
    """Dependencies are installed before the site's files are copied, and builds reproduce."""
    base = base_of("python")
    suffix = uuid.uuid4().hex[:8]
    source = stage("python-shop", tmp_path / "src")
    tag1 = f"localhost/websonic-test/layers-{suffix}:1"
    tag2 = f"localhost/websonic-test/layers-{suffix}:2"
    tag3 = f"localhost/websonic-test/layers-{suffix}:3"
    cleanup.append(lambda: runner.run(buildah.rmi(tag1, tag2, tag3), check=False))
    first = build_site(runner, source, base, tag1)

    # The same source again, without any layer cache: the very same image.
    assert build_site(runner, source, base, tag3, no_cache=True) == first

    wsgi = source / "wsgi.py"
    wsgi.write_text(wsgi.read_text().replace("No products yet.", "Nothing for sale yet."))
    second = build_site(runner, source, base, tag2)
    assert second != first
    layers1, layers2 = inspect(runner, tag1).layers, inspect(runner, tag2).layers
    base_layers = len(inspect(runner, base.image).layers)
    # base + venv + requirements.txt + pip install are shared; the site's files and above differ
    shared = base_layers + 3
    assert layers1[:shared] == layers2[:shared]
    assert layers1[shared] != layers2[shared]


def test_node_status(runner, base_of, tmp_path, cleanup):
    base = base_of("node")
    tag = f"localhost/websonic-test/node-status-{uuid.uuid4().hex[:8]}:1"
    source = stage("node-status", tmp_path / "src")
    image = build_site(runner, source, base, tag)
    cleanup.append(lambda: runner.run(buildah.rmi(tag), check=False))
    info = inspect(runner, tag)
    assert info.id == image and info.user == "10001:10001"
    site = Site(runner, tag, env={"SITE_TITLE": "Status <Acme>"})
    cleanup.append(site.close)
    assert site.wait_status("/healthz", 200).text.strip() == "ok"
    page = site.http.get("/")
    assert page.status_code == 200
    assert "Status &lt;Acme&gt;" in page.text and "Up for" in page.text
