"""The download page: who sees what, resumable archive downloads, checksums, SBOMs, signatures,
and the audit trail. The first tests use the seeded world (whose release is a record without an
image); the ones marked `containers` use a real, signed release built by the real command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from websonic.accounts.models import Role
from websonic.accounts.service import add_user, get_customer
from websonic.audit.models import AuditEvent
from websonic.builds import exports
from websonic.platform import open_platform
from websonic.web.app import create_app

from servers import serving
from web.web_helpers import (
    ACME_OWNER,
    ADMIN,
    GLOBEX_VIEWER,
    TestClient,
    World,
    login,
    make_settings,
)

ROOT = Path(__file__).resolve().parents[2]
TEST_CACHE = Path(os.environ.get("WEBSONIC_TEST_CACHE", "/var/cache/websonic-test"))
PAGE = "/sites/acme/brochure/downloads"
RELEASE = "/sites/acme/brochure/releases/1"
ARTIFACTS = ("image.tar", "image.tar.sha256", "sbom.json", "signature")


def test_the_page_needs_a_login(client: TestClient) -> None:
    response = client.get(PAGE)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={PAGE}"
    for name in ARTIFACTS:
        assert client.get(f"{RELEASE}/{name}").status_code == 303


def test_the_page_lists_each_release_with_its_links(as_admin: TestClient) -> None:
    page = as_admin.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert "Release 1" in text and "sha256:" + "ab" * 32 in text and "test-key" in text
    for name in ARTIFACTS:
        assert f'href="{RELEASE}/{name}"' in text
    assert "podman pull --creds acme:&lt;TOKEN&gt; testserver/acme/brochure:1" in text
    # no WEBSONIC_PUBLIC_URL: no one-liner (tests/web/test_web_install.py shows it with one)
    assert "curl -fsSL" not in text and "WEBSONIC_PUBLIC_URL" in text
    # the seeded release's signature is not a real one: the page says so
    assert "signature does not verify" in text
    assert f'href="{PAGE}"' in as_admin.get("/").text


def test_customers_see_only_their_own_sites_downloads(client: TestClient) -> None:
    login(client, *ACME_OWNER)
    assert client.get(PAGE).status_code == 200
    assert 'href="/sites/globex/shop/downloads"' not in client.get("/").text
    other = client.get("/sites/globex/shop/downloads")
    missing = client.get("/sites/globex/nothing/downloads")
    assert other.status_code == missing.status_code == 404
    assert "Unknown customer &#39;globex&#39;" in other.text
    for name in ARTIFACTS:
        assert client.get(f"/sites/globex/shop/releases/1/{name}").status_code == 404
        assert client.get(f"/sites/acme/brochure/releases/9/{name}").status_code == 404


def test_another_customer_gets_not_found_for_every_artifact(client: TestClient) -> None:
    login(client, *GLOBEX_VIEWER)
    assert client.get(PAGE).status_code == 404
    for name in ARTIFACTS:
        response = client.get(f"{RELEASE}/{name}")
        assert response.status_code == 404, name
        assert "Unknown customer &#39;acme&#39;" in response.text


def test_a_release_that_fails_verification_is_not_served(
    as_admin: TestClient, world: World
) -> None:
    response = as_admin.get(f"{RELEASE}/image.tar")
    assert response.status_code == 500
    assert "failed verification" in response.text
    assert not (world.settings.home / "exports" / "acme" / "brochure" / "1.tar").exists()
    with world.platform.sessions() as session:
        assert session.query(AuditEvent).filter_by(action="release.download.archive").count() == 0


def test_the_signature_bundle_is_json(as_admin: TestClient) -> None:
    bundle = as_admin.get(f"{RELEASE}/signature").json()
    assert bundle["reference"] == "acme/brochure:1"
    assert bundle["manifest_digest"] == "sha256:" + "ab" * 32
    assert bundle["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert set(bundle) >= {"payload", "signature", "key_id", "sbom_digest"}


# A real release --------------------------------------------------------------------------


class Websonic:
    """The real `websonic` command on one state folder (as tests/conftest.py's Cli, whose
    module name is shadowed by tests/web/conftest.py here)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WEBSONIC_HOME": str(self.home),
            "WEBSONIC_ADMIN_PASSWORD": ADMIN[1],
            "WEBSONIC_BASE_CACHE_DIR": str(TEST_CACHE / "base"),
            "WEBSONIC_BASE_MAX_AGE_HOURS": str(24 * 30),
            "WEBSONIC_ENVIRONMENT": "development",
        }

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "websonic.cli.main", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert proc.returncode == 0, f"websonic {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.run(*args, "--json"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Websonic:
    """A state folder with a real release of the static example site, and acme/globex people."""
    cli = Websonic(tmp_path_factory.mktemp("downloads") / "home")
    cli.run("init")
    cli.run("base", "build", "static")
    for customer in ("acme", "globex"):
        cli.run("customer", "add", customer)
    cli.run("site", "add", "acme/brochure", "--source", str(ROOT / "examples" / "static-brochure"))
    cli.run("build", "acme/brochure")
    platform = open_platform(make_settings(cli.home))
    try:
        with platform.transaction() as session:
            acme, globex = get_customer(session, "acme"), get_customer(session, "globex")
            add_user(session, *ACME_OWNER, Role.OWNER, customer=acme, actor="test")
            add_user(session, *GLOBEX_VIEWER, Role.VIEWER, customer=globex, actor="test")
    finally:
        platform.close()
    return cli


@pytest.fixture
def real(released: Websonic) -> Iterator[tuple[TestClient, Websonic]]:
    settings = make_settings(released.home)
    platform = open_platform(settings)
    app = create_app(settings, platform=platform, start_workers=False)
    with TestClient(app, follow_redirects=False) as client:
        yield client, released
    platform.close()


def audit(cli: Websonic, action: str) -> list[AuditEvent]:
    platform = open_platform(make_settings(cli.home))
    try:
        with platform.sessions() as session:
            query = session.query(AuditEvent).filter_by(action=action).order_by(AuditEvent.id)
            return list(query)
    finally:
        platform.close()


@pytest.mark.containers
def test_archive_download_is_the_exported_archive_and_resumable(
    real: tuple[TestClient, Websonic], tmp_path: Path
) -> None:
    client, cli = real
    login(client, *ACME_OWNER)
    digest = cli.json("release", "list", "acme/brochure")["releases"][0]["digest"]
    assert "signed, signature verified" in client.get(PAGE).text

    whole = client.get(f"{RELEASE}/image.tar")
    assert whole.status_code == 200
    body = whole.content
    sha = hashlib.sha256(body).hexdigest()
    assert whole.headers["etag"] == f'"{sha}"'
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(body)
    assert 'filename="acme-brochure-1.tar"' in whole.headers["content-disposition"]
    checksum = client.get(f"{RELEASE}/image.tar.sha256").text
    assert checksum == f"{sha}  acme-brochure-1.tar\n"
    exported = cli.json("image", "export", "acme/brochure:1", "-o", str(tmp_path / "site.tar"))
    assert exported["sha256"] == sha and exported["digest"] == digest

    head = client.get(f"{RELEASE}/image.tar", headers={"Range": "bytes=0-999"})
    tail = client.get(f"{RELEASE}/image.tar", headers={"Range": "bytes=1000-"})
    assert (head.status_code, tail.status_code) == (206, 206)
    assert head.headers["content-range"] == f"bytes 0-999/{len(body)}"
    assert head.headers["content-length"] == "1000"
    assert head.content + tail.content == body
    resumed = client.get(
        f"{RELEASE}/image.tar", headers={"Range": "bytes=1000-", "If-Range": f'"{sha}"'}
    )
    assert resumed.status_code == 206
    stale = client.get(f"{RELEASE}/image.tar", headers={"Range": "bytes=1000-", "If-Range": '"x"'})
    assert stale.status_code == 200  # another version: the whole file again
    past_end = client.get(f"{RELEASE}/image.tar", headers={"Range": f"bytes={len(body)}-"})
    assert past_end.status_code == 416
    assert past_end.headers["content-range"] == f"bytes */{len(body)}"

    events = audit(cli, "release.download.archive")
    assert len(events) == 6
    assert {(e.actor, e.target, e.remote_addr) for e in events} == {
        ("user:alice", "acme/brochure:1", "testclient")
    }
    assert {e.detail["digest"] for e in events} == {digest}
    assert [e.detail["range"] for e in events][:3] == [None, "bytes=0-999", "bytes=1000-"]


class Counted:
    """A function of ``exports`` wrapped to count its calls (it still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        real = getattr(exports, name)

        def counted(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(exports, name, counted)


@pytest.mark.containers
def test_finding9_the_archive_is_made_once_and_served_without_rehashing(
    real: tuple[TestClient, Websonic], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, cli = real
    login(client, *ACME_OWNER)
    shutil.rmtree(cli.home / "exports", ignore_errors=True)
    made, verified, hashed = (
        Counted(monkeypatch, name) for name in ("_make_archive", "require_verified", "sha256_hex")
    )
    first = client.get(f"{RELEASE}/image.tar")
    again = client.get(f"{RELEASE}/image.tar")
    ranged = client.get(f"{RELEASE}/image.tar", headers={"Range": "bytes=100-199"})
    checksum = client.get(f"{RELEASE}/image.tar.sha256").text.split()[0]
    assert (first.status_code, again.status_code, ranged.status_code) == (200, 200, 206)
    assert first.content == again.content and ranged.content == first.content[100:200]
    assert checksum == hashlib.sha256(first.content).hexdigest()
    assert (made.calls, verified.calls, hashed.calls) == (1, 1, 1)  # all at creation

    stored = cli.home / "exports" / "acme" / "brochure" / "1.tar"
    before = stored.stat()
    with open(stored, "r+b") as handle:  # tampered with, size and mtime kept
        handle.seek(before.st_size // 2)
        handle.write(b"tampered")
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))
    remade = client.get(f"{RELEASE}/image.tar")
    assert remade.status_code == 200 and b"tampered" not in remade.content
    assert remade.headers["etag"] == f'"{hashlib.sha256(remade.content).hexdigest()}"'
    assert (made.calls, verified.calls) == (2, 2)  # detected, verified and made again
    assert (
        hashlib.sha256(stored.read_bytes()).hexdigest()
        == hashlib.sha256(remade.content).hexdigest()
    )


@pytest.mark.containers
def test_sbom_download_is_checked_and_audited(real: tuple[TestClient, Websonic]) -> None:
    client, cli = real
    login(client, *ADMIN)
    release = cli.json("release", "list", "acme/brochure")["releases"][0]
    response = client.get(f"{RELEASE}/sbom.json")
    assert response.status_code == 200
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == release["sbom_digest"]
    assert json.loads(response.content)["bomFormat"] == "CycloneDX"
    (event,) = audit(cli, "release.download.sbom")
    assert (event.actor, event.remote_addr) == ("user:admin", "testclient")
    assert event.detail == {"digest": release["digest"], "sbom_digest": release["sbom_digest"]}
    bundle = client.get(f"{RELEASE}/signature").json()
    assert bundle["manifest_digest"] == release["digest"]


@pytest.mark.containers
def test_another_customer_cannot_download_a_real_release(real: tuple[TestClient, Websonic]) -> None:
    client, cli = real
    login(client, *GLOBEX_VIEWER)
    for name in ARTIFACTS:
        assert client.get(f"{RELEASE}/{name}").status_code == 404
    for action in ("release.download.archive", "release.download.sbom"):
        assert all(e.actor != "user:gary" for e in audit(cli, action))
    assert not (cli.home / "exports").exists() or all(
        p.name.startswith("1.tar") for p in (cli.home / "exports" / "acme" / "brochure").iterdir()
    )


# Over TCP: `websonic serve` and curl -----------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["curl", "-fsS", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.containers
def test_curl_ranges_and_resume_over_websonic_serve(released: Websonic, tmp_path: Path) -> None:
    with (
        serving(released.env()) as url,
        httpx.Client(base_url=url, follow_redirects=False) as client,
    ):
        assert login(client, *ACME_OWNER).status_code == 303
        cookie = f"websonic_session={client.cookies['websonic_session']}"
        archive = f"{url}{RELEASE}/image.tar"
        expected = client.get(f"{RELEASE}/image.tar.sha256").text.split()[0]
        first, rest = tmp_path / "first", tmp_path / "rest"
        curl("-b", cookie, "-r", "0-999", "-o", str(first), archive)
        curl("-b", cookie, "-r", "1000-", "-o", str(rest), archive)
        assert first.stat().st_size == 1000
        joined = first.read_bytes() + rest.read_bytes()
        assert hashlib.sha256(joined).hexdigest() == expected

        partial = tmp_path / "acme-brochure-1.tar"
        partial.write_bytes(joined[:12345])  # an interrupted download
        curl("-b", cookie, "-C", "-", "-o", str(partial), archive)
        assert hashlib.sha256(partial.read_bytes()).hexdigest() == expected
        curl("-b", cookie, "-o", str(tmp_path / "acme-brochure-1.tar.sha256"), archive + ".sha256")
        check = subprocess.run(
            ["sha256sum", "-c", "acme-brochure-1.tar.sha256"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert check.stdout == "acme-brochure-1.tar: OK\n", check.stderr
    remote = {e.remote_addr for e in audit(released, "release.download.archive")}
    assert "127.0.0.1" in remote
