from __future__ import annotations

import json
from pathlib import Path

import pytest

from websonic.builds.oci import OciLayout, check_digest, layout_ref
from websonic.core.errors import InvalidInput, NotFound, VerificationFailed


def test_blobs_are_content_addressed_and_checked(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path)
    digest = layout.write_blob(b"hello")
    assert layout.read_blob(digest) == b"hello"
    layout.verify_blob(digest, 5)
    layout.blob_path(digest).write_bytes(b"hellO")
    with pytest.raises(VerificationFailed, match="does not match"):
        layout.read_blob(digest)
    with pytest.raises(VerificationFailed):
        layout.verify_blob(digest)
    with pytest.raises(VerificationFailed, match="size"):
        layout.verify_blob(digest, 6)


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64, ""])
def test_malformed_digests_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        OciLayout(tmp_path).blob_path(bad)
    with pytest.raises(InvalidInput):
        check_digest(bad)


def test_image_info_reads_manifest_config_and_layers(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path)
    layer = layout.write_blob(b"layer-bytes")
    config = layout.write_blob(
        json.dumps({"rootfs": {"diff_ids": ["sha256:" + "1" * 64]}}).encode()
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": config, "size": len(layout.read_blob(config))},
            "layers": [{"digest": layer, "size": 11, "mediaType": "x"}],
        }
    ).encode()
    digest = layout.write_blob(manifest)
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "manifests": [
                    {
                        "digest": digest,
                        "annotations": {"org.opencontainers.image.ref.name": "acme_s_r1"},
                    }
                ]
            }
        )
    )
    assert layout.manifest_for_ref(layout_ref("acme/s", 1)) == digest
    info = layout.image_info(digest)
    assert info.layers[0].digest == layer and info.layers[0].diff_id == "sha256:" + "1" * 64
    assert info.total_size == len(manifest) + len(layout.read_blob(config)) + 11
    with pytest.raises(NotFound):
        layout.manifest_for_ref("acme_s_r2")
