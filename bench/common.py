"""Shared helpers of the benchmarks: timing, medians, writing a section of docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
CONTAINERS_CONF = ROOT / "src" / "websonic" / "data" / "containers.conf"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        argv, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpus = os.cpu_count()
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    return (
        f"{platform.system()} {platform.release()}, {cpus} CPUs, "
        f"{int(memory) // 1024 // 1024} GiB, {time.strftime('%Y-%m-%d')}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section ``## name`` of docs/benchmarks.md."""
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else "# Benchmarks\n\n"
        "Measured with the scripts in `bench/`, each comparing WebSonic side by side with the "
        "tool a user would otherwise pick, in one run on one machine. Single machines are "
        "noisy: compare within a table, not across runs.\n"
    )
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(section + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    RESULTS.write_text(text.rstrip() + "\n")


class WebSonic:
    """The real `websonic` command on one state folder (bases from the machine's cache)."""

    def __init__(self, home: Path) -> None:
        self.env = {
            "WEBSONIC_HOME": str(home),
            "WEBSONIC_ADMIN_PASSWORD": "bench-password-123",
            "WEBSONIC_BASE_CACHE_DIR": os.environ.get(
                "WEBSONIC_BASE_CACHE_DIR", "/var/cache/websonic-test/base"
            ),
            "WEBSONIC_BASE_MAX_AGE_HOURS": "720",
            "WEBSONIC_ENVIRONMENT": "development",
        }

    def __call__(self, *args: str) -> dict:
        out = run([sys.executable, "-m", "websonic.cli.main", *args, "--json"], env=self.env)
        return json.loads(out)

    def serve(self, port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "websonic.cli.main", "serve", "--port", str(port)],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def read_section(name: str) -> str | None:
    """The body of the section ``## name`` of docs/benchmarks.md (None when it has none)."""
    if not RESULTS.exists():
        return None
    pattern = re.compile(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", re.S | re.M)
    found = pattern.search(RESULTS.read_text())
    return found[1].strip() if found else None


def span(values: list[float], digits: int = 1, unit: str = " s") -> str:
    """``median unit (min-max)`` of the values, or the one value."""
    low, mid, high = (f"{v:.{digits}f}" for v in (min(values), median(values), max(values)))
    return f"{mid}{unit}" if len(values) == 1 else f"{mid}{unit} ({low}-{high})"


def wait_until(condition: Callable[[], object], timeout: float) -> bool:
    """Poll ``condition`` every 50 ms until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def background(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A load generator running (output to ``log``) while the block runs; stopped by its pid
    after, and the last lines of its output printed."""
    with log.open("a") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        last = log.read_text(errors="replace").strip().splitlines()[-2:]
        print(f"{argv[0]} exited {proc.returncode}: " + " / ".join(last)[:300], flush=True)
