"""Running external commands with bounded time and readable errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_TIMEOUT = 120.0


class CommandError(RuntimeError):
    """An external command failed, timed out or could not be started."""

    def __init__(self, message: str, result: subprocess.CompletedProcess[str] | None = None):
        super().__init__(message)
        self.result = result


def tail(text: str | None, lines: int = 40) -> str:
    """Return the last ``lines`` lines of ``text`` (empty string for ``None``)."""
    if not text:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def file_tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a text file, or a note when it cannot be read."""
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


def describe_failure(argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    """Build an error message showing the command, exit code and output tails."""
    return (
        f"command failed with exit code {result.returncode}: {list(argv)}\n"
        f"--- stdout (tail) ---\n{tail(result.stdout)}\n"
        f"--- stderr (tail) ---\n{tail(result.stderr)}"
    )


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), capture text output, and raise ``CommandError`` on trouble.

    ``env`` entries are added to the current environment.
    """
    full_env = {**os.environ, **env} if env else None
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=full_env,
            cwd=cwd,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            f"command timed out after {timeout:.0f}s: {list(argv)}\n"
            f"--- stderr (tail) ---\n{tail(_as_text(exc.stderr))}"
        ) from exc
    except OSError as exc:
        raise CommandError(f"cannot start {list(argv)}: {exc}") from exc
    if check and result.returncode != 0:
        raise CommandError(describe_failure(argv, result), result)
    return result


def _as_text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def pid_alive(pid: int) -> bool:
    """Tell whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
