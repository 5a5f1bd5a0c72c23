"""Each site builds in an image store of its own.

A site's build images (and the layer cache of its dependency steps) live in
``cache/build-storage/site-<id>`` under the state folder. The shared image store, where the
agency's base and service images are, is seen read-only through ``additionalimagestores``: a
build can start from a base, never write to the shared store, and never see another site's
images (see docs/decisions.md, "Builds in an image store per site").
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from websonic.core.runner import Command, Runner
from websonic.platform import Platform
from websonic.tools import buildah

ENV = "CONTAINERS_STORAGE_CONF"
_SHARED: dict[str, tuple[Path, str]] = {}  # CONTAINERS_CONF -> (graph root, driver)


def site_store(platform: Platform, site_id: int) -> Path:
    return platform.settings.cache_dir / "build-storage" / f"site-{int(site_id)}"


def site_env(platform: Platform, site_id: int) -> dict[str, str]:
    """The environment that points buildah, podman and skopeo at the site's own store."""
    root = site_store(platform, site_id)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    shared, driver = shared_store(platform.runner)
    conf = root / "storage.conf"
    text = buildah.storage_conf(root, driver, [shared])
    if not conf.is_file() or conf.read_text(encoding="utf-8") != text:
        conf.write_text(text, encoding="utf-8")
    return {ENV: str(conf)}


@contextmanager
def site_build(platform: Platform, site_id: int) -> Iterator[dict[str, str]]:
    """One build of the site at a time in its store, which it leaves without containers.

    A failed build leaves buildah's working container (an overlay mount) in the store, and so
    may a build killed with its worker. While this lock is held no other build of the site
    runs, so any container in the store is such a leftover: removed before and after."""
    env = site_env(platform, site_id)
    remove_all = Command.of("buildah", "rm", "--all").with_env(**env)
    with open(site_store(platform, site_id) / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        platform.runner.run(remove_all, check=False)
        try:
            yield env
        finally:
            platform.runner.run(remove_all, check=False)


def shared_store(runner: Runner) -> tuple[Path, str]:
    """The graph root and driver of the shared image store (asked once per process)."""
    key = str(runner.base_env.get("CONTAINERS_CONF", ""))
    if key not in _SHARED:
        _SHARED[key] = buildah.parse_store_info(runner.run(buildah.store_info()).stdout)
    return _SHARED[key]
