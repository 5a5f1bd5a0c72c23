"""Fixtures: a state folder with two customers and real OCI images in its image store.

The images are made here (a gzip tar layer of random bytes, a config, an OCI manifest) and
written into the state folder's OCI layout with release rows pointing at them, exactly as a
build leaves them; the real build pipeline is exercised by the `containers` tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import random
import shutil
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

import websonic.models  # noqa: F401 - every table's class, for relationships
from websonic.accounts.models import Role
from websonic.accounts.service import add_customer, add_user
from websonic.accounts.tokens import create_token, revoke_token
from websonic.builds.models import Release
from websonic.builds.oci import OciLayout
from websonic.platform import Platform, init_platform, open_platform
from websonic.settings import Settings
from websonic.sites.service import add_site, get_site

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DEVELOPER = ("dev", "developer-password-1")
ACME_OWNER = ("alice", "acme-owner-password")
GLOBEX_VIEWER = ("gary", "globex-viewer-password")


@dataclass(frozen=True)
class Image:
    manifest: str
    config: str
    layers: tuple[str, ...]
    sbom: str


@dataclass
class Seeded:
    home: Path
    images: dict[str, Image] = field(default_factory=dict)  # "acme/brochure:1" -> Image
    tokens: dict[str, str] = field(default_factory=dict)  # "acme", "globex", "expired", …


@dataclass
class World:
    settings: Settings
    platform: Platform
    images: dict[str, Image]
    tokens: dict[str, str]

    @property
    def layout(self) -> OciLayout:
        return OciLayout(self.settings.oci_dir)


def make_settings(home: Path) -> Settings:
    return Settings(home=home, environment="development", admin_password="admin-password-x")


def gzip_layer(seed: int, size: int) -> tuple[bytes, str]:
    """A reproducible gzip'd tar holding ``size`` random bytes; returns (blob, diff_id)."""
    data = random.Random(seed).randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"srv/site/file-{seed}.bin")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def write_image(layout: OciLayout, seeds: tuple[int, ...]) -> tuple[Image, list[dict]]:
    layers = [gzip_layer(seed, 300_000 + seed) for seed in seeds]
    layer_digests = [layout.write_blob(blob) for blob, _ in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
    }
    config_bytes = json.dumps(config).encode()
    config_digest = layout.write_blob(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": len(blob),
            }
            for digest, (blob, _) in zip(layer_digests, layers, strict=True)
        ],
        "annotations": {"org.opencontainers.image.title": f"test {seeds}"},
    }
    manifest_digest = layout.write_blob(json.dumps(manifest, separators=(",", ":")).encode())
    sbom = layout.write_blob(json.dumps({"spdxVersion": "SPDX-2.3", "seeds": seeds}).encode())
    rows = [
        {"digest": d, "size": len(b), "diff_id": diff}
        for d, (b, diff) in zip(layer_digests, layers, strict=True)
    ]
    return Image(manifest_digest, config_digest, tuple(layer_digests), sbom), rows


def add_release(platform: Platform, ref: str, number: int, seeds: tuple[int, ...]) -> Image:
    image, rows = write_image(OciLayout(platform.settings.oci_dir), seeds)
    with platform.transaction() as session:
        site = get_site(session, ref)
        session.add(
            Release(
                site_id=site.id,
                number=number,
                digest=image.manifest,
                config_digest=image.config,
                size=0,
                layers=rows,
                base_digest=None,
                tool_versions={},
                source_ref=site.source,
                source_revision=None,
                source_epoch=0,
                signature="c2ln",
                signed_payload="{}",
                signing_key_id="test",
                sbom_digest=image.sbom,
            )
        )
    return image


def seed_world(platform: Platform, sources: Path, seeded: Seeded) -> None:
    with platform.transaction() as session:
        acme = add_customer(session, "acme", "ACME", actor="test")
        globex = add_customer(session, "globex", "Globex", actor="test")
        add_customer(session, "initech", "Initech (no sites)", actor="test")
        add_user(session, *DEVELOPER, Role.DEVELOPER, customer=None, actor="test")
        add_user(session, *ACME_OWNER, Role.OWNER, customer=acme, actor="test")
        add_user(session, *GLOBEX_VIEWER, Role.VIEWER, customer=globex, actor="test")
        for ref in ("acme/brochure", "acme/blog", "acme/empty", "globex/shop"):
            folder = sources / ref
            folder.mkdir(parents=True)
            (folder / "websonic.toml").write_text('[site]\nkind = "static"\n')
            (folder / "index.html").write_text("<h1>hello</h1>\n")
            add_site(session, platform.runner, ref, str(folder), actor="test")
        year = dt.timedelta(days=365)
        for name, customer in (("acme", acme), ("globex", globex)):
            made = create_token(session, customer, scope="pull", expires_in=year, actor="test")
            seeded.tokens[name] = made.secret
        expired = create_token(session, acme, scope="pull", expires_in=year, actor="test")
        expired.token.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        seeded.tokens["expired"] = expired.secret
        revoked = create_token(session, acme, scope="pull", expires_in=year, actor="test")
        seeded.tokens["revoked"] = revoked.secret
        session.flush()
        revoke_token(session, revoked.token.public_id, actor="test")
    seeded.images["acme/brochure:1"] = add_release(platform, "acme/brochure", 1, (1, 2))
    seeded.images["acme/brochure:2"] = add_release(platform, "acme/brochure", 2, (1, 3))
    seeded.images["acme/blog:1"] = add_release(platform, "acme/blog", 1, (4,))
    seeded.images["globex/shop:1"] = add_release(platform, "globex/shop", 1, (5, 6))


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Made once; each test gets a copy of the state folder."""
    base = tmp_path_factory.mktemp("registry")
    settings = make_settings(base / "home")
    init_platform(settings)
    platform = open_platform(settings)
    result = Seeded(settings.home)
    try:
        seed_world(platform, base / "sources", result)
    finally:
        platform.close()
    return result


@pytest.fixture
def world(seeded: Seeded, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    settings = make_settings(home)
    platform = open_platform(settings)
    yield World(settings, platform, seeded.images, seeded.tokens)
    platform.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    from websonic.web.app import create_app

    app = create_app(world.settings, platform=world.platform, start_workers=False)
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def acme(world: World) -> dict[str, str]:
    """Basic credentials of acme's pull token."""
    return basic("acme", world.tokens["acme"])


@pytest.fixture
def globex(world: World) -> dict[str, str]:
    return basic("globex", world.tokens["globex"])


def bearer_for(client: TestClient, credentials: dict[str, str], *scopes: str) -> dict[str, str]:
    """Go through the token endpoint as podman does; the Authorization header to send."""
    params = [("service", "websonic"), *(("scope", scope) for scope in scopes)]
    response = client.get("/v2/token", params=params, headers=credentials)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def people() -> dict[str, tuple[str, str]]:
    """Portal users (username, password) of the seeded world."""
    return {"developer": DEVELOPER, "acme_owner": ACME_OWNER, "globex_viewer": GLOBEX_VIEWER}


@pytest.fixture
def basic_auth():
    """``basic_auth(user, password)`` -> the Authorization header."""
    return basic


@pytest.fixture
def bearer(client: TestClient):
    """``bearer(credentials, *scopes)`` -> a Bearer header from the token endpoint."""
    return lambda credentials, *scopes: bearer_for(client, credentials, *scopes)
