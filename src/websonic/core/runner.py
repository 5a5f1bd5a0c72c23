"""The one way WebSonic runs external tools.

A :class:`Command` is a value: an argv list (never a shell string), the secrets that must never
appear in logs, and the environment. :class:`Runner` runs it, streams its output line by line to
an optional callback (for progress and build logs), masks secrets everywhere, and raises
:class:`ToolFailed` with the tool's stderr, or :class:`ToolMissing` saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from websonic.core.errors import ToolFailed, ToolMissing

#: Debian package that provides each tool WebSonic runs.
PACKAGE_OF = {
    "podman": "podman",
    "buildah": "buildah",
    "skopeo": "skopeo",
    "mmdebstrap": "mmdebstrap",
    "git": "git",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "rsync": "rsync",
    "openssl": "openssl",
    "pg_dump": "postgresql-client",
    "psql": "postgresql-client",
    "mariadb": "mariadb-client",
    "mariadb-dump": "mariadb-client",
    "tar": "tar",
}

MASK = "********"
LineSink = Callable[[str, str], None]  # (stream name "out"|"err", masked line)


@dataclass(frozen=True)
class Command:
    """An external command as a value. ``secrets`` are masked in every log and error."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    cwd: Path | None = None
    stdin: bytes | None = None

    @classmethod
    def of(cls, *argv: object, **kwargs: object) -> Command:
        return cls(argv=tuple(str(a) for a in argv), **kwargs)  # type: ignore[arg-type]

    @property
    def tool(self) -> str:
        return Path(self.argv[0]).name

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, MASK)
        return text

    def display(self) -> str:
        """The command line as it may be shown to a user or written to a log."""
        return self.mask(" ".join(_quote(a) for a in self.argv))

    def with_env(self, **env: str) -> Command:
        return Command(self.argv, {**self.env, **env}, self.secrets, self.cwd, self.stdin)


def _die_with_parent() -> list[str]:
    """argv prefix: a tool gets SIGTERM when WebSonic dies, so it stops and cleans up (buildah
    removes its build container) instead of running on as an orphan."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./:=@,+%" for c in arg) else repr(arg)


@dataclass(frozen=True)
class Result:
    command: Command
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class Runner:
    """Runs commands. ``base_env`` is added to every command's environment (e.g. CONTAINERS_CONF).

    ``log`` (a text file) receives every command line and output line, masked.
    """

    base_env: Mapping[str, str] = field(default_factory=dict)
    log: IO[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def which(self, tool: str) -> str:
        path = shutil.which(tool)
        if path is None:
            package = PACKAGE_OF.get(tool, tool)
            raise ToolMissing(
                f"`{tool}` is not installed.",
                hint=f"Install it with: apt-get install -y {package}",
            )
        return path

    def run(
        self,
        command: Command,
        *,
        on_line: LineSink | None = None,
        check: bool = True,
        timeout: float | None = None,
        error: str | None = None,
    ) -> Result:
        """Run ``command`` to completion; raise ToolFailed if it fails and ``check`` is set."""
        executable = self.which(command.argv[0])
        self._write_log(f"$ {command.display()}")
        started = time.monotonic()
        env = {**os.environ, **self.base_env, **command.env}
        proc = subprocess.Popen(
            [*_die_with_parent(), executable, *command.argv[1:]],
            cwd=command.cwd,
            env=env,
            stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=self._pump, args=(proc.stdout, "out", out, command, on_line)),
            threading.Thread(target=self._pump, args=(proc.stderr, "err", err, command, on_line)),
        ]
        for reader in readers:
            reader.start()
        if command.stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(command.stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
            err.append(f"killed after {timeout:.0f} s")
        for reader in readers:
            reader.join()
        result = Result(command, returncode, "".join(out), "".join(err), time.monotonic() - started)
        if check and not result.ok:
            raise ToolFailed(
                error or f"`{command.display()}` failed",
                returncode=returncode,
                stderr=result.stderr or result.stdout,
            )
        return result

    def spawn(self, command: Command) -> subprocess.Popen[bytes]:
        """Start a long-running tool (an SSH tunnel) in the background; the caller stops it.

        Its stderr is a pipe the caller reads (or closes); it dies with WebSonic."""
        executable = self.which(command.argv[0])
        self._write_log(f"$ {command.display()} &")
        return subprocess.Popen(
            [*_die_with_parent(), executable, *command.argv[1:]],
            cwd=command.cwd,
            env={**os.environ, **self.base_env, **command.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _pump(
        self,
        stream: IO[bytes],
        name: str,
        sink: list[str],
        command: Command,
        on_line: LineSink | None,
    ) -> None:
        for raw in iter(stream.readline, b""):
            line = command.mask(raw.decode("utf-8", errors="replace"))
            sink.append(line)
            self._write_log(line.rstrip("\n"))
            if on_line is not None:
                on_line(name, line.rstrip("\n"))
        stream.close()

    def _write_log(self, line: str) -> None:
        if self.log is None:
            return
        with self._lock:
            self.log.write(line + "\n")
            self.log.flush()

    def logging_to(self, log: IO[str] | None) -> Runner:
        """The same runner, writing to another log."""
        return Runner(base_env=self.base_env, log=log)
