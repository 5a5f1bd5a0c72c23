"""skopeo and version-probe argv builders and parsers."""

from __future__ import annotations

import re
from pathlib import Path

from websonic.core.runner import Command


def copy_to_layout(image: str, layout: Path, ref_name: str) -> Command:
    """Copy a local image (containers-storage) into the OCI layout under ``ref_name``."""
    return Command.of(
        "skopeo", "copy", "--quiet", f"containers-storage:{image}", f"oci:{layout}:{ref_name}"
    )


def copy_layout_to_archive(layout: Path, ref_name: str, archive: Path, reference: str) -> Command:
    """Copy image ``ref_name`` of the OCI layout into an ``oci-archive`` tar named ``reference``.

    skopeo 1.9 does not accept ``oci:PATH@sha256:…``: the image is picked by its ref name.
    """
    return Command.of(
        "skopeo",
        "copy",
        "--quiet",
        f"oci:{layout}:{ref_name}",
        f"oci-archive:{archive}:{reference}",
    )


def version(tool: str) -> Command:
    return Command.of(tool, "--version")


def parse_version(output: str) -> str:
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", output)
    return match.group(1) if match else output.strip()
