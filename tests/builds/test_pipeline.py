"""Builds with the real tools: reproducible, layer-reusing, signed, verified, failing cleanly.

Base images come from the machine's cached Debian root filesystems (WEBSONIC_TEST_CACHE), so
only the first run on a machine pays for mmdebstrap.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builds.build_cleanup import no_build_container_left  # noqa: F401 (autouse)

from conftest import EXAMPLES, Cli

pytestmark = pytest.mark.containers


def site_from(cli: Cli, example: str, tmp_path: Path, name: str = "site") -> str:
    """Register a copy of an example (so tests may edit it) as acme/<name>."""
    source = tmp_path / f"src-{name}"
    if not source.exists():
        shutil.copytree(EXAMPLES / example, source)
    if "acme" not in {c["slug"] for c in cli.json("customer", "list")["customers"]}:
        cli.run("customer", "add", "acme")
    cli.run("site", "add", f"acme/{name}", "--source", str(source))
    return f"acme/{name}"


def oci_index(cli: Cli) -> list[dict]:
    path = cli.home / "oci" / "index.json"
    return json.loads(path.read_text())["manifests"] if path.exists() else []


def test_same_source_in_two_fresh_homes_gives_the_same_digest(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        cli = Cli(tmp_path / name)
        cli.run("init")
        cli.run("base", "build", "static")
        cli.run("customer", "add", "acme")
        cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
        digests.append(cli.json("build", "acme/brochure")["digest"])
    assert digests[0] == digests[1]
    assert digests[0].startswith("sha256:")


def test_no_change_rebuild_is_identical_and_listed(cli: Cli, tmp_path: Path) -> None:
    cli.run("base", "build", "static")
    ref = site_from(cli, "static-brochure", tmp_path)
    first, second = cli.json("build", ref), cli.json("build", ref)
    assert (first["release"], second["release"]) == (1, 2)
    assert first["digest"] == second["digest"]
    releases = cli.json("release", "list", ref)["releases"]
    assert [r["release"] for r in releases] == [1, 2]
    assert releases[0]["layers"] == releases[1]["layers"]
    assert releases[0]["tool_versions"]["buildah"]
    assert releases[0]["base_digest"].startswith("sha256:")


def test_editing_a_page_rebuilds_only_the_last_layers(cli: Cli, tmp_path: Path) -> None:
    cli.run("base", "build", "python", "postgresql")  # python-shop's release carries PostgreSQL
    ref = site_from(cli, "python-shop", tmp_path)
    cli.run("build", ref)
    page = next(
        p
        for p in (tmp_path / "src-site").rglob("*")
        if p.suffix in (".html", ".py") and "requirements" not in p.name
    )
    page.write_text(page.read_text() + "\n# edited\n")
    cli.run("build", ref)
    releases = cli.json("release", "list", ref)["releases"]
    before, after = ([layer["digest"] for layer in r["layers"]] for r in releases)
    assert len(before) == len(after), (before, after)
    assert len(before) >= 4, before  # base, dependency files, dependency install, site files
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    # base + dependency layers are byte-identical; only the site's own files changed
    assert changed, "editing a page changed no layer"
    assert min(changed) >= 3, f"dependency layers were rebuilt: {changed} of {len(after)}"
    # and buildah took them from its cache (the dependency install did not run again)
    rebuild = max((cli.home / "logs").glob("job-*.log"), key=lambda p: int(p.stem[4:]))
    assert steps_before_site_files_cached(rebuild.read_text())


def steps_before_site_files_cached(log: str) -> bool:
    """Every build step before `COPY . ` was answered by "Using cache"."""
    lines = [line for line in log.splitlines() if not line.startswith("[")]
    steps = [i for i, line in enumerate(lines) if line.startswith("STEP ")]
    for index in steps[1:]:  # STEP 1 is FROM
        if "COPY . " in lines[index]:
            return True
        if not lines[index + 1].startswith("--> Using cache"):
            raise AssertionError(f"not cached: {lines[index]}")
    return False


def test_tampered_layer_or_signature_is_detected(cli: Cli, tmp_path: Path) -> None:
    cli.run("base", "build", "static")
    ref = site_from(cli, "static-brochure", tmp_path)
    release = cli.json("build", ref)
    assert cli.json("release", "verify", f"{ref}:1")["ok"] is True

    # offline verification with OpenSSL, as documented
    files = cli.json("release", "signature", f"{ref}:1", "-o", str(tmp_path / "sig"))
    subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            files["public_key"],
            "-rawin",
            "-in",
            files["payload"],
            "-sigfile",
            files["signature"],
        ],
        check=True,
    )
    assert (
        json.loads(Path(files["payload"]).read_text())["critical"]["image"][
            "docker-manifest-digest"
        ]
        == release["digest"]
    )

    layer = cli.json("release", "list", ref)["releases"][0]["layers"][-1]["digest"]
    blob = cli.home / "oci" / "blobs" / "sha256" / layer.removeprefix("sha256:")
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    proc = cli.run("release", "verify", ref, "--json", check=False)
    assert proc.returncode == 10
    failed = [c for c in json.loads(proc.stdout)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == [f"layer {layer[:19]}"]
    blob.write_bytes(original)
    assert cli.json("release", "verify", ref)["ok"] is True

    with sqlite3.connect(cli.home / "state.db") as db:
        db.execute("UPDATE releases SET signed_payload = replace(signed_payload, ':1\"', ':2\"')")
    proc = cli.run("release", "verify", ref, "--json", check=False)
    assert proc.returncode == 10
    assert [c["name"] for c in json.loads(proc.stdout)["checks"] if not c["ok"]] == ["signature"]


def containerfile_site(tmp_path: Path, body: str) -> Path:
    source = tmp_path / "own"
    source.mkdir(exist_ok=True)
    (source / "Containerfile").write_text(body)
    (source / "websonic.toml").write_text('[site]\nkind = "containerfile"\n')
    return source


def base_image(cli: Cli) -> str:
    return next(b["digest"] for b in cli.json("base", "list")["bases"] if b["kind"] == "static")


def test_a_broken_containerfile_fails_cleanly(cli: Cli, tmp_path: Path) -> None:
    cli.run("base", "build", "static")
    source = containerfile_site(
        tmp_path, f"FROM {base_image(cli)}\nRUN echo about to fail && exit 3\n"
    )
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/own", "--source", str(source))
    index_before = oci_index(cli)
    err = cli.fails("build", "acme/own", code=9)
    assert "buildah could not build the image" in err and "websonic job log" in err
    said = " ".join(err.split())  # the message may be wrapped
    assert "RUN steps have no network" in said and "build.network = true" in said
    job = cli.json("job", "list")["jobs"][0]
    assert job["status"] == "failed"
    log = cli.run("job", "log", str(job["id"]), check=False).stdout
    assert "about to fail" in log
    assert cli.json("release", "list", "acme/own")["releases"] == []
    assert oci_index(cli) == index_before
    assert not list((cli.home / "work").iterdir())
    assert str(cli.home) not in Path("/proc/mounts").read_text()  # no container left


def test_a_killed_build_is_marked_failed_and_registers_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.run("base", "build", "static")
    source = containerfile_site(tmp_path, f"FROM {base_image(cli)}\nRUN sleep 1187\n")
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/slow", "--source", str(source))
    proc = subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", "build", "acme/slow"],
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while "STEP 3/3" not in "".join(p.read_text() for p in (cli.home / "logs").glob("job-*")):
            assert time.monotonic() < deadline, "the build never reached its RUN step"
            time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    job = cli.json("job", "list")["jobs"][0]  # opening the state reaps the dead worker's job
    assert job["status"] == "failed" and "Interrupted" in job["error"]
    assert cli.json("release", "list", "acme/slow")["releases"] == []
    deadline = time.monotonic() + 30  # buildah got SIGTERM: it stops the step and cleans up
    while subprocess.run(["pgrep", "-f", "sleep 1187"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the build's tools outlived the killed process"
        time.sleep(0.5)
    # Its working container may be left in the site's store: the next build removes it.
    (source / "Containerfile").write_text(f"FROM {base_image(cli)}\nRUN true\n")
    cli.run("build", "acme/slow")
    assert str(cli.home) not in Path("/proc/mounts").read_text()


def release_record(cli: Cli, number: int) -> dict:
    """A release's services and signed payload, as recorded in the state database."""
    with sqlite3.connect(cli.home / "state.db") as db:
        services, payload = db.execute(
            "SELECT services, signed_payload FROM releases WHERE number = ?", (number,)
        ).fetchone()
    return {"services": json.loads(services), "payload": json.loads(payload)}


def openssl_verifies(files: dict) -> None:
    subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", files["public_key"], "-rawin",
         "-in", files["payload"], "-sigfile", files["signature"]],
        check=True, capture_output=True,
    )  # fmt: skip


def test_a_site_with_a_database_carries_its_service_image(cli: Cli, tmp_path: Path) -> None:
    """python-shop (PostgreSQL): the release stores, records and signs the service image."""
    cli.run("base", "build", "python")
    ref = site_from(cli, "python-shop", tmp_path)
    err = cli.fails("build", ref, code=9)
    assert "no base image for the postgresql database" in err
    assert "websonic base build postgresql" in err
    assert cli.json("release", "list", ref)["releases"] == []

    cli.run("base", "build", "postgresql")
    base = next(b for b in cli.json("base", "list")["bases"] if b["kind"] == "postgresql")
    cli.json("build", ref)
    services = release_record(cli, 1)["services"]
    assert [(s["engine"], s["version"]) for s in services] == [("postgresql", "15")]
    service = services[0]
    assert service["config_digest"] == base["digest"]
    assert service["size"] > 50_000_000
    stored = {e["annotations"]["org.opencontainers.image.ref.name"]: e for e in oci_index(cli)}
    ref_name = f"websonic_service_postgresql_{base['digest'][7:19]}"
    assert stored[ref_name]["digest"] == service["digest"]

    # The signature covers it, offline too.
    files = cli.json("release", "signature", f"{ref}:1", "-o", str(tmp_path / "sig"))
    payload = json.loads(Path(files["payload"]).read_text())
    assert payload["optional"]["services"] == {"postgresql": service["digest"]}
    openssl_verifies(files)
    report = cli.json("release", "verify", ref)
    assert report["ok"] is True
    assert f"postgresql image layer {service['layers'][0]['digest'][:19]}" in {
        c["name"] for c in report["checks"]
    }

    # A second release carries the same image, stored once.
    cli.json("build", ref)
    assert release_record(cli, 2)["services"] == services
    assert [e for e in oci_index(cli) if "websonic_service_" in str(e["annotations"])] == [
        stored[ref_name]
    ]

    # A tampered service layer is caught, and so is a record that no longer matches the signature.
    layer = service["layers"][0]["digest"]
    blob = cli.home / "oci" / "blobs" / "sha256" / layer.removeprefix("sha256:")
    original = blob.read_bytes()
    blob.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    proc = cli.run("release", "verify", ref, "--json", check=False)
    assert proc.returncode == 10
    failed = [c["name"] for c in json.loads(proc.stdout)["checks"] if not c["ok"]]
    assert failed == [f"postgresql image layer {layer[:19]}"]
    blob.write_bytes(original)
    assert cli.json("release", "verify", ref)["ok"] is True
    with sqlite3.connect(cli.home / "state.db") as db:
        db.execute("UPDATE releases SET services = '[]' WHERE number = 2")
    proc = cli.run("release", "verify", ref, "--json", check=False)
    assert proc.returncode == 10
    assert [c["name"] for c in json.loads(proc.stdout)["checks"] if not c["ok"]] == ["signature"]
