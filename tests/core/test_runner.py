from __future__ import annotations

import io

import pytest

from websonic.core.errors import ToolFailed, ToolMissing
from websonic.core.runner import MASK, Command, Runner


def test_streams_lines_and_masks_secrets_everywhere() -> None:
    log = io.StringIO()
    seen: list[tuple[str, str]] = []
    command = Command.of(
        "sh", "-c", 'echo "token=$1"; echo "err $1" >&2', "sh", "s3cr3t", secrets=("s3cr3t",)
    )
    result = Runner(log=log).run(command, on_line=lambda s, line: seen.append((s, line)))
    assert result.stdout == f"token={MASK}\n"
    assert result.stderr == f"err {MASK}\n"
    assert ("out", f"token={MASK}") in seen and ("err", f"err {MASK}") in seen
    assert "s3cr3t" not in log.getvalue() and "s3cr3t" not in command.display()


def test_failure_raises_with_masked_stderr() -> None:
    command = Command.of("sh", "-c", "echo boom-hunter2 >&2; exit 3", secrets=("hunter2",))
    with pytest.raises(ToolFailed) as info:
        Runner().run(command)
    assert info.value.returncode == 3
    assert "boom-" + MASK in str(info.value) and "hunter2" not in str(info.value)


def test_missing_tool_says_what_to_install() -> None:
    with pytest.raises(ToolMissing) as info:
        Runner().run(Command.of("podman-that-is-not-there"))
    assert "apt-get install" in str(info.value)


def test_known_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match="apt-get install -y buildah"):
        Runner().which("buildah")


def test_argv_is_never_a_shell_string() -> None:
    result = Runner().run(Command.of("echo", "a; rm -rf /", "$(id)"))
    assert result.stdout == "a; rm -rf / $(id)\n"


def test_stdin_and_timeout() -> None:
    assert Runner().run(Command.of("cat", stdin=b"hello")).stdout == "hello"
    with pytest.raises(ToolFailed, match="killed after"):
        Runner().run(Command.of("sleep", "5"), timeout=0.2)


def test_base_env_reaches_the_tool() -> None:
    runner = Runner(base_env={"CONTAINERS_CONF": "/x/containers.conf"})
    assert (
        runner.run(Command.of("sh", "-c", "echo $CONTAINERS_CONF")).stdout == "/x/containers.conf\n"
    )
