"""Registry benchmark: pulling one ~200 MB image from `websonic serve` and from the CNCF
distribution registry (Debian package `docker-registry`), on loopback, alternating, in one run.

The image is a WebSonic release (static base + ~130 MB of incompressible site files). The very
same blobs are pushed into the distribution registry, so both serve identical bytes. Pulls use
`skopeo copy docker://… dir:…` (no decompression on the client), 1 client, then 8 concurrent
clients; WebSonic with its token flow (`--src-creds acme:TOKEN`), distribution without auth
(its default configuration — an advantage to it).

    python bench/registry.py [--rounds 3] [--clients 1 8] [--megabytes 128]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import CONTAINERS_CONF, ROOT, WebSonic, machine, median, run, write_section

ENV = {"CONTAINERS_CONF": str(CONTAINERS_CONF)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
            capture_output=True,
            text=True,
        )
        if proc.stdout.strip() not in ("", "000"):
            return
        time.sleep(0.3)
    raise RuntimeError(f"{url} never answered")


def make_site(folder: Path, megabytes: int) -> None:
    shutil.copytree(ROOT / "examples" / "static-brochure", folder)
    rng = random.Random(20261125)
    (folder / "media").mkdir()
    for index in range(megabytes // 16):
        (folder / "media" / f"video-{index}.bin").write_bytes(rng.randbytes(16 * 2**20))


def start_distribution(work: Path, port: int) -> subprocess.Popen[bytes]:
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    return subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pull(source: str, creds: list[str], dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", *creds, source, f"dir:{dest}"],
        env=ENV,
    )


def timed_pulls(source: str, creds: list[str], clients: int, work: Path) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda i: pull(source, creds, work / f"pull-{i}"), range(clients)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--megabytes", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        work = Path(tmp)
        ws = WebSonic(work / "home")
        ws("init")
        ws("base", "build", "static")
        ws("customer", "add", "acme")
        make_site(work / "site", args.megabytes)
        ws("site", "add", "acme/big", "--source", str(work / "site"))
        release = ws("build", "acme/big")
        token = ws("token", "create", "acme", "--scope", "pull", "--expires", "1d")
        secret = token.get("token") or token["secret"]
        ws_port, dist_port = free_port(), free_port()
        server = ws.serve(ws_port)
        registry = start_distribution(work, dist_port)
        try:
            wait_for(f"http://127.0.0.1:{ws_port}/v2/")
            wait_for(f"http://127.0.0.1:{dist_port}/v2/")
            layout_ref = f"acme_big_r{release['release']}"
            run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    f"oci:{work / 'home' / 'oci'}:{layout_ref}",
                    f"docker://127.0.0.1:{dist_port}/acme/big:1",
                ],
                env=ENV,
            )
            size = release["size"]
            sources = {
                "websonic serve": (
                    f"docker://127.0.0.1:{ws_port}/acme/big:1",
                    ["--src-creds", f"acme:{secret}"],
                ),
                "distribution (docker-registry)": (
                    f"docker://127.0.0.1:{dist_port}/acme/big:1",
                    [],
                ),
            }
            results: dict[tuple[str, int], list[float]] = {}
            for clients in args.clients:
                for r in range(args.rounds):
                    names = list(sources) if r % 2 == 0 else list(reversed(sources))
                    for name in names:
                        source, creds = sources[name]
                        seconds = timed_pulls(source, creds, clients, work)
                        results.setdefault((name, clients), []).append(seconds)
                        print(f"{name} x{clients}: {seconds:.2f} s", flush=True)
        finally:
            for proc in (server, registry):
                proc.terminate()
                proc.wait(timeout=30)
    rows = []
    for clients in args.clients:
        for name in sources:
            seconds = median(results[(name, clients)])
            rate = size * clients / seconds / 2**20
            rows.append(f"| {name} | {clients} | {seconds:.2f} s | {rate:.0f} MiB/s |")
    body = (
        f"`python bench/registry.py --rounds {args.rounds}` — {machine()}; the same "
        f"{size / 2**20:.0f} MiB image (identical blobs and manifest digest) pulled with "
        "`skopeo copy docker://… dir:…` over loopback; median of "
        f"{args.rounds} rounds, the two registries alternating.\n\n"
        "| registry | concurrent clients | time for all clients | throughput |\n"
        "|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("Registry pulls", body)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
