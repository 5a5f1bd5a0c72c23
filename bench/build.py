"""Build benchmark: WebSonic builds vs a plain `podman build`, for each example site.

For each example, in one run, alternating the two tools round by round:
  cold      the site's layers are not in any cache (base image present)
  edit      rebuild after a one-file edit of the site's own files
  no-change rebuild with nothing changed

WebSonic is driven through its CLI (`websonic build`, which also stores the image in its OCI
layout, writes the SBOM and signs). The plain build is `podman build` of the same Containerfile
WebSonic generates (minus its epoch pin), which is what a user without WebSonic would write.
Cache busting for "cold": WebSonic gets a new epoch (`site add --epoch`), podman a new
`ARG` value in its Containerfile's first step.

    python bench/build.py [--rounds 3] [--examples static-brochure python-shop php-guestbook]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import CONTAINERS_CONF, ROOT, WebSonic, machine, median, run, timed, write_section

CA = "/etc/ssl/certs/ca-certificates.crt"
KIND_OF = {"static-brochure": "static", "python-shop": "python", "php-guestbook": "php"}
#: Releases of sites with a database server carry its service image (docs/service-images.md).
SERVICE_OF = {"python-shop": ("postgresql",), "php-guestbook": ("mariadb",)}
EDITED = {
    "static-brochure": "about.html",
    "python-shop": "wsgi.py",
    "php-guestbook": "public/index.php",
}


def podman_build(context: Path, containerfile: Path, tag: str) -> None:
    run(
        [
            "podman",
            "build",
            "--layers",
            "-q",
            "-v",
            f"{CA}:{CA}:ro",  # as WebSonic lends it
            "-f",
            str(containerfile),
            "-t",
            tag,
            str(context),
        ],
        env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )


def podman_containerfile(websonic_containerfile: str, nonce: str) -> str:
    lines = [
        line
        for line in websonic_containerfile.splitlines()
        if not line.startswith("ENV SOURCE_DATE_EPOCH")
    ]
    first_from = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    lines.insert(first_from + 1, f"RUN echo {nonce} > /.bench-nonce")
    return "\n".join(lines) + "\n"


def rendered_containerfile(ws: WebSonic, example: str, source: Path) -> str:
    from websonic.builds import kinds
    from websonic.sites.manifest import load_manifest

    base = next(b for b in ws("base", "list")["bases"] if b["kind"] == KIND_OF[example])
    manifest, _ = load_manifest(source)
    text = kinds.render_containerfile(manifest, base["digest"], facts=kinds.scan_source(source))
    assert text is not None
    return text


def bench_example(example: str, rounds: int, work: Path) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {"websonic": {}, "podman": {}}
    ws = WebSonic(work / "home")
    ws("init")
    ws("base", "build", KIND_OF[example], *SERVICE_OF.get(example, ()))
    ws("customer", "add", "bench")
    for r in range(rounds):
        order = ["websonic", "podman"] if r % 2 == 0 else ["podman", "websonic"]
        nonce = f"{time.time_ns()}"
        for tool in order:
            source = work / f"{tool}-{r}"
            shutil.copytree(ROOT / "examples" / example, source)
            steps = (
                _websonic_steps(ws, example, source, r, nonce)
                if tool == "websonic"
                else _podman_steps(ws, example, source, r, nonce)
            )
            for step, action in steps:
                times[tool].setdefault(step, []).append(timed(action))
    return times


def _edit(source: Path, example: str) -> None:
    page = source / EDITED[example]
    page.write_text(
        page.read_text() + "\n<!-- edited -->\n"
        if page.suffix != ".py"
        else page.read_text() + "\n# edited\n"
    )


def _websonic_steps(ws: WebSonic, example: str, source: Path, r: int, nonce: str) -> list:
    ref = f"bench/{example}-{r}"
    epoch = str(315532800 + int(nonce) % 100_000_000)
    ws("site", "add", ref, "--source", str(source), "--epoch", epoch)
    return [
        ("cold", lambda: ws("build", ref)),
        ("edit", lambda: (_edit(source, example), ws("build", ref))),
        ("no-change", lambda: ws("build", ref)),
    ]


def _podman_steps(ws: WebSonic, example: str, source: Path, r: int, nonce: str) -> list:
    containerfile = source.parent / f"Containerfile.podman-{r}"
    containerfile.write_text(
        podman_containerfile(rendered_containerfile(ws, example, source), nonce)
    )
    tag = f"localhost/bench/{example}:{r}"
    return [
        ("cold", lambda: podman_build(source, containerfile, tag)),
        ("edit", lambda: (_edit(source, example), podman_build(source, containerfile, tag))),
        ("no-change", lambda: podman_build(source, containerfile, tag)),
    ]


def sizes(work: Path, example: str) -> tuple[int, int]:
    ws = WebSonic(work / "home")
    release = ws("release", "list", f"bench/{example}-0")["releases"][-1]
    podman = run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", f"localhost/bench/{example}:0"],
        env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )
    return int(release["size"]), int(podman.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", nargs="+", default=list(KIND_OF))
    args = parser.parse_args()
    rows = []
    for example in args.examples:
        with tempfile.TemporaryDirectory(prefix=f"bench-{example}-") as tmp:
            times = bench_example(example, args.rounds, Path(tmp))
            ws_size, podman_size = sizes(Path(tmp), example)
            run(
                [
                    "podman",
                    "rmi",
                    "-f",
                    *[f"localhost/bench/{example}:{r}" for r in range(args.rounds)],
                ],
                env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
            )
        for step in ("cold", "edit", "no-change"):
            rows.append(
                f"| {example} | {step} | {median(times['websonic'][step]):.1f} s | "
                f"{median(times['podman'][step]):.1f} s |"
            )
        rows.append(
            f"| {example} | image size | {ws_size / 2**20:.1f} MiB (compressed, "
            f"in the OCI layout) | {podman_size / 2**20:.1f} MiB (podman, uncompressed) |"
        )
        print("\n".join(rows[-4:]), flush=True)
    body = (
        f"`python bench/build.py --rounds {args.rounds}` — {machine()}; median of "
        f"{args.rounds} rounds, tools alternating.\n\n"
        "WebSonic's time includes the CLI's start (~1.5 s of Python imports), storing the "
        "image in the OCI layout (skopeo, gzip), the SBOM and the signature; `podman build` "
        "only builds into local storage.\n\n"
        "| example | build | `websonic build` | `podman build` (same Containerfile) |\n"
        "|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section("Builds", body)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
