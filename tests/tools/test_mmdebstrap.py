"""mmdebstrap argv builders and dpkg parsers (pure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from websonic.tools import mmdebstrap as mm

STATUS = """\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u11
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.
 .
 More lines.

Package: caddy
Status: install ok installed
Architecture: amd64
Version: 2.6.2-5
Conffiles:
 /etc/caddy/Caddyfile 0123456789abcdef

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u14

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u14
"""


def test_parse_dpkg_status_lists_installed_packages_only():
    pairs = mm.parse_dpkg_status(STATUS)
    assert ("base-files", "12.4+deb12u11") in pairs
    assert ("caddy", "2.6.2-5") in pairs
    assert all(name != "removed-one" for name, _ in pairs)
    assert ("libc6:amd64", "2.36-9+deb12u14") in pairs
    assert ("libc6:i386", "2.36-9+deb12u14") in pairs
    assert pairs == sorted(pairs)


def test_parse_dpkg_query():
    out = "bash\t5.2.15-2+b7\ncaddy\t2.6.2-5\n\nbash\t5.2.15-2+b7\n"
    assert mm.parse_dpkg_query(out) == [("bash", "5.2.15-2+b7"), ("caddy", "2.6.2-5")]


def test_dpkg_query_argv_keeps_dpkg_escapes():
    argv = mm.dpkg_query_argv()
    assert argv[:3] == ["dpkg-query", "-W", "-f"]
    assert argv[3] == "${Package}\\t${Version}\\n"


def test_mmdebstrap_command():
    cmd = mm.mmdebstrap(
        suite="bookworm",
        mirror="http://deb.debian.org/debian",
        packages=["ca-certificates", "caddy"],
        output=Path("/cache/x.tmp-1.tar"),
        epoch=1700000000,
        variant="essential",
        customize_hooks=["echo hi"],
    )
    assert cmd.argv[0] == "mmdebstrap"
    assert "--variant=essential" in cmd.argv
    assert "--include=ca-certificates,caddy" in cmd.argv
    assert "--customize-hook=echo hi" in cmd.argv
    assert cmd.argv[-3:] == ("bookworm", "/cache/x.tmp-1.tar", "http://deb.debian.org/debian")
    assert cmd.env["SOURCE_DATE_EPOCH"] == "1700000000"


def test_mmdebstrap_refuses_other_formats():
    with pytest.raises(ValueError):
        mm.mmdebstrap(suite="s", mirror="m", packages=[], output=Path("x.tar.gz"), epoch=0)


def _run_hook(hook: str, root: Path) -> None:
    subprocess.run(["sh", "-c", hook, "exec", str(root)], check=True)


def test_site_user_hook_is_idempotent(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    (tmp_path / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    hook = mm.site_user_hook()
    _run_hook(hook, tmp_path)
    _run_hook(hook, tmp_path)
    passwd = (tmp_path / "etc/passwd").read_text().splitlines()
    assert passwd.count("site:x:10001:10001:site:/srv/site:/usr/sbin/nologin") == 1
    assert (tmp_path / "etc/group").read_text().splitlines().count("site:x:10001:") == 1
    assert "site:*:0:0:99999:7:::" in (tmp_path / "etc/shadow").read_text()
    assert (tmp_path / "srv/site").is_dir()


def test_write_file_hook_writes_exact_content(tmp_path):
    content = 'Listen ${WEBSONIC_PORT}\nit\'s "quoted" $HOME\n'
    _run_hook(mm.write_file_hook("/etc/x/y.conf", content, 0o755), tmp_path)
    target = tmp_path / "etc/x/y.conf"
    assert target.read_text() == content
    assert target.stat().st_mode & 0o777 == 0o755


def test_cleanup_hook_removes_non_reproducible_files(tmp_path):
    for rel in (
        "var/cache/ldconfig/aux-cache",
        "var/lib/dpkg/status-old",
        "etc/passwd-",
        "var/log/apt/history.log",
        "tmp/junk",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef\n")
    (tmp_path / "var/lib/dpkg/status").write_text("keep")
    (tmp_path / "var/log/caddy").mkdir(parents=True)
    _run_hook(mm.cleanup_hook(), tmp_path)
    assert not (tmp_path / "var/cache/ldconfig/aux-cache").exists()
    assert not (tmp_path / "var/lib/dpkg/status-old").exists()
    assert not (tmp_path / "etc/passwd-").exists()
    assert not (tmp_path / "var/log/apt/history.log").exists()
    assert not (tmp_path / "tmp/junk").exists()
    assert (tmp_path / "etc/machine-id").read_text() == ""
    assert (tmp_path / "var/lib/dpkg/status").read_text() == "keep"
    assert (tmp_path / "var/log/caddy").is_dir()  # package folders stay


def test_essential_hooks_come_before_customize_hooks():
    cmd = mm.mmdebstrap(
        suite="bookworm",
        mirror="http://deb.debian.org/debian",
        packages=["postgresql-15"],
        output=Path("/cache/pg.tar"),
        epoch=0,
        essential_hooks=["echo early"],
        customize_hooks=["echo late"],
    )
    argv = list(cmd.argv)
    assert argv.index("--essential-hook=echo early") < argv.index("--customize-hook=echo late")


def test_account_hook_adds_a_fixed_id_user_once(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    hook = mm.account_hook(
        "postgres", 999, home="/var/lib/postgresql", login_shell="/bin/bash", gecos="PostgreSQL"
    )
    _run_hook(hook, tmp_path)
    _run_hook(hook, tmp_path)
    passwd = (tmp_path / "etc/passwd").read_text().splitlines()
    assert passwd.count("postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/bash") == 1
    assert (tmp_path / "etc/group").read_text().splitlines().count("postgres:x:999:") == 1
    assert not (tmp_path / "etc/shadow").exists()  # made later by the passwd package


def test_site_user_hook_is_the_account_hook_and_the_site_folder():
    hook = mm.site_user_hook()
    account = mm.account_hook("site", 10001, home="/srv/site", login_shell="/usr/sbin/nologin")
    assert hook == account + '; mkdir -p "$1"/srv/site && chmod 0755 "$1"/srv/site'
