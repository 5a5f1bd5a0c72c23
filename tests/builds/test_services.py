"""Database service images: recipes, versions, refs and the entrypoint script (pure, fast).

The images themselves are built and run in test_service_images.py (containers).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from websonic.builds import services
from websonic.builds.base import ALL_KINDS, BASE_KINDS, RECIPE_VERSION, spec_for
from websonic.builds.oci import layout_ref
from websonic.core.errors import BuildFailed, InvalidInput
from websonic.settings import Settings

PG_PACKAGES = [["libc6", "2.36-9+deb12u14"], ["postgresql-15", "15.18-0+deb12u1"]]
MARIA_PACKAGES = [("mariadb-server", "1:10.11.18-0+deb12u1"), ("mariadb-client", "1:10.11.18")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", environment="development")


def test_every_kind_is_built_by_default() -> None:
    assert (*BASE_KINDS, "postgresql", "mariadb") == ALL_KINDS


def test_engine_version_is_the_engines_own() -> None:
    assert services.engine_version("postgresql", PG_PACKAGES) == "15"
    assert services.engine_version("mariadb", MARIA_PACKAGES) == "10.11"
    with pytest.raises(BuildFailed, match="no package mariadb-server"):
        services.engine_version("mariadb", PG_PACKAGES)
    with pytest.raises(InvalidInput):
        services.engine_version("mongodb", PG_PACKAGES)


def test_service_refs_are_keyed_by_config_and_never_a_release_ref() -> None:
    config = "sha256:" + "0123456789abcdef" * 4
    ref = services.service_ref("postgresql", config)
    assert ref == "websonic_service_postgresql_0123456789ab"
    assert re.search(r"_r\d+$", layout_ref("websonic/service", 1))
    assert not re.search(r"_r\d+$", ref)  # release refs end so; a hex digest never does
    assert services.service_ref("mariadb", config) != ref


def test_service_specs(settings: Settings) -> None:
    pg = spec_for("postgresql", settings)
    assert {"ca-certificates", "postgresql-15", "postgresql-client-15"} <= set(pg.packages)
    assert pg.image == "localhost/websonic/base-postgresql:bookworm"
    assert pg.runtime.entrypoint == ("/usr/local/bin/websonic-db",)
    assert pg.runtime.cmd == ("serve",)
    assert pg.runtime.expose == ("5432/tcp",)
    assert pg.runtime.volumes == ("/var/lib/websonic-db",)
    assert pg.runtime.stop_signal == "SIGINT"
    assert "postgres:x:999:999:" in pg.essential_hooks[0]
    assert any("ssl-cert-snakeoil.key" in hook for hook in pg.hooks)
    maria = spec_for("mariadb", settings)
    assert {"ca-certificates", "mariadb-server", "mariadb-client"} <= set(maria.packages)
    assert maria.runtime.expose == ("3306/tcp",) and maria.runtime.stop_signal == "SIGTERM"
    assert "mysql:x:999:999:" in maria.essential_hooks[0]
    assert pg.cache_key != maria.cache_key


def test_kind_bases_keep_their_cached_rootfs(settings: Settings) -> None:
    """The recipe of a kind base (no essential hooks) is keyed exactly as before services."""
    spec = spec_for("static", settings)
    assert spec.essential_hooks == ()
    material = json.dumps(
        {
            "recipe": RECIPE_VERSION,
            "suite": spec.suite,
            "mirror": spec.mirror.rstrip("/"),
            "packages": sorted(set(spec.packages)),
            "variant": spec.variant,
            "hooks": list(spec.hooks),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:20]
    assert spec.cache_key == f"static-bookworm-{digest}"


@pytest.mark.parametrize("kind", services.SERVICE_KINDS)
def test_entrypoint_script_is_valid_shell(kind: str, tmp_path: Path) -> None:
    script = tmp_path / "websonic-db"
    script.write_text(services.entrypoint_script(services.engine_of(kind)))
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run(["shellcheck", "--shell=bash", str(script)], check=True)


def test_service_digests_and_blobs() -> None:
    stored = [
        {
            "engine": "postgresql",
            "version": "15",
            "digest": "sha256:" + "a" * 64,
            "config_digest": "sha256:" + "b" * 64,
            "size": 10,
            "layers": [
                {"digest": "sha256:" + "c" * 64, "size": 5, "diff_id": "sha256:" + "d" * 64}
            ],
        }
    ]
    assert services.service_digests(stored) == {"postgresql": "sha256:" + "a" * 64}
    assert services.service_blobs(stored) == {"sha256:" + x * 64 for x in "abc"}
    assert services.service_digests([]) == {} and services.service_blobs([]) == set()
