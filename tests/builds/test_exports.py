"""`websonic image export`: a real release exported as an oci-archive and checked with the real
tools a customer would use (skopeo, sha256sum, openssl, podman)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from websonic.builds.exports import archive_manifest_digest
from websonic.core.errors import VerificationFailed

from conftest import EXAMPLES, Cli

CONTAINERS_CONF = str(Path(__file__).parents[2] / "src" / "websonic" / "data" / "containers.conf")


def tool(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A state folder with one real release of the static example site (built once)."""
    cli = Cli(tmp_path_factory.mktemp("exports") / "home")
    cli.run("init")
    cli.run("base", "build", "static")
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    cli.run("build", "acme/brochure")
    return cli


@pytest.fixture
def copy_of(released: Cli, tmp_path: Path) -> Cli:
    """A copy of the released state folder, for tests that damage it."""
    shutil.copytree(released.home, tmp_path / "home", symlinks=True)
    return Cli(tmp_path / "home")


def release_digest(cli: Cli) -> str:
    digest: str = cli.json("release", "list", "acme/brochure")["releases"][-1]["digest"]
    return digest


@pytest.mark.containers
def test_export_is_a_signed_oci_archive_of_the_release(released: Cli, tmp_path: Path) -> None:
    out = released.json("image", "export", "acme/brochure:1", "-o", str(tmp_path / "site.tar"))
    digest = release_digest(released)
    archive = tmp_path / "site.tar"
    assert (out["reference"], out["digest"]) == ("acme/brochure:1", digest)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "site.tar",
        "site.tar.payload.json",
        "site.tar.pub.pem",
        "site.tar.sha256",
        "site.tar.sig",
        "site.tar.sig.json",
    ]
    manifest = tool("skopeo", "inspect", "--raw", f"oci-archive:{archive}").stdout.encode()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    assert tool("sha256sum", "-c", "site.tar.sha256", cwd=tmp_path).stdout == "site.tar: OK\n"
    assert out["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    verified = tool(
        "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "site.tar.pub.pem", "-rawin",
        "-in", "site.tar.payload.json", "-sigfile", "site.tar.sig", cwd=tmp_path,
    )  # fmt: skip
    assert "Signature Verified Successfully" in verified.stdout
    claims = json.loads((tmp_path / "site.tar.payload.json").read_bytes())["critical"]
    assert claims["image"]["docker-manifest-digest"] == digest
    assert claims["identity"]["docker-reference"] == "acme/brochure:1"
    bundle = json.loads((tmp_path / "site.tar.sig.json").read_text())
    assert bundle["payload"].encode() == (tmp_path / "site.tar.payload.json").read_bytes()
    assert bundle["public_key"] == (tmp_path / "site.tar.pub.pem").read_text()
    assert (
        bundle["key_id"]
        == released.json("release", "list", "acme/brochure")["releases"][0]["signing_key"]
    )


@pytest.mark.containers
def test_every_export_gives_the_same_bytes_from_one_cached_archive(
    released: Cli, tmp_path: Path
) -> None:
    first = released.json("image", "export", "acme/brochure", "-o", str(tmp_path / "a.tar"))
    second = released.json("image", "export", "acme/brochure:1", "-o", str(tmp_path / "b.tar"))
    assert first["sha256"] == second["sha256"]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    cached = released.home / "exports" / "acme" / "brochure" / "1.tar"
    record = json.loads(cached.with_name("1.tar.json").read_text())
    assert record["sha256"] == first["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert not list(cached.parent.glob(".*.tmp")), "a temporary file was left behind"
    assert "b.tar: OK" in tool("sha256sum", "-c", "b.tar.sha256", cwd=tmp_path).stdout


@pytest.mark.containers
def test_podman_loads_the_archive_with_its_digest(released: Cli, tmp_path: Path) -> None:
    released.run("image", "export", "acme/brochure", "-o", str(tmp_path / "site.tar"))
    run_root = Path(tempfile.mkdtemp(prefix="ws-run-"))  # podman wants a short path
    storage = ["--root", str(tmp_path / "storage"), "--runroot", str(run_root)]
    try:
        loaded = tool("podman", *storage, "load", "-i", str(tmp_path / "site.tar"))
        assert "localhost/acme/brochure:1" in loaded.stdout
        images = tool("podman", *storage, "images", "--digests", "--format", "{{.Digest}}")
        assert images.stdout.split() == [release_digest(released)]
    finally:
        subprocess.run(["podman", *storage, "system", "reset", "--force"], capture_output=True)
        shutil.rmtree(run_root, ignore_errors=True)


@pytest.mark.containers
def test_a_damaged_cached_archive_is_made_again(copy_of: Cli, tmp_path: Path) -> None:
    copy_of.run("image", "export", "acme/brochure", "-o", str(tmp_path / "first.tar"))
    cached = copy_of.home / "exports" / "acme" / "brochure" / "1.tar"
    with open(cached, "r+b") as handle:
        handle.seek(cached.stat().st_size // 2)
        handle.write(b"tampered")
    copy_of.run("image", "export", "acme/brochure", "-o", str(tmp_path / "x.tar"))
    assert b"tampered" not in (tmp_path / "x.tar").read_bytes()
    assert "x.tar: OK" in tool("sha256sum", "-c", "x.tar.sha256", cwd=tmp_path).stdout
    record = json.loads(cached.with_name("1.tar.json").read_text())
    assert record["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()


@pytest.mark.containers
def test_a_release_that_fails_verification_is_not_exported(copy_of: Cli, tmp_path: Path) -> None:
    shutil.rmtree(copy_of.home / "exports", ignore_errors=True)
    layer = copy_of.json("release", "list", "acme/brochure")["releases"][0]["layers"][-1]
    blob = copy_of.home / "oci" / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")
    blob.chmod(0o644)
    with open(blob, "r+b") as handle:
        handle.write(b"\0" * 16)
    err = copy_of.fails("image", "export", "acme/brochure", "-o", str(tmp_path / "x.tar"), code=10)
    assert "failed verification" in err and "websonic release verify acme/brochure:1" in err
    assert not (tmp_path / "x.tar").exists()
    assert not (copy_of.home / "exports" / "acme" / "brochure" / "1.tar").exists()


def test_export_bad_input(cli: Cli, tmp_path: Path) -> None:
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    out = str(tmp_path / "x.tar")
    assert "Unknown site 'acme/none'" in cli.fails(
        "image", "export", "acme/none", "-o", out, code=3
    )
    assert "acme/brochure has no" in cli.fails(
        "image", "export", "acme/brochure", "-o", out, code=3
    )
    assert "has no release 9" in cli.fails("image", "export", "acme/brochure:9", "-o", out, code=3)
    assert "Invalid release" in cli.fails("image", "export", "acme/brochure:0", "-o", out, code=2)
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.containers
def test_export_to_a_folder_or_a_missing_folder_is_refused(released: Cli, tmp_path: Path) -> None:
    err = released.fails("image", "export", "acme/brochure", "-o", str(tmp_path), code=2)
    assert "is a folder" in err
    missing = tmp_path / "missing" / "x.tar"
    assert "does not exist" in released.fails(
        "image", "export", "acme/brochure", "-o", str(missing), code=2
    )


def oci_archive(index: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = json.dumps(index).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_archive_manifest_digest_reads_the_index(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    digest = "sha256:" + "ab" * 32
    path.write_bytes(oci_archive({"manifests": [{"digest": digest}]}))
    assert archive_manifest_digest(path) == digest
    path.write_bytes(oci_archive({"manifests": []}))
    with pytest.raises(VerificationFailed, match="holds 0 images"):
        archive_manifest_digest(path)
