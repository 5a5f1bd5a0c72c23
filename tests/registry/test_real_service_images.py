"""A real release of python-shop (PostgreSQL) served by a real `websonic serve`: skopeo copies
its database service image by digest with the customer's pull token; another customer cannot."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .test_real_clients import pull_token, tool
from conftest import EXAMPLES, Cli
from servers import serving

pytestmark = pytest.mark.containers


@dataclass
class Served:
    url: str
    host: str  # 127.0.0.1:PORT
    tokens: dict[str, str]
    service: dict  # the release's Release.services entry


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cli = Cli(tmp_path_factory.mktemp("real-services") / "home")
    cli.run("init")
    cli.run("base", "build", "python", "postgresql")
    for customer in ("acme", "globex"):
        cli.run("customer", "add", customer)
    cli.run("site", "add", "acme/shop", "--source", str(EXAMPLES / "python-shop"))
    cli.run("site", "add", "globex/shop", "--source", str(EXAMPLES / "static-brochure"))
    cli.json("build", "acme/shop")
    with sqlite3.connect(cli.home / "state.db") as db:
        (services,) = db.execute("SELECT services FROM releases").fetchone()
    tokens = {name: pull_token(cli.home, name) for name in ("acme", "globex")}
    with serving(cli.env()) as url:
        yield Served(url, url.removeprefix("http://"), tokens, json.loads(services)[0])


def test_skopeo_copies_the_service_image_by_digest(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "postgresql.tar"
    digest = served.service["digest"]
    tool(
        "skopeo", "copy", "--src-tls-verify=false",
        "--src-creds", f"acme:{served.tokens['acme']}",
        f"docker://{served.host}/acme/shop@{digest}", f"oci-archive:{out}",
    )  # fmt: skip
    with tarfile.open(out) as archive:
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = json.load(archive.extractfile(f"blobs/sha256/{digest[7:]}"))  # type: ignore[arg-type]
    assert index["manifests"][0]["digest"] == digest
    assert manifest["config"]["digest"] == served.service["config_digest"]
    assert [layer["digest"] for layer in manifest["layers"]] == [
        layer["digest"] for layer in served.service["layers"]
    ]


def test_another_customer_is_refused_like_a_missing_repository(
    served: Served, tmp_path: Path
) -> None:
    digest = served.service["digest"]
    copies = {
        name: tool(
            "skopeo", "copy", "--src-tls-verify=false",
            "--src-creds", f"globex:{served.tokens['globex']}",
            f"docker://{served.host}/{name}@{digest}", f"oci-archive:{tmp_path / 'x.tar'}",
            check=False,
        )
        for name in ("acme/shop", "acme/shoq")
    }  # fmt: skip
    assert all(copy.returncode != 0 for copy in copies.values())
    assert "name unknown" in copies["acme/shop"].stderr.lower()
    assert (
        copies["acme/shop"].stderr.replace("acme/shop", "X").split("msg=")[-1]
        == copies["acme/shoq"].stderr.replace("acme/shoq", "X").split("msg=")[-1]
    )
    auth = ("globex", served.tokens["globex"])
    layer = served.service["layers"][0]["digest"]
    for path in (
        f"manifests/{digest}",
        f"blobs/{layer}",
        f"blobs/{served.service['config_digest']}",
    ):
        real = httpx.get(f"{served.url}/v2/acme/shop/{path}", auth=auth)
        fake = httpx.get(f"{served.url}/v2/acme/shoq/{path}", auth=auth)
        assert real.status_code == fake.status_code == 404
        assert real.text.replace("acme/shop", "X") == fake.text.replace("acme/shoq", "X")
        assert real.headers["content-length"] == fake.headers["content-length"]
    own = httpx.head(
        f"{served.url}/v2/acme/shop/blobs/{layer}", auth=("acme", served.tokens["acme"])
    )
    assert own.status_code == 200
