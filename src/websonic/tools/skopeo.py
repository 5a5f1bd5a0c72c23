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


def version(tool: str) -> Command:
    return Command.of(tool, "--version")


def parse_version(output: str) -> str:
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", output)
    return match.group(1) if match else output.strip()
