"""Real clients against a real `websonic serve`: skopeo, podman and curl pull a real release."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import websonic.models  # noqa: F401 - every table's class, for relationships
from websonic.accounts.service import get_customer
from websonic.accounts.tokens import create_token
from websonic.platform import open_platform
from websonic.settings import Settings

from conftest import EXAMPLES, Cli
from servers import serving

CONTAINERS_CONF = Path(__file__).resolve().parents[2] / "src/websonic/data/containers.conf"


@dataclass
class Served:
    url: str
    host: str  # 127.0.0.1:PORT
    tokens: dict[str, str]
    release: dict


def pull_token(home: Path, customer: str) -> str:
    """A pull token made with the service function (as `websonic token create` does)."""
    platform = open_platform(Settings(home=home))
    try:
        with platform.transaction() as session:
            made = create_token(
                session,
                get_customer(session, customer),
                scope="pull",
                expires_in=dt.timedelta(days=30),
                actor="test",
            )
            return made.secret
    finally:
        platform.close()


def tool(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"CONTAINERS_CONF": str(CONTAINERS_CONF), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One real build of acme/brochure, a second customer, and `websonic serve` over them."""
    cli = Cli(tmp_path_factory.mktemp("real") / "home")
    cli.run("init")
    cli.run("base", "build", "static")
    for customer in ("acme", "globex"):
        cli.run("customer", "add", customer)
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    cli.json("build", "acme/brochure")
    release = cli.json("release", "list", "acme/brochure")["releases"][0]
    tokens = {name: pull_token(cli.home, name) for name in ("acme", "globex")}
    with serving(cli.env()) as url:
        yield Served(url, url.removeprefix("http://"), tokens, release)


@pytest.mark.containers
def test_skopeo_copies_the_release(served: Served, tmp_path: Path) -> None:
    """skopeo (token flow) copies acme/brochure:1; the copied manifest digest is the release's."""
    out = tmp_path / "out.tar"
    tool(
        "skopeo", "copy", "--src-tls-verify=false",
        "--src-creds", f"acme:{served.tokens['acme']}",
        f"docker://{served.host}/acme/brochure:1", f"oci-archive:{out}",
    )  # fmt: skip
    with tarfile.open(out) as archive:
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["digest"] == served.release["digest"]
    inspect = tool(
        "skopeo", "inspect", "--tls-verify=false", "--creds", f"acme:{served.tokens['acme']}",
        f"docker://{served.host}/acme/brochure:latest",
    )  # fmt: skip
    assert json.loads(inspect.stdout)["Digest"] == served.release["digest"]


@pytest.mark.containers
def test_podman_pulls_into_a_fresh_store(served: Served, tmp_path: Path) -> None:
    """podman pull (a store of its own, so every blob really comes from the registry)."""
    with tempfile.TemporaryDirectory(prefix="wsr", dir="/tmp") as runroot:  # podman: < 50 chars
        store = ["--root", str(tmp_path / "root"), "--runroot", runroot]
        store += ["--storage-driver", "vfs"]
        tool(
            "podman", *store, "pull", "--tls-verify=false",
            "--creds", f"acme:{served.tokens['acme']}", f"{served.host}/acme/brochure:1",
        )  # fmt: skip
        images = tool("podman", *store, "images", "--digests", "--format", "{{.Digest}}")
    assert served.release["digest"] in images.stdout


@pytest.mark.containers
def test_another_customer_cannot_pull_or_see(served: Served, tmp_path: Path) -> None:
    """globex's token: skopeo fails, the catalog hides acme, answers match a missing repo."""
    copy = tool(
        "skopeo", "copy", "--src-tls-verify=false",
        "--src-creds", f"globex:{served.tokens['globex']}",
        f"docker://{served.host}/acme/brochure:1", f"oci-archive:{tmp_path / 'x.tar'}",
        check=False,
    )  # fmt: skip
    assert copy.returncode != 0 and "name unknown" in copy.stderr.lower()
    auth = ("globex", served.tokens["globex"])
    catalog = httpx.get(f"{served.url}/v2/_catalog", auth=auth)
    assert catalog.status_code == 200 and catalog.json() == {"repositories": []}
    for path in ("manifests/1", "tags/list", f"blobs/{served.release['digest']}"):
        real = httpx.get(f"{served.url}/v2/acme/brochure/{path}", auth=auth)
        fake = httpx.get(f"{served.url}/v2/acme/nonexist/{path}", auth=auth)
        assert real.status_code == fake.status_code == 404
        assert real.text.replace("brochure", "X") == fake.text.replace("nonexist", "X")
        anonymous = httpx.get(f"{served.url}/v2/acme/brochure/{path}")
        anonymous_fake = httpx.get(f"{served.url}/v2/acme/nonexist/{path}")
        assert anonymous.status_code == anonymous_fake.status_code == 401


@pytest.mark.containers
def test_curl_ranges_reassemble_a_layer(served: Served, tmp_path: Path) -> None:
    """`curl -r 0-99` then `curl -r 100-` of a layer, with a bearer token: the right sha256."""
    token_url = f"{served.url}/v2/token?service=websonic&scope=repository:acme/brochure:pull"
    token = httpx.get(token_url, auth=("acme", served.tokens["acme"])).json()["token"]
    digest = max(served.release["layers"], key=lambda layer: layer["size"])["digest"]
    url = f"{served.url}/v2/acme/brochure/blobs/{digest}"
    parts = []
    for index, span in enumerate(("0-99", "100-")):
        part = tmp_path / f"part{index}"
        proc = subprocess.run(
            ["curl", "-sS", "-f", "-r", span, "-H", f"Authorization: Bearer {token}",
             "-o", str(part), "-w", "%{http_code}", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.stdout == "206", proc.stderr
        parts.append(part.read_bytes())
    assert len(parts[0]) == 100
    assert "sha256:" + hashlib.sha256(parts[0] + parts[1]).hexdigest() == digest


def test_oversized_headers_are_refused_by_uvicorn(cli: Cli) -> None:
    """uvicorn (h11) refuses a request whose headers are too large: 400, and serving goes on."""
    with serving(cli.env()) as url:
        host, port = url.removeprefix("http://").split(":")
        big = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            with contextlib.suppress(ConnectionResetError):
                sock.sendall(big)
            reply = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    reply += chunk
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400 "), reply[:200]
        long_token = httpx.get(url + "/v2/", headers={"Authorization": "Bearer " + "x" * 30_000})
        assert long_token.status_code == 401
        assert httpx.get(url + "/v2/").status_code == 401  # still serving
