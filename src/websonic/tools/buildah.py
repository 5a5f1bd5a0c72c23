"""buildah and ``podman image`` argv builders and output parsers (pure; no I/O).

Every command here needs ``CONTAINERS_CONF`` in its environment; the :class:`Runner` that runs
them is made with ``base_env={"CONTAINERS_CONF": ...}``.

Reproducible builds: ``buildah build --layers --timestamp EPOCH --identity-label=false`` gives
the same image (config) digest for the same input. Without ``--layers`` buildah squashes the
RUN/COPY steps differently, so :func:`build` always passes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websonic.core.errors import InvalidInput
from websonic.core.runner import Command

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")


def build(
    context: Path,
    *,
    tag: str,
    timestamp: int,
    containerfile: Path | None = None,
    iidfile: Path | None = None,
    no_cache: bool = False,
    volumes: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    network: str | None = None,
    pull: str = "never",
    jobs: int | None = None,
) -> Command:
    """``buildah build`` of ``context`` (reproducible: layers, fixed timestamp, no identity label).

    ``volumes`` are ``HOST:CONTAINER[:OPTIONS]`` bind mounts visible to RUN steps only (never
    committed), e.g. the host's CA bundle when outbound TLS is intercepted. ``pull="never"``:
    base images are local (``localhost/websonic/base-*``) and no registry is reachable.
    """
    argv: list[str] = [
        "buildah",
        "build",
        "--layers",
        f"--timestamp={int(timestamp)}",
        "--identity-label=false",
        "--format=oci",
        f"--pull={pull}",
        "--tag",
        tag,
    ]
    if containerfile is not None:
        argv += ["--file", str(containerfile)]
    if iidfile is not None:
        argv += ["--iidfile", str(iidfile)]
    if no_cache:
        argv.append("--no-cache")
    if network:  # "none": RUN steps see only their loopback
        argv.append(f"--network={network}")
    if jobs is not None:
        argv.append(f"--jobs={jobs}")
    for volume in volumes:
        argv += ["--volume", volume]
    for name, value in sorted((build_args or {}).items()):
        argv += ["--build-arg", f"{name}={value}"]
    argv.append(str(context))
    return Command.of(*argv)


def store_info() -> Command:
    """Where the shared image store (bases, service images) is: ``GRAPHROOT\tDRIVER``."""
    return Command.of(
        "podman", "info", "--format", "{{.Store.GraphRoot}}\t{{.Store.GraphDriverName}}"
    )


def parse_store_info(stdout: str) -> tuple[Path, str]:
    root, _, driver = stdout.strip().partition("\t")
    if not root.startswith("/") or not driver:
        raise InvalidInput(f"podman info printed no image store: {stdout.strip()[:80]!r}")
    return Path(root), driver


def storage_conf(root: Path, driver: str, read_only_stores: Sequence[Path]) -> str:
    """A storage.conf (for ``CONTAINERS_STORAGE_CONF``) of an image store of its own at ``root``,
    seeing the images of ``read_only_stores`` without being able to change them."""
    for path in (root, *read_only_stores):
        if any(c in str(path) for c in '"\\\n'):
            raise InvalidInput(f"an image store path cannot contain quotes: {path}")
    stores = ", ".join(f'"{p}"' for p in read_only_stores)
    return (
        f'[storage]\ndriver = "{driver}"\ngraphroot = "{root / "root"}"\n'
        f'runroot = "{root / "run"}"\n\n[storage.options]\nadditionalimagestores = [{stores}]\n'
    )


def parse_build_output(stdout: str) -> str:
    """The image ID (``sha256:…``) that ``buildah build`` prints as its last stdout line."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if IMAGE_ID.match(line):
            return f"sha256:{line}"
        if DIGEST.match(line):
            return line
    raise InvalidInput("buildah build printed no image ID")


def parse_iidfile(text: str) -> str:
    """The image ID written by ``--iidfile`` (``sha256:…``)."""
    value = text.strip()
    if IMAGE_ID.match(value):
        value = f"sha256:{value}"
    if not DIGEST.match(value):
        raise InvalidInput(f"not an image ID: {value!r}")
    return value


def image_inspect(ref: str) -> Command:
    return Command.of("podman", "image", "inspect", "--format", "json", ref)


def image_exists(ref: str) -> Command:
    """Exit 0 if ``ref`` is in local storage, 1 if not (run with ``check=False``)."""
    return Command.of("podman", "image", "exists", ref)


def rmi(*refs: str, force: bool = False) -> Command:
    return Command.of("podman", "rmi", *(["--force"] if force else []), "--ignore", *refs)


def tag(ref: str, *new_names: str) -> Command:
    return Command.of("podman", "tag", ref, *new_names)


def image_tree(ref: str) -> Command:
    return Command.of("podman", "image", "tree", ref)


@dataclass(frozen=True)
class ImageInfo:
    """What ``podman image inspect`` says about an image."""

    id: str  # config digest, sha256:…
    digest: str  # manifest digest in local storage, sha256:… ("" if unknown)
    size: int  # bytes, uncompressed
    layers: tuple[str, ...]  # diff IDs (sha256:…), bottom first
    names: tuple[str, ...]
    labels: Mapping[str, str]
    env: tuple[str, ...]
    user: str
    cmd: tuple[str, ...]
    exposed_ports: tuple[str, ...]
    created: str

    @property
    def config_digest(self) -> str:
        return self.id


def parse_image_inspect(output: str) -> ImageInfo:
    """Parse ``podman image inspect --format json`` (a list with one image)."""
    try:
        data: Any = json.loads(output)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"podman image inspect printed no JSON: {exc}") from exc
    if isinstance(data, list):
        if len(data) != 1:
            raise InvalidInput(f"expected one image, podman listed {len(data)}")
        data = data[0]
    config = data.get("Config") or {}
    image_id = data["Id"]
    if IMAGE_ID.match(image_id):
        image_id = f"sha256:{image_id}"
    return ImageInfo(
        id=image_id,
        digest=data.get("Digest") or "",
        size=int(data.get("Size") or 0),
        layers=tuple((data.get("RootFS") or {}).get("Layers") or ()),
        names=tuple(data.get("RepoTags") or ()),
        labels=dict(config.get("Labels") or data.get("Labels") or {}),
        env=tuple(config.get("Env") or ()),
        user=config.get("User") or "",
        cmd=tuple(config.get("Cmd") or ()),
        exposed_ports=tuple(sorted((config.get("ExposedPorts") or {}).keys())),
        created=data.get("Created") or "",
    )


@dataclass(frozen=True)
class ImageRuntime:
    """How a base image's containers start: entrypoint, command, ports, volumes, stop signal."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("/bin/bash",)
    expose: tuple[str, ...] = ()  # "5432/tcp"
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None  # "SIGINT"


def base_containerfile(
    *,
    rootfs: str,
    labels: Mapping[str, str],
    env: Mapping[str, str],
    runtime: ImageRuntime = ImageRuntime(),
) -> str:
    """Containerfile turning a rootfs tarball (in the context) into an image, reproducibly."""
    lines = ["FROM scratch", f"ADD {rootfs} /"]
    for name, value in sorted(env.items()):
        lines.append(f"ENV {name}={quote_value(value)}")
    if labels:
        parts = " \\\n      ".join(
            f"{quote_value(k)}={quote_value(v)}" for k, v in sorted(labels.items())
        )
        lines.append(f"LABEL {parts}")
    lines += _runtime_lines(runtime)
    return "\n".join(lines) + "\n"


def _runtime_lines(runtime: ImageRuntime) -> list[str]:
    lines = [f"EXPOSE {port}" for port in runtime.expose]
    if runtime.volumes:
        lines.append(f"VOLUME {json.dumps(list(runtime.volumes))}")
    if runtime.stop_signal:
        if not re.fullmatch(r"SIG[A-Z0-9]+", runtime.stop_signal):
            raise InvalidInput(f"not a signal name: {runtime.stop_signal!r}")
        lines.append(f"STOPSIGNAL {runtime.stop_signal}")
    if runtime.entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(list(runtime.entrypoint))}")
    lines.append(f"CMD {json.dumps(list(runtime.cmd))}")
    return lines


def quote_value(value: str) -> str:
    """A value for ENV/LABEL lines: double-quoted, with ``\\``, ``"`` and ``$`` escaped.

    Newlines cannot be written in a Containerfile value and are refused.
    """
    if "\n" in value or "\r" in value:
        raise InvalidInput(f"a Containerfile value cannot contain a line break: {value[:40]!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
