from __future__ import annotations

import hashlib
import json
from pathlib import Path

from websonic.builds.sbom import make_sbom


def test_sbom_lists_packages_and_files_deterministically(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "index.html").write_text("home")
    (tmp_path / "pages" / "about.html").write_text("about")
    kwargs = dict(
        repository="acme/site",
        release=1,
        epoch=315532800,
        source_dir=tmp_path,
        packages=[["zlib1g", "1:1.2"], ["caddy", "2.6"]],
        base_digest="sha256:x",
    )
    first, second = make_sbom(**kwargs), make_sbom(**kwargs)  # type: ignore[arg-type]
    assert first == second
    doc = json.loads(first)
    assert (
        doc["bomFormat"] == "CycloneDX" and doc["metadata"]["timestamp"] == "1980-01-01T00:00:00Z"
    )
    names = [c["name"] for c in doc["components"]]
    assert names == ["caddy", "zlib1g", "index.html", "pages/about.html"]
    about = doc["components"][3]["hashes"][0]["content"]
    assert about == hashlib.sha256(b"about").hexdigest()
