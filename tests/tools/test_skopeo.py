"""skopeo argv builders (pure)."""

from __future__ import annotations

from pathlib import Path

from websonic.tools import skopeo


def test_copy_layout_to_archive_picks_the_image_by_ref_name() -> None:
    cmd = skopeo.copy_layout_to_archive(
        Path("/home/oci"), "acme_brochure_r3", Path("/exports/3.tar"), "acme/brochure:3"
    )
    assert cmd.argv == (
        "skopeo",
        "copy",
        "--quiet",
        "oci:/home/oci:acme_brochure_r3",
        "oci-archive:/exports/3.tar:acme/brochure:3",
    )
