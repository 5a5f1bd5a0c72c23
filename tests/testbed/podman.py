"""Calling podman with the project's required containers.conf."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed._proc import DEFAULT_TIMEOUT, run

#: The project's containers.conf (runc, cgroupfs, no default ulimits); podman fails without it.
CONTAINERS_CONF = Path(
    os.environ.get(
        "WEBSONIC_TEST_CONTAINERS_CONF",
        str(Path(__file__).resolve().parents[2] / "src" / "websonic" / "data" / "containers.conf"),
    )
)


def podman_env() -> dict[str, str]:
    """Environment additions every podman/buildah call needs."""
    return {"CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(
    *args: str,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``podman <args>`` with ``CONTAINERS_CONF`` set."""
    return run(["podman", *args], check=check, timeout=timeout, input=input, env=podman_env())


def podman_lines(*args: str, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Run podman and return the non-empty lines of its standard output."""
    return [line for line in podman(*args, timeout=timeout).stdout.splitlines() if line.strip()]


def remove_objects(kind: str, names: Sequence[str]) -> None:
    """Force-remove podman objects of ``kind`` (container, volume, network) by name."""
    commands = {
        "container": ("rm", "--force", "--volumes", "--time", "0"),
        "volume": ("volume", "rm", "--force"),
        "network": ("network", "rm", "--force"),
    }
    for name in names:
        podman(*commands[kind], name, check=False, timeout=60)
