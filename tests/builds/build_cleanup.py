"""Builds leave no overlay mount behind in a test's folder, even when a test fails midway.

Imported by the build tests that run the pipeline (the autouse fixture applies there)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_build_container_left(tmp_path: Path) -> Iterator[None]:
    """A killed build can leave buildah's working container mounted in its site's store (the
    next build of the site removes it); a test folder holding a mount cannot be deleted."""
    yield
    for conf in tmp_path.glob("**/cache/build-storage/site-*/storage.conf"):
        subprocess.run(
            ["buildah", "rm", "--all"],
            env={**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)},
            capture_output=True,
            check=False,
        )
