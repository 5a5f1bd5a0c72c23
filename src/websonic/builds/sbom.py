"""Software bill of materials of a release (CycloneDX 1.5 JSON).

Lists the Debian packages of the base image and every application file with its SHA-256.
The document is deterministic (sorted, no timestamps beyond the source epoch) so that the same
source gives the same SBOM digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any


def file_components(root: Path) -> list[dict[str, Any]]:
    components = []
    for path in sorted(_files(root)):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        components.append(
            {
                "type": "file",
                "name": path.relative_to(root).as_posix(),
                "hashes": [{"alg": "SHA-256", "content": digest}],
            }
        )
    return components


def _files(root: Path) -> list[Path]:
    found = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def package_components(packages: list[list[str]] | list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "library",
            "name": name,
            "version": version,
            "purl": f"pkg:deb/debian/{name}@{version}",
        }
        for name, version in sorted((p[0], p[1]) for p in packages)
    ]


def make_sbom(
    *,
    repository: str,
    release: int,
    epoch: int,
    source_dir: Path,
    packages: list[Any],
    base_digest: str | None,
    network: bool = False,
) -> bytes:
    """``network``: whether the build's RUN steps could reach the network (``[build] network``)."""
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "component": {"type": "container", "name": repository, "version": str(release)},
            "properties": [
                {"name": "websonic:base-digest", "value": base_digest or ""},
                {"name": "websonic:build-network", "value": "enabled" if network else "none"},
            ],
        },
        "components": package_components(packages) + file_components(source_dir),
    }
    return json.dumps(document, sort_keys=True, indent=1).encode("utf-8")
