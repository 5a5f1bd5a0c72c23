"""The site's own image store: its storage.conf and the build command (pure)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from websonic.builds.pipeline import buildah_build_command, pin_epoch
from websonic.core.errors import InvalidInput
from websonic.tools import buildah


def test_a_site_store_sees_the_shared_store_read_only() -> None:
    text = buildah.storage_conf(Path("/h/site-3"), "overlay", [Path("/var/lib/containers/storage")])
    conf = tomllib.loads(text)
    assert conf["storage"] == {
        "driver": "overlay",
        "graphroot": "/h/site-3/root",
        "runroot": "/h/site-3/run",
        "options": {"additionalimagestores": ["/var/lib/containers/storage"]},
    }
    with pytest.raises(InvalidInput, match="quotes"):
        buildah.storage_conf(Path('/h/"x'), "overlay", [])


def test_store_info_is_parsed() -> None:
    assert buildah.parse_store_info("/var/lib/containers/storage\toverlay\n") == (
        Path("/var/lib/containers/storage"),
        "overlay",
    )
    with pytest.raises(InvalidInput):
        buildah.parse_store_info("")


def test_finding3_builds_have_no_network_unless_the_manifest_asks(tmp_path: Path) -> None:
    closed = buildah_build_command(tmp_path / "Cf", tmp_path, "localhost/x:1", 1).argv
    assert "--network=none" in closed
    opened = buildah_build_command(tmp_path / "Cf", tmp_path, "localhost/x:1", 1, network=True)
    assert not any(a.startswith("--network") for a in opened.argv)


def test_layers_made_with_the_network_are_never_reused_without_it() -> None:
    text = "FROM a\nRUN x\n"
    assert pin_epoch(text, 7) == "FROM a\nENV SOURCE_DATE_EPOCH=7\nRUN x\n"
    assert pin_epoch(text, 7, network=True) == (
        "FROM a\nENV SOURCE_DATE_EPOCH=7\nLABEL io.websonic.build-network=enabled\nRUN x\n"
    )
