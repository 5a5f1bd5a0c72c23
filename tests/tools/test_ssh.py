from __future__ import annotations

from pathlib import Path

import pytest

from websonic.core.runner import Runner
from websonic.tools import ssh

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKz1nmVxJrWZ9pR0d5Wv1H4cS8m7YyqE0b3uGqQ9Ue1T"
KEYSCAN = (
    "# 10.213.77.2:22 SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\n"
    "10.213.77.2 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7\n"
    "# 10.213.77.2:22 SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\n"
    "10.213.77.2 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=\n"
    f"10.213.77.2 {ED25519}\n"
)
TARGET = ssh.Target("root", "10.213.77.2", 2222, "websonic-host-1-web1", Path("/s/kh"), Path("/k"))


def test_parse_keyscan_and_prefer_ed25519() -> None:
    keys = ssh.parse_keyscan(KEYSCAN)
    assert len(keys) == 3
    assert ssh.preferred_key(keys) == ED25519
    assert ssh.preferred_key(keys[:1]) == keys[0]  # rsa only: take it
    assert ssh.preferred_key([]) is None


def test_known_hosts_line_uses_the_alias() -> None:
    line = ssh.known_hosts_line("websonic-host-1-web1", ED25519 + " comment")
    assert line == f"websonic-host-1-web1 {ED25519}\n"


def test_ssh_argv_is_strict_and_forwards_nothing() -> None:
    argv = ssh.ssh(TARGET, ["sh", "-s", "--", "/var/lib/my dir"]).argv
    joined = " ".join(argv)
    for option in (
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/s/kh",
        "HostKeyAlias=websonic-host-1-web1",
        "ForwardAgent=no",
        "IdentitiesOnly=yes",
    ):
        assert option in joined
    assert argv[-4:] == ("2222", "root@10.213.77.2", "--", "sh -s -- '/var/lib/my dir'")
    no_key = ssh.ssh(ssh.Target("u", "h", 22, "a", Path("/kh")), ["true"]).argv
    assert "IdentitiesOnly=yes" not in no_key and "-i" not in no_key


def test_keyscan_argv() -> None:
    argv = ssh.keyscan("example.com", 2222).argv
    assert argv[0] == "ssh-keyscan"
    assert argv[-5:] == ("2222", "-t", "ed25519,ecdsa,rsa", "--", "example.com")


def test_parse_fingerprint() -> None:
    out = "256 SHA256:7e0Qk3mZbKp0fC9m1x2y3z4 no comment (ED25519)\n"
    assert ssh.parse_fingerprint(out) == "SHA256:7e0Qk3mZbKp0fC9m1x2y3z4 (ED25519)"
    with pytest.raises(ValueError):
        ssh.parse_fingerprint("garbage")


def test_fingerprint_with_real_ssh_keygen(tmp_path: Path) -> None:
    runner = Runner()
    key = tmp_path / "k"
    runner.run(ssh.Command.of("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key))
    public = (tmp_path / "k.pub").read_text().strip()
    expected = runner.run(ssh.Command.of("ssh-keygen", "-lf", f"{key}.pub")).stdout.split()[1]
    assert ssh.parse_fingerprint(runner.run(ssh.fingerprint(public)).stdout).startswith(expected)
    assert ssh.looks_like_private_key(key.read_text())
    assert not ssh.looks_like_private_key(public)


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("ssh: connect to host 127.0.0.1 port 2: Connection refused", "refused"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "timeout"),
        ("root@10.1.1.1: Permission denied (publickey).", "auth"),
        ('Load key "/k": invalid format\nroot@h: Permission denied (publickey).', "bad_key"),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", "host_key_changed"),
        ("Host key verification failed.", "host_key_changed"),
        ("ssh: Could not resolve hostname nope.invalid: Name or service not known", "unresolved"),
        ("sh: 1: frobnicate: not found", None),
    ],
)
def test_classify_failure(stderr: str, kind: str | None) -> None:
    assert ssh.classify_failure(stderr) == kind
