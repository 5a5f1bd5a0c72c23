"""`websonic files sync`: the real command and real rsync, here and with disposable servers.

Tests without a marker use two folders on this machine; tests marked `hosts` register a
disposable Debian server (`websonic host add`) and sync to and from it over real SSH.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli
from testbed.hosts import TestHost

#: path -> (bytes, mode); sizes from empty to 20 MiB, names with spaces and non-ASCII letters.
FILES: dict[str, tuple[bytes, int]] = {
    "empty.txt": (b"", 0o644),
    "one byte": (b"x", 0o644),
    "photos/été 2024 ü.jpg": (os.urandom(300_000), 0o644),
    "photos/with space/a b.png": (os.urandom(1000), 0o640),
    "docs/rapport final (v2).pdf": (os.urandom(3 << 20), 0o644),
    "big/vidéo.mp4": (os.urandom(20 << 20), 0o644),
    "private/secret.txt": (b"not for everyone\n", 0o600),
    "bin/run.sh": (b"#!/bin/sh\necho hi\n", 0o755),
}
FOLDER_MODES = {"private": 0o700, "photos": 0o755}

#: Run on a server (python3 is on the test hosts): the same description as ``tree()``.
TREE_SCRIPT = """
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
for folder, dirs, files in os.walk(root):
    for name in dirs + files:
        path = os.path.join(folder, name)
        st = os.lstat(path)
        rel = os.path.relpath(path, root)
        if stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            what = "dir"
        else:
            with open(path, "rb") as f:
                what = hashlib.sha256(f.read()).hexdigest()
        out[rel] = [what, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
print(json.dumps(out))
"""


def make_tree(root: Path) -> Path:
    for rel, (data, mode) in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    for rel, mode in FOLDER_MODES.items():
        (root / rel).chmod(mode)
    (root / "latest").symlink_to("photos")
    return root


def tree(root: Path) -> dict[str, list[Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", TREE_SCRIPT, str(root)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def remote_tree(host: TestHost, path: str) -> dict[str, list[Any]]:
    return json.loads(host.ssh(f"python3 - {path}", input=TREE_SCRIPT).stdout)


def contents(description: dict[str, list[Any]]) -> dict[str, tuple[str, int]]:
    """What and mode of each entry (ownership left out)."""
    return {rel: (what, mode) for rel, (what, mode, _uid, _gid) in description.items()}


def owners(description: dict[str, list[Any]]) -> set[tuple[int, int]]:
    return {(uid, gid) for _what, _mode, uid, gid in description.values()}


def sync(cli: Cli, *args: str, check: bool = True) -> dict[str, Any]:
    proc = cli.run("files", "sync", *args, "--json", check=check)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"exit": proc.returncode}


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "uploads")


# --- on this machine ----------------------------------------------------------------------------


def test_local_sync_copies_modes_maps_owner_and_then_has_nothing_to_do(
    cli: Cli, uploads: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "site" / "data" / "uploads"  # parents made as needed
    first = sync(cli, str(uploads), str(dest))
    assert first["files_transferred"] == len(FILES)
    assert first["bytes_transferred"] == sum(len(d) for d, _m in FILES.values())
    assert first["bytes_literal"] == first["bytes_transferred"] and first["checksum"] is True
    assert {c["path"] for c in first["changes"]} >= {"photos/été 2024 ü.jpg", "latest"}
    assert contents(tree(dest)) == contents(tree(uploads))
    assert owners(tree(dest)) == {(10001, 10001)}

    second = sync(cli, str(uploads), str(dest))
    assert (second["files_transferred"], second["bytes_literal"], second["changes"]) == (0, 0, [])

    human = cli.run(
        "files", "sync", str(uploads), str(dest), "--owner-uid", "33", "--owner-gid", "34"
    )
    assert "0 files were transferred" in human.stdout
    assert owners(tree(dest)) == {(33, 34)}  # ownership follows the options


def test_only_delete_removes_and_dry_run_changes_nothing(
    cli: Cli, uploads: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    sync(cli, str(uploads), str(dest))
    (dest / "stale.jpg").write_bytes(b"left from an old upload")
    (uploads / "new.txt").write_text("new\n")
    (uploads / "docs" / "rapport final (v2).pdf").write_bytes(b"same size? no: changed")

    planned = sync(cli, str(uploads), str(dest), "--delete", "--dry-run")
    assert planned["dry_run"] and planned["files_transferred"] == 2
    assert {(c["action"], c["path"]) for c in planned["changes"]} >= {
        ("created", "new.txt"),
        ("transferred", "docs/rapport final (v2).pdf"),
        ("deleted", "stale.jpg"),
    }
    assert (dest / "stale.jpg").exists() and not (dest / "new.txt").exists()
    human = cli.run("files", "sync", str(uploads), str(dest), "--delete", "--dry-run")
    assert (
        "Dry run: nothing was changed." in human.stdout and "deleted     stale.jpg" in human.stdout
    )

    kept = sync(cli, str(uploads), str(dest))
    assert kept["files_deleted"] == 0 and (dest / "stale.jpg").exists()
    deleted = sync(cli, str(uploads), str(dest), "--delete")
    assert deleted["files_deleted"] == 1 and not (dest / "stale.jpg").exists()
    assert contents(tree(dest)) == contents(tree(uploads))


def test_checksum_finds_what_size_and_time_miss(cli: Cli, uploads: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    sync(cli, str(uploads), str(dest))
    target = dest / "private" / "secret.txt"
    stat = target.stat()
    target.write_bytes(b"NOT for everyone\n")  # same size ...
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and same time
    quick = sync(cli, str(uploads), str(dest), "--quick")
    assert quick["files_transferred"] == 0 and not quick["checksum"]
    full = sync(cli, str(uploads), str(dest))
    assert full["files_transferred"] == 1 and target.read_bytes() == b"not for everyone\n"


def test_bad_ends_are_refused_clearly(cli: Cli, uploads: Path, tmp_path: Path) -> None:
    err = cli.fails("files", "sync", str(uploads), "root@203.0.113.7:/srv/up", code=2)
    assert "WebSonic only talks to servers whose host key it pinned" in err
    assert "websonic host add" in err
    err = cli.fails("files", "sync", "web1:/srv/up", str(tmp_path / "x"), code=2)
    assert "has not registered" in err
    err = cli.fails("files", "sync", "acme/a:/x", "acme/b:/y", code=2)
    assert "one side must be this machine" in err
    err = cli.fails("files", "sync", "acme/web1:srv", str(tmp_path / "x"), code=2)
    assert "absolute path" in err
    err = cli.fails("files", "sync", str(tmp_path / "nope"), str(tmp_path / "x"), code=3)
    assert "The source folder" in err and "does not exist" in err
    err = cli.fails("files", "sync", str(uploads / "one byte"), str(tmp_path / "x"), code=2)
    assert "is not a folder" in err
    err = cli.fails("files", "sync", str(uploads), str(uploads / "one byte"), code=2)
    assert "exists and is not a folder" in err
    cli.run("customer", "add", "acme")
    err = cli.fails("files", "sync", str(uploads), "acme/web1:/srv/up", code=3)
    assert "Unknown host acme/web1" in err
    assert not (tmp_path / "x").exists()


# --- with a server ------------------------------------------------------------------------------


def add_host(cli: Cli, host: TestHost, name: str = "web1", user: str = "root") -> str:
    if not cli.json("customer", "list")["customers"]:
        cli.run("customer", "add", "acme")
    cli.run(
        "host",
        "add",
        f"acme/{name}",
        "--ssh",
        f"{user}@{host.address}",
        "--key",
        str(host.key_path),
    )
    return f"acme/{name}"


@pytest.mark.hosts
def test_to_and_from_a_server(cli: Cli, uploads: Path, tmp_path: Path, test_host: TestHost) -> None:
    ref = add_host(cli, test_host)
    remote = "/var/lib/websonic/sites/brochure/uploads dir"
    first = sync(cli, str(uploads), f"{ref}:{remote}")
    assert first["files_transferred"] == len(FILES) and first["dest"] == f"{ref}:{remote}"
    there = remote_tree(test_host, f"'{remote}'")
    assert contents(there) == contents(tree(uploads))
    assert owners(there) == {(10001, 10001)}
    again = sync(cli, str(uploads), f"{ref}:{remote}")
    assert (again["files_transferred"], again["bytes_literal"], again["changes"]) == (0, 0, [])

    test_host.ssh(f"echo stale > '{remote}/stale.txt'")
    assert sync(cli, str(uploads), f"{ref}:{remote}")["files_deleted"] == 0
    assert "stale.txt" in remote_tree(test_host, f"'{remote}'")
    assert sync(cli, str(uploads), f"{ref}:{remote}", "--delete")["files_deleted"] == 1
    assert "stale.txt" not in remote_tree(test_host, f"'{remote}'")

    back = tmp_path / "back here"
    pulled = sync(cli, f"{ref}:{remote}", str(back))
    assert pulled["files_transferred"] == len(FILES)
    assert contents(tree(back)) == contents(tree(uploads))
    assert owners(tree(back)) == {(10001, 10001)}
    assert sync(cli, f"{ref}:{remote}", str(back))["files_transferred"] == 0
    err = cli.fails("files", "sync", f"{ref}:/srv/nothing here", str(back), code=3)
    assert "does not exist on acme/web1" in err


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def _remote_size(host: TestHost, pattern: str) -> int:
    """Bytes of the files matching ``pattern`` on the host (0 if none)."""
    result = host.exec("sh", "-c", f"cat {pattern} 2>/dev/null | wc -c", check=False)
    return int(result.stdout or 0)


@pytest.mark.hosts
def test_an_interrupted_transfer_resumes(cli: Cli, tmp_path: Path, test_host: TestHost) -> None:
    ref = add_host(cli, test_host)
    source = tmp_path / "source"
    source.mkdir()
    data = os.urandom(48 << 20)
    (source / "big.bin").write_bytes(data)
    args = ["files", "sync", str(source), f"{ref}:/srv/up", "--bwlimit", "3000", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "websonic.cli.main", *args],
        env=cli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    receiving, partial = "/srv/up/.big.bin.*", "/srv/up/.websonic-partial/big.bin"
    try:
        deadline = time.monotonic() + 120
        while _remote_size(test_host, receiving) < 8 << 20:  # rsync's temporary file
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        rsync_pids = _children(proc.pid)  # the runner starts rsync directly (setpriv execs it)
        assert len(rsync_pids) == 1
        os.kill(rsync_pids[0], signal.SIGKILL)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 7, err
    assert "rsync was interrupted" in err and "run the same command again" in err.lower()
    deadline = time.monotonic() + 60  # the server's rsync keeps the part once it sees the end
    while (kept := _remote_size(test_host, partial)) < 8 << 20:
        assert time.monotonic() < deadline, test_host.ssh("ls -laR /srv/up").stdout
        time.sleep(0.2)
    assert kept < len(data)

    resumed = sync(cli, str(source), f"{ref}:/srv/up")
    assert resumed["files_transferred"] == 1
    assert resumed["bytes_matched"] >= 8 << 20  # the part received before was not sent again
    assert resumed["bytes_literal"] <= len(data) - (8 << 20)
    digest = test_host.ssh("sha256sum /srv/up/big.bin").stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()
    assert test_host.ssh("ls -A /srv/up").stdout.split() == ["big.bin"]  # partial folder gone


@pytest.mark.hosts
def test_refusals_with_a_server(cli: Cli, uploads: Path, test_host: TestHost) -> None:
    ref = add_host(cli, test_host)
    # a login user that may not write there: a clear message, exit 11
    test_host.ssh(
        "useradd -m deploy && mkdir -p ~deploy/.ssh && "
        "cp /root/.ssh/authorized_keys ~deploy/.ssh/ && chown -R deploy: ~deploy/.ssh"
    )
    deploy = add_host(cli, test_host, "web2", user="deploy")
    err = cli.fails("files", "sync", str(uploads), f"{deploy}:/root/uploads", code=11)
    assert "may not write in /root on acme/web2 (to make /root/uploads)" in err
    err = cli.fails("files", "sync", f"{deploy}:/root", str(uploads), code=11)
    assert "may not read the folder /root on acme/web2" in err
    done = cli.run("files", "sync", str(uploads), f"{deploy}:/home/deploy/uploads")
    assert "not root" in done.stderr  # its files cannot be given to 10001:10001
    # rsync missing on the server: say what to install
    test_host.ssh('mv "$(command -v rsync)" /root/rsync.off')
    err = cli.fails("files", "sync", str(uploads), f"{ref}:/srv/up", code=6)
    assert "rsync is not installed on acme/web1" in err and "apt-get install -y rsync" in err
    test_host.ssh("mv /root/rsync.off /usr/bin/rsync")
    # a changed host key: refused, exit 13
    test_host.exec("sh", "-c", "rm /etc/ssh/ssh_host_*; ssh-keygen -A; systemctl restart ssh")
    err = cli.fails("files", "sync", str(uploads), f"{ref}:/srv/up", code=13)
    assert "CHANGED" in err and "websonic host trust acme/web1" in err
    assert test_host.exec("test", "-e", "/srv/up", check=False).returncode != 0
    # the server unreachable: exit 12
    cli.run("host", "trust", ref, "--fingerprint", test_host.host_key_fingerprint())
    test_host.exec("systemctl", "stop", "ssh")
    err = cli.fails("files", "sync", f"{ref}:/srv/up", "/tmp/never-made", code=12)
    assert "refused the connection" in err
