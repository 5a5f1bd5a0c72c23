"""Finding 3: no customer's build reaches another customer's images, or the network unasked."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from builds.build_cleanup import no_build_container_left  # noqa: F401 (autouse)

from conftest import Cli

pytestmark = pytest.mark.containers

ALICE_IMAGE = "localhost/websonic/build/alice/site"


def containerfile_site(folder: Path, body: str, manifest: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Containerfile").write_text(body)
    (folder / "websonic.toml").write_text(f'[site]\nkind = "containerfile"\n{manifest}')
    return folder


def static_base(cli: Cli) -> str:
    return next(b["digest"] for b in cli.json("base", "list")["bases"] if b["kind"] == "static")


def oci_refs(cli: Cli) -> set[str]:
    path = cli.home / "oci" / "index.json"
    manifests = json.loads(path.read_text())["manifests"] if path.exists() else []
    return {m["annotations"]["org.opencontainers.image.ref.name"] for m in manifests}


def sbom_of(cli: Cli, ref: str) -> dict:
    with sqlite3.connect(cli.home / "state.db") as db:
        (digest,) = db.execute(
            "SELECT r.sbom_digest FROM releases r JOIN sites s ON s.id = r.site_id "
            "JOIN customers c ON c.id = s.customer_id "
            "WHERE c.slug || '/' || s.slug = ? ORDER BY r.number DESC",
            (ref,),
        ).fetchone()
    return json.loads((cli.home / "oci" / "blobs" / "sha256" / digest[7:]).read_bytes())


def sbom_network(cli: Cli, ref: str) -> str:
    properties = sbom_of(cli, ref)["metadata"]["properties"]
    return next(p["value"] for p in properties if p["name"] == "websonic:build-network")


@pytest.fixture
def alice_built(cli: Cli, tmp_path: Path) -> str:
    """alice/site built (its image is kept as the site's layer cache); the static base."""
    cli.run("base", "build", "static")
    base = static_base(cli)
    source = containerfile_site(
        tmp_path / "alice", f"FROM {base}\nRUN echo alice-private > /srv/secret.txt\n"
    )
    for customer in ("alice", "bob"):
        cli.run("customer", "add", customer)
    cli.run("site", "add", "alice/site", "--source", str(source))
    cli.run("build", "alice/site")
    return base


@pytest.mark.parametrize(
    "body",
    [
        f"FROM {ALICE_IMAGE}:cache\n",
        "FROM {base}\nCOPY --from=" + ALICE_IMAGE + ":cache /srv/secret.txt /stolen.txt\n",
    ],
)
def test_finding3_a_build_cannot_use_another_customers_image(
    cli: Cli, tmp_path: Path, alice_built: str, body: str
) -> None:
    source = containerfile_site(tmp_path / "bob", body.format(base=alice_built))
    cli.run("site", "add", "bob/site", "--source", str(source))
    refs_before = oci_refs(cli)

    err = cli.fails("build", "bob/site", code=9)
    assert f"{ALICE_IMAGE}:cache is not allowed" in err
    assert "WebSonic base image by digest" in err and "localhost/websonic/build/bob/site" in err
    assert cli.json("release", "list", "bob/site")["releases"] == []  # nothing signed
    assert oci_refs(cli) == refs_before
    assert cli.json("job", "list")["jobs"][0]["status"] == "failed"


def test_finding3_builds_keep_their_images_in_a_store_of_their_own(
    cli: Cli, tmp_path: Path, alice_built: str
) -> None:
    """Even past the Containerfile check, bob's build could not name alice's image."""
    shared = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert ALICE_IMAGE not in shared.split()  # nothing of alice in the shared store

    source = containerfile_site(tmp_path / "bob", f"FROM {alice_built}\nRUN true\n")
    cli.run("site", "add", "bob/site", "--source", str(source))
    cli.run("build", "bob/site")  # a base by digest: fine, read from the shared store
    stores = cli.home / "cache" / "build-storage"
    alice_store, bob_store = (stores / f"site-{n}" / "storage.conf" for n in (1, 2))
    bob_env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(bob_store)}

    def images(store: Path) -> str:
        env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(store)}
        return subprocess.run(
            ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    assert f"{ALICE_IMAGE}:cache" in images(alice_store)
    assert f"{ALICE_IMAGE}:cache" not in images(bob_store)
    assert "localhost/websonic/build/bob/site:cache" in images(bob_store)
    sneaky = tmp_path / "sneaky"
    sneaky.mkdir()
    (sneaky / "Containerfile").write_text(f"FROM {ALICE_IMAGE}:cache\n")
    proc = subprocess.run(
        ["buildah", "build", "--pull=never", "-t", "localhost/sneaky:1", str(sneaky)],
        env=bob_env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0 and "image not known" in proc.stderr, proc.stderr


NO_INTERFACE_BUT_LO = 'RUN test "$(ls /sys/class/net)" = lo || (ls /sys/class/net; exit 7)\n'


def test_finding3_run_steps_have_no_network_unless_the_manifest_asks(
    cli: Cli, tmp_path: Path, alice_built: str
) -> None:
    source = containerfile_site(tmp_path / "bob", f"FROM {alice_built}\n{NO_INTERFACE_BUT_LO}")
    cli.run("site", "add", "bob/site", "--source", str(source))
    cli.run("build", "bob/site")  # today's builds have the network: this step exits 7
    assert sbom_network(cli, "bob/site") == "none"

    (source / "websonic.toml").write_text(
        '[site]\nkind = "containerfile"\n[build]\nnetwork = true\n'
    )
    err = cli.fails("build", "bob/site", code=9)  # the same step, now with a network interface
    assert "buildah could not build the image" in err
    assert "RUN steps have no network" not in err  # it is set
    assert str(cli.home) not in Path("/proc/mounts").read_text()  # no working container left
    (source / "Containerfile").write_text(f"FROM {alice_built}\nRUN ls /sys/class/net\n")
    cli.run("build", "bob/site")
    assert sbom_network(cli, "bob/site") == "enabled"
