"""rsync argv and output parsers, on output captured from rsync 3.5.0 (Debian 12's current
package, here and on the test hosts) run with the options WebSonic gives it."""

from __future__ import annotations

import pytest

from websonic.tools import rsync

#: A first sync with --delete-after and --bwlimit: progress updates separated by \r.
FIRST = (
    ".d....og... ./\n"
    ">f+++++++++ badname\n"
    "\r              0   0%    0.00kB/s    0:00:00 (xfr#1, to-chk=4/6)\n"
    "cL+++++++++ latest -> photos\n"
    ">f+++++++++ video.mp4\n"
    "\r          32768   0%    0.00kB/s    0:00:00  \r       21463040  42%   19.56MB/s    0:00:01"
    "  \r       42795008  85%   19.55MB/s    0:00:00  \r       50000000  99%   19.86MB/s    0:00:02"
    " (xfr#2, to-chk=2/6)\n"
    "cd+++++++++ photos/\n"
    ">f+++++++++ photos/été 2024 ü.jpg\n"
    "\r       50000001  99%   19.86MB/s    0:00:02 (xfr#3, to-chk=0/6)\r       50000001  99%   "
    "19.86MB/s    0:00:02 (xfr#3, to-chk=0/6)\n"
    "*deleting   stale.txt\n"
    "\n"
    "Number of files: 6 (reg: 3, dir: 2, link: 1)\n"
    "Number of created files: 5 (reg: 3, dir: 1, link: 1)\n"
    "Number of deleted files: 1 (reg: 1)\n"
    "Number of regular files transferred: 3\n"
    "Total file size: 50000007 bytes\n"
    "Total transferred file size: 50000001 bytes\n"
    "Literal data: 50000001 bytes\n"
    "Matched data: 0 bytes\n"
    "File list size: 0\n"
    "File list generation time: 0.016 seconds\n"
    "File list transfer time: 0.000 seconds\n"
    "Total bytes sent: 50012560\n"
    "Total bytes received: 81\n"
    "\n"
    "sent 50012560 bytes  received 81 bytes  20005056.40 bytes/sec\n"
    "total size is 50000007  speedup is 1.00\n"
)

#: The same sync again: nothing to do.
SECOND = (
    "\r              0   0%    0.00kB/s    0:00:00 (xfr#0, to-chk=0/6)\r              0   0%    "
    "0.00kB/s    0:00:00 (xfr#0, to-chk=0/6)\n"
    "\n"
    "Number of files: 6 (reg: 3, dir: 2, link: 1)\n"
    "Number of created files: 0\n"
    "Number of deleted files: 0\n"
    "Number of regular files transferred: 0\n"
    "Total file size: 50000007 bytes\n"
    "Total transferred file size: 0 bytes\n"
    "Literal data: 0 bytes\n"
    "Matched data: 0 bytes\n"
    "File list size: 0\n"
    "File list generation time: 0.016 seconds\n"
    "File list transfer time: 0.000 seconds\n"
    "Total bytes sent: 225\n"
    "Total bytes received: 12\n"
    "\n"
    "sent 225 bytes  received 12 bytes  474.00 bytes/sec\n"
    "total size is 50000007  speedup is 210970.49\n"
)

#: rsync 3.5.0's stats with the default digit separators (-h), as older callers saw them.
SEPARATED = (
    "Number of files: 1,205 (reg: 1,200, dir: 5)\nNumber of created files: 0\n"
    "Number of deleted files: 0\nNumber of regular files transferred: 2\n"
    "Total file size: 300,005,003 bytes\nTotal transferred file size: 300,000,000 bytes\n"
    "Literal data: 150,000,000 bytes\nMatched data: 150,000,000 bytes\n"
    "Total bytes sent: 150,078,557\nTotal bytes received: 79\n"
)

DENIED = (
    'rsync: [Receiver] mkdir "/tmp/cap/ro/dst/" failed: Permission denied (13)\n'
    "rsync error: error in file IO (code 11) at main.c(808) [Receiver=3.5.0]\n"
)
MISSING = (
    'rsync: [sender] change_dir "/tmp/cap/nope" failed: No such file or directory (2)\n'
    "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at "
    "main.c(1394) [sender=3.5.0]\n"
)


def test_sync_argv_defaults() -> None:
    command = rsync.sync("/srv/up loads", "/var/lib/site", rsync.Flags())
    argv = command.argv
    assert argv[0] == "rsync" and argv[-3:] == ("--", "/srv/up loads/", "/var/lib/site/")
    for option in (
        "--recursive",
        "--links",
        "--perms",
        "--times",
        "-s",
        "--checksum",
        "--chown=10001:10001",
        "--partial",
        "--partial-dir=.websonic-partial",
        "--itemize-changes",
        "--info=progress2,stats2",
        "--no-h",
        "--mkpath",
    ):
        assert option in argv, option
    for absent in ("--delete", "--delete-after", "--dry-run", "-e", "--owner", "--group"):
        assert absent not in argv
    assert not any(a.startswith("--bwlimit") for a in argv)
    assert command.env == {"LC_ALL": "C.UTF-8"}


def test_sync_argv_options() -> None:
    flags = rsync.Flags(checksum=False, delete=True, dry_run=True, owner=(33, 34), bwlimit_kib=512)
    argv = rsync.sync("/a/", "root@10.0.0.5:/b", flags, remote_shell="ssh -p 2222").argv
    assert "--checksum" not in argv
    assert {"--delete-after", "--dry-run", "--chown=33:34", "--bwlimit=512"} <= set(argv)
    assert argv[argv.index("-e") + 1] == "ssh -p 2222"
    assert argv[-2:] == ("/a/", "root@10.0.0.5:/b/")
    assert "--chown" not in " ".join(rsync.sync("/a", "/b", rsync.Flags(owner=None)).argv)


def test_remote_shell_quotes_what_rsync_would_split() -> None:
    shell = rsync.remote_shell(
        ["ssh", "-o", "UserKnownHostsFile=/home/me/my state/ssh/x.known_hosts", "-p", "22"]
    )
    assert shell == "ssh -o 'UserKnownHostsFile=/home/me/my state/ssh/x.known_hosts' -p 22"
    assert rsync.remote_shell(["-i", "/k/it's key"]) == "-i '/k/it''s key'"


def test_remote_path() -> None:
    assert rsync.remote_path("root", "10.213.77.5", "/srv/a b") == "root@10.213.77.5:/srv/a b"
    assert rsync.remote_path("u", "2001:db8::7", "/x") == "u@[2001:db8::7]:/x"


def test_parse_progress_takes_the_newest_update_of_a_line() -> None:
    lines = FIRST.split("\n")
    big = next(line for line in lines if "42795008" in line)
    update = rsync.parse_progress(big)
    assert update == rsync.Progress(50000000, 99, 19.86 * (1 << 20), 2, 2, 6)
    assert update.files_checked == 4
    partial = rsync.parse_progress("\r       42795008  85%   19.55MB/s    0:00:00  ")
    assert partial is not None and partial.bytes == 42795008 and partial.files is None
    assert rsync.parse_progress(
        "    1,234,567  12%  1.50GB/s  0:00:01 (xfr#5, ir-chk=10/20)"
    ) == rsync.Progress(1234567, 12, 1.5 * (1 << 30), 5, 10, 20)
    assert rsync.parse_progress(">f+++++++++ video.mp4") is None
    assert rsync.parse_progress("Number of files: 6 (reg: 3, dir: 2, link: 1)") is None


def test_parse_changes_of_a_real_run() -> None:
    changes = [c for c in map(rsync.parse_change, FIRST.split("\n")) if c is not None]
    assert [(c.action, c.path) for c in changes] == [
        ("changed", "./"),
        ("created", "badname"),
        ("created", "latest"),
        ("created", "video.mp4"),
        ("created", "photos/"),
        ("created", "photos/été 2024 ü.jpg"),
        ("deleted", "stale.txt"),
    ]
    assert rsync.parse_change(">f.st...... photos/a.jpg") == rsync.Change(
        ">f.st......", "photos/a.jpg"
    )
    assert rsync.Change(">f.st......", "photos/a.jpg").action == "transferred"
    assert rsync.Change(".f...p..... x", "x").action == "changed"
    padded = rsync.parse_change("*deleting     two leading spaces")
    assert padded == rsync.Change("*deleting", "  two leading spaces")
    assert rsync.parse_change("Created 1 directory for /srv/x") is None
    assert rsync.parse_change("") is None


def test_unescape_names() -> None:
    change = rsync.parse_change(">f+++++++++ line\\#012break\ttab.txt")
    assert change is not None and change.path == "line\nbreak\ttab.txt"
    assert rsync.unescape("caf\\#303\\#251") == "café"


def test_parse_stats() -> None:
    first = rsync.parse_stats(FIRST)
    assert first == rsync.Stats(
        files=6,
        created=5,
        deleted=1,
        transferred=3,
        total_size=50000007,
        transferred_size=50000001,
        literal=50000001,
        matched=0,
        sent=50012560,
        received=81,
    )
    second = rsync.parse_stats(SECOND)
    assert (second.transferred, second.transferred_size, second.literal) == (0, 0, 0)
    separated = rsync.parse_stats(SEPARATED)
    assert (separated.files, separated.matched) == (1205, 150_000_000)
    with pytest.raises(ValueError, match="no "):
        rsync.parse_stats("sent 29 bytes  received 12 bytes\n")


def test_classify_failures() -> None:
    assert rsync.classify_failure(DENIED) == "permission"
    assert rsync.error_lines(DENIED, "permission") == [DENIED.splitlines()[0]]
    assert rsync.classify_failure(MISSING) == "missing"
    assert rsync.classify_failure("sh: 1: rsync: not found\n") == "remote_rsync_missing"
    assert rsync.classify_failure("write failed: No space left on device (28)") == "no_space"
    assert rsync.classify_failure("rsync error: some files vanished") is None


def test_parse_version() -> None:
    assert rsync.parse_version("rsync  version 3.5.0  protocol version 32\n") == "3.5.0"
    assert rsync.parse_version("rsync  version v3.2.7  protocol version 31") == "3.2.7"
    assert rsync.parse_version("rsync  version 3.2.3  protocol version 31") == "3.2.3"
