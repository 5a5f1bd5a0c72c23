"""The installer's packages (issue 9): a minimal server ships no package lists, so the installer
fetches them once before its first install when they are missing or older than a day; it
installs podman with runc and netavark, and rsync only for a site with volumes.

The installer's functions run on their own (``call``), with apt-get and dpkg replaced by
functions that write what they were asked to a log: what these tests are about is when the
installer calls them, not apt itself (the `hosts` tests on a minimal server run the real one).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from installer.test_script import call

# Stand-ins defined after the installer's own: apt-get logs its arguments and fails the first
# install when FAIL_FIRST_INSTALL is set; every package is missing.
FAKES = (
    'apt_get() { echo "apt-get $*" >>"$LOG"; '
    'case "$1:$FAIL_FIRST_INSTALL" in install:1) FAIL_FIRST_INSTALL=0; return 100 ;; esac; }; '
    "dpkg() { :; }; "
    'missing_packages() { for p in "$@"; do printf " %s" "$p"; done; }; '
)


def run_installer(
    folder: Path, lists: Path, command: str, **variables: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``command`` with the stand-ins; its result and the apt-get calls it made."""
    log = folder / "apt.log"
    log.touch()
    settings = " ".join(f"{k}={v}" for k, v in {"FAIL_FIRST_INSTALL": "0", **variables}.items())
    script = (
        f"{FAKES} LOG={log}; APT_LISTS={lists}; ETC={folder}/etc; DRY_RUN=0; {settings}; {command}"
    )
    proc = call("dash", folder, script)
    return proc, log.read_text().splitlines()


def lists_folder(tmp_path: Path, age_hours: float | None) -> Path:
    """A package lists folder: empty (None), or with one Packages file that old."""
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "partial").mkdir()
    if age_hours is not None:
        packages = lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
        packages.write_text("")
        stamp = time.time() - age_hours * 3600
        os.utime(packages, (stamp, stamp))
    return lists


@pytest.mark.parametrize(("age_hours", "refreshed"), [(None, True), (30, True), (2, False)])
def test_the_lists_are_fetched_once_before_installing_when_missing_or_older_than_a_day(
    age_hours: float | None, refreshed: bool, tmp_path: Path
) -> None:
    lists = lists_folder(tmp_path, age_hours)
    proc, calls = run_installer(
        tmp_path, lists, "ensure_packages podman runc; ensure_packages openssl"
    )
    assert proc.returncode == 0, proc.stderr
    updates = [c for c in calls if c == "apt-get update"]
    assert updates == (["apt-get update"] if refreshed else [])
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert installs == [
        "apt-get install --no-install-recommends podman runc",
        "apt-get install --no-install-recommends openssl",
    ]
    if refreshed:  # … before the first install
        assert calls.index("apt-get update") < calls.index(installs[0])
        assert "refreshing the package lists (apt-get update)" in proc.stderr + proc.stdout


def test_fresh_lists_that_lack_a_package_are_fetched_again_once_then_the_install_retried(
    tmp_path: Path,
) -> None:
    lists = lists_folder(tmp_path, 1)
    proc, calls = run_installer(tmp_path, lists, "ensure_packages podman", FAIL_FIRST_INSTALL="1")
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "apt-get install --no-install-recommends podman",
        "apt-get update",
        "apt-get install --no-install-recommends podman",
    ]


def test_a_package_still_missing_after_fetching_the_lists_stops_the_run(tmp_path: Path) -> None:
    lists = lists_folder(tmp_path, None)
    proc, calls = run_installer(tmp_path, lists, "ensure_packages podman", FAIL_FIRST_INSTALL="1")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "could not install: podman" in out and "Check the server's package sources" in out
    assert calls == ["apt-get update", "apt-get install --no-install-recommends podman"]


def test_a_dry_run_says_the_lists_would_be_fetched_and_calls_nothing(tmp_path: Path) -> None:
    lists = lists_folder(tmp_path, None)
    proc, calls = run_installer(tmp_path, lists, "DRY_RUN=1; ensure_packages podman")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "would: refresh the package lists (apt-get update)" in out
    assert "would: install packages: podman" in out
    assert calls == []
    assert not (tmp_path / "etc").exists()


def test_apt_get_update_failing_stops_the_run_with_what_to_check(tmp_path: Path) -> None:
    lists = lists_folder(tmp_path, None)
    proc, _ = run_installer(tmp_path, lists, "apt_get() { return 100; }; ensure_packages podman")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "apt-get update failed" in out and "/etc/apt/sources.list" in out


@pytest.mark.parametrize(("volumes", "rsync"), [("", False), ("uploads /data/uploads\n", True)])
def test_the_runtime_is_podman_with_runc_and_netavark_and_rsync_only_with_volumes(
    volumes: str, rsync: bool, tmp_path: Path
) -> None:
    proc = call("dash", tmp_path, f"P_VOLUMES='{volumes}'; runtime_packages")
    assert proc.returncode == 0, proc.stderr
    packages = proc.stdout.split()
    assert {"podman", "runc", "netavark", "aardvark-dns", "caddy"} <= set(packages)
    assert ("rsync" in packages) is rsync


@pytest.mark.parametrize("age_hours", [None, 30])
def test_the_preflight_line_says_what_is_installed_and_that_the_lists_are_fetched_first(
    age_hours: float | None, tmp_path: Path
) -> None:
    lists = lists_folder(tmp_path, age_hours)
    proc, calls = run_installer(tmp_path, lists, "P_VOLUMES=''; check_packages")
    assert proc.returncode == 0, proc.stderr
    assert "pass  packages  to install: podman runc netavark" in proc.stdout
    assert "after apt-get update (the package lists are missing or older than a day)" in (
        proc.stdout
    )
    assert calls == []


@pytest.mark.parametrize(
    ("printed", "ok"),
    [
        ("podman version 4.3.1", True),
        ("podman version 5.0.2", True),
        ("podman version 3.4.4", False),  # Ubuntu 22.04's
        ("", False),  # podman that does not run
    ],
)
def test_a_podman_older_than_4_3_stops_the_run_with_what_to_do(
    printed: str, ok: bool, tmp_path: Path
) -> None:
    proc = call("dash", tmp_path, f"podman() {{ echo '{printed}'; }}; check_podman_version")
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    if not ok:
        out = proc.stdout + proc.stderr
        assert "WebSonic needs podman 4.3 or later" in out and "backports" in out
