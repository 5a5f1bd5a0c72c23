"""Shared fixtures: a fresh state folder, the real `websonic` command, cached base images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from websonic.platform import Platform, init_platform, open_platform
from websonic.settings import Settings

pytest_plugins = ["testbed.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TEST_CACHE = Path(os.environ.get("WEBSONIC_TEST_CACHE", "/var/cache/websonic-test"))
ADMIN_PASSWORD = "correct-horse-battery-staple"


def home_env(home: Path) -> dict[str, str]:
    """Environment of a WebSonic process using ``home``, with the machine's shared caches."""
    return {
        "WEBSONIC_HOME": str(home),
        "WEBSONIC_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WEBSONIC_BASE_CACHE_DIR": str(TEST_CACHE / "base"),
        "WEBSONIC_BASE_MAX_AGE_HOURS": str(24 * 30),
        "WEBSONIC_ENVIRONMENT": "development",
    }


@dataclass
class Cli:
    """The real `websonic` command, run as a process against one state folder."""

    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **home_env(self.home), "COLUMNS": "200", **extra}

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 1200,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "websonic.cli.main", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"websonic {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, **kwargs: object) -> dict:
        return json.loads(self.run(*args, "--json", **kwargs).stdout)  # type: ignore[arg-type]

    def fails(self, *args: str, code: int | None = None, **env: str) -> str:
        """Run a command that must fail; return its stderr (asserting no traceback)."""
        proc = self.run(*args, check=False, **env)
        assert proc.returncode != 0, f"websonic {' '.join(args)} succeeded:\n{proc.stdout}"
        if code is not None:
            assert proc.returncode == code, (proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A fresh, initialised state folder driven by the real command."""
    command = Cli(tmp_path / "home")
    command.run("init")
    return command


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in home_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    init_platform(settings)
    opened = open_platform(settings)
    yield opened
    opened.close()
