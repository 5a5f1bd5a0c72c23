"""Building a release: source snapshot -> buildah (reproducible) -> OCI layout -> SBOM -> signature.

A site whose manifest names a database server (``services.database``: postgresql, mariadb)
gets the newest service image of that engine copied into the OCI layout with it, recorded in
``Release.services`` and named in the signed payload.

Nothing is registered until every step has succeeded: a failed or killed build leaves no
release, and the job's log says why.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from websonic.audit.service import record
from websonic.builds import containerfile as containerfiles
from websonic.builds import kinds, services, signing, storage
from websonic.builds.models import BaseImage, Release
from websonic.builds.oci import ImageInfo, OciLayout, layout_ref
from websonic.builds.sbom import make_sbom
from websonic.core.errors import BuildFailed, NotFound, ToolFailed
from websonic.core.runner import Command, Runner
from websonic.platform import Platform
from websonic.sites import source as sources
from websonic.sites.manifest import Manifest, load_manifest
from websonic.sites.models import Site
from websonic.tools import buildah, skopeo

Progress = Callable[[float, str], None]
STEP = re.compile(r"^STEP (\d+)/(\d+)")
TOOLS = ("buildah", "skopeo", "podman")
NETWORK_LABEL = "io.websonic.build-network"


@dataclass(frozen=True)
class BuildInput:
    site_id: int
    repository: str
    spec: sources.SourceSpec
    folder_epoch: int


def build_release(
    platform: Platform,
    site_id: int,
    *,
    ref: str | None,
    job_id: int | None,
    actor: str,
    log: Callable[[str], None],
    progress: Progress,
) -> Release:
    """Build site ``site_id`` and record the signed release; raise BuildFailed on any error."""
    started = time.monotonic()
    build = _input(platform, site_id, ref)
    work = platform.settings.work_dir / f"build-{job_id or int(time.time() * 1000)}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runner = platform.runner
    manifest: Manifest | None = None
    try:
        progress(0.02, f"fetching source {build.spec}")
        snap = sources.snapshot(
            build.spec,
            work / "src",
            runner,
            folder_epoch=build.folder_epoch,
            exclude=kinds.EXCLUDES,
        )
        manifest, _detected = load_manifest(snap.path)
        base = _base_for(platform, manifest)
        service_bases = _services_for(platform, manifest)
        policy = containerfiles.Policy(build.repository, _base_digests(platform))
        containerfile = _write_containerfile(work, snap, manifest, base, policy)
        image = (
            f"{containerfiles.BUILD_PREFIX}{build.repository}:job-{job_id}-{secrets.token_hex(4)}"
        )
        with storage.site_build(platform, build.site_id) as store:
            progress(0.1, f"building {manifest.kind} site with buildah")
            _buildah_build(
                runner, containerfile, snap, image, log, progress, platform, manifest, store
            )
            return _store_release(
                platform, build, snap, manifest, base, service_bases, (image, store), job_id,
                actor, started, progress,
            )  # fmt: skip
    except ToolFailed as exc:
        raise BuildFailed(
            f"The build of {build.repository} failed: {exc.message}{_network_note(manifest)}",
            hint=_tail(exc.stderr),
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _network_note(manifest: Manifest | None) -> str:
    if manifest is None or manifest.build.network:
        return ""
    return (
        " (RUN steps have no network: if one downloads, with pip, npm, composer or curl, "
        "set build.network = true in websonic.toml)"
    )


def _base_digests(platform: Platform) -> frozenset[str]:
    """Every base and service image the agency made: what a Containerfile may start from."""
    with platform.sessions() as session:
        return frozenset(session.scalars(select(BaseImage.digest)))


def _input(platform: Platform, site_id: int, ref: str | None) -> BuildInput:
    with platform.sessions() as session:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"Site {site_id} no longer exists.")
        if ref and not site.ref:
            raise BuildFailed(f"{site.ref_name} is built from a folder: --ref needs a git source.")
        spec = sources.from_stored(
            site.source, (ref or site.ref) if site.ref else None, platform.secrets
        )
        return BuildInput(site.id, site.ref_name, spec, site.epoch or sources.DEFAULT_FOLDER_EPOCH)


def _base_for(platform: Platform, manifest: Manifest) -> BaseImage | None:
    if manifest.kind == "containerfile":
        return None
    base = _newest_base(platform, manifest.kind, f"{manifest.kind} sites")
    _require_local(platform, base)
    return base


def _services_for(platform: Platform, manifest: Manifest) -> list[BaseImage]:
    """The service image of the site's database server (none for sqlite and none).

    The image must be in local storage unless the release store has it already."""
    engine = manifest.services.database
    if engine not in services.SERVICE_KINDS:
        return []
    base = _newest_base(platform, engine, f"the {engine} database of this site")
    if services.stored_manifest(OciLayout(platform.settings.oci_dir), engine, base.digest) is None:
        _require_local(platform, base)
    return [base]


def _newest_base(platform: Platform, kind: str, what: str) -> BaseImage:
    with platform.sessions() as session:
        base = session.scalar(
            select(BaseImage).where(BaseImage.kind == kind).order_by(BaseImage.id.desc()).limit(1)
        )
    if base is None:
        raise BuildFailed(
            f"There is no base image for {what} yet.",
            hint=f"Make it with: websonic base build {kind}",
        )
    return base


def _require_local(platform: Platform, base: BaseImage) -> None:
    exists = platform.runner.run(Command.of("podman", "image", "exists", base.digest), check=False)
    if not exists.ok:
        raise BuildFailed(
            f"The {base.kind} base image {base.digest[:19]} is no longer in the local image store.",
            hint=f"Make it again with: websonic base build {base.kind}",
        )


def pin_epoch(containerfile: str, epoch: int, *, network: bool = False) -> str:
    """Add ``ENV SOURCE_DATE_EPOCH`` after each FROM: tools inside honour it, and buildah's
    layer cache (which ignores --timestamp) then never reuses a layer made with another epoch.

    With ``network``, a ``LABEL`` saying so follows too: a layer made with the network is then
    never reused by a build without it (buildah's cache ignores ``--network`` too), and back."""
    lines = []
    for line in containerfile.splitlines():
        lines.append(line)
        if line.strip().upper().startswith("FROM "):
            lines.append(f"ENV SOURCE_DATE_EPOCH={epoch}")
            if network:
                lines.append(f"LABEL {NETWORK_LABEL}=enabled")
    return "\n".join(lines) + "\n"


def _write_containerfile(
    work: Path,
    snap: sources.Snapshot,
    manifest: Manifest,
    base: BaseImage | None,
    policy: containerfiles.Policy,
) -> Path:
    """The Containerfile buildah reads (the site's own one checked against ``policy``)."""
    network = manifest.build.network
    if base is None:
        own = snap.path / manifest.site.containerfile
        if not own.is_file():
            raise BuildFailed(f"The site's Containerfile {manifest.site.containerfile} is missing.")
        text = own.read_text(encoding="utf-8")
        containerfiles.check(text, policy)  # line numbers as the customer wrote them
        containerfiles.check(pin_epoch(text, snap.epoch, network=network), policy)
    else:
        rendered = kinds.render_containerfile(
            manifest, base.digest, facts=kinds.scan_source(snap.path)
        )
        assert rendered is not None
        text = rendered
    path = work / "Containerfile.websonic"
    path.write_text(pin_epoch(text, snap.epoch, network=network), encoding="utf-8")
    return path


SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # where generated RUN steps look for CAs


def buildah_build_command(
    containerfile: Path,
    context: Path,
    image: str,
    epoch: int,
    ca_bundle: Path | None = None,
    *,
    network: bool = False,
) -> Command:
    """The build of a release; ``ca_bundle`` is lent to RUN steps only (never in a layer).

    RUN steps have no network (only their own loopback) unless ``network`` is set: the site's
    manifest asks for it with ``[build] network = true``, and its SBOM says so."""
    volumes = [f"{ca_bundle}:{SYSTEM_CA}:ro"] if ca_bundle else []
    return buildah.build(
        context,
        tag=image,
        timestamp=epoch,
        containerfile=containerfile,
        volumes=volumes,
        network=None if network else "none",
    )


def _buildah_build(
    runner: Runner,
    containerfile: Path,
    snap: sources.Snapshot,
    image: str,
    log: Callable[[str], None],
    progress: Progress,
    platform: Platform,
    manifest: Manifest,
    store: dict[str, str],
) -> None:
    def on_line(_stream: str, line: str) -> None:
        log(line)
        match = STEP.match(line)
        if match:
            step, total = int(match.group(1)), int(match.group(2))
            progress(0.1 + 0.7 * (step - 1) / total, line[:120])

    bundle = platform.settings.build_ca_bundle
    ca_bundle = bundle if bundle is not None and bundle.is_file() else None
    command = buildah_build_command(
        containerfile, snap.path, image, snap.epoch, ca_bundle, network=manifest.build.network
    )
    runner.run(
        command.with_env(**store),
        on_line=on_line,
        timeout=platform.settings.build_timeout_seconds,
        error="buildah could not build the image",
    )


def _store_release(
    platform: Platform,
    build: BuildInput,
    snap: sources.Snapshot,
    manifest: Manifest,
    base: BaseImage | None,
    service_bases: list[BaseImage],
    built: tuple[str, dict[str, str]],
    job_id: int | None,
    actor: str,
    started: float,
    progress: Progress,
) -> Release:
    image, store = built
    layout = OciLayout(platform.settings.oci_dir)
    progress(0.85, "storing the image in the OCI layout")
    with layout.locked(), platform.transaction() as session:
        number = _next_number(session, build.site_id)
        ref_name = layout_ref(build.repository, number)
        platform.runner.run(
            skopeo.copy_to_layout(image, layout.root, ref_name).with_env(**store),
            error="skopeo could not store the image",
        )
        info = layout.image_info(layout.manifest_for_ref(ref_name))
        stored = _store_services(platform.runner, layout, service_bases, progress)
        progress(0.92, "writing the SBOM and signing")
        sbom_digest = layout.write_blob(
            make_sbom(
                repository=build.repository,
                release=number,
                epoch=snap.epoch,
                source_dir=snap.path,
                packages=base.packages if base else [],
                base_digest=base.digest if base else None,
                network=manifest.build.network,
            )
        )
        release = _record(
            session,
            platform,
            build,
            snap,
            manifest,
            base,
            info,
            stored,
            number,
            sbom_digest,
            job_id,
            time.monotonic() - started,
        )
        record(
            session,
            actor,
            "release.create",
            customer_id=release.site.customer_id,
            target=f"{build.repository}:{number}",
            detail={"digest": info.manifest_digest, "job": job_id},
        )
    keep_as_cache(platform.runner, image, build.repository, platform.settings.home, store)
    progress(1.0, f"release {number}: {info.manifest_digest}")
    return release


def _store_services(
    runner: Runner, layout: OciLayout, bases: list[BaseImage], progress: Progress
) -> list[dict[str, Any]]:
    """Each service image into the layout (once: content-addressed), described for the record."""
    stored = []
    for base in bases:
        progress(0.88, f"storing the {base.kind} service image")
        stored.append(
            services.store_service_image(runner, layout, base.kind, base.digest, base.packages)
        )
    return stored


def keep_as_cache(
    runner: Runner, image: str, repository: str, home: Path, store: dict[str, str]
) -> None:
    """Keep the newest build of the site tagged in its own store, so its layers stay cached.

    Removing a built image also removes its untagged intermediate layers — the cache of its
    dependency steps. So the job's tag moves to ``…:cache``. The image it replaces is left
    untagged, never removed by id here: another build of the same site may have just produced
    the very same image. The tag older versions left in the shared store goes.
    """
    own = f"{containerfiles.BUILD_PREFIX}{repository}"
    runner.run(buildah.tag(image, f"{own}:cache").with_env(**store))
    runner.run(buildah.rmi(image).with_env(**store), check=False)  # only the job's own tag
    home_id = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    runner.run(buildah.rmi(f"{own}:cache-{home_id}"), check=False)  # earlier versions' tag


def _next_number(session: Session, site_id: int) -> int:
    current = session.scalar(select(func.max(Release.number)).where(Release.site_id == site_id))
    return (current or 0) + 1


def _record(
    session: Session,
    platform: Platform,
    build: BuildInput,
    snap: sources.Snapshot,
    manifest: Manifest,
    base: BaseImage | None,
    info: ImageInfo,
    stored_services: list[dict[str, Any]],
    number: int,
    sbom_digest: str,
    job_id: int | None,
    seconds: float,
) -> Release:
    payload = signing.make_payload(
        build.repository,
        number,
        info.manifest_digest,
        sbom_digest,
        services.service_digests(stored_services),
    )
    release = Release(
        site_id=build.site_id,
        number=number,
        digest=info.manifest_digest,
        config_digest=info.config_digest,
        size=info.total_size,
        layers=[{"digest": x.digest, "size": x.size, "diff_id": x.diff_id} for x in info.layers],
        base_digest=base.digest if base else None,
        tool_versions=tool_versions(platform.runner),
        source_ref=str(build.spec),
        source_revision=snap.revision,
        source_epoch=snap.epoch,
        signature=platform.signer.sign(payload),
        signed_payload=payload.decode("utf-8"),
        signing_key_id=platform.signer.key_id,
        sbom_digest=sbom_digest,
        services=stored_services,
        manifest=manifest.to_record(),
        build_log=f"logs/job-{job_id}.log" if job_id else None,
        build_seconds=round(seconds, 3),
        job_id=job_id,
    )
    session.add(release)
    session.flush()
    session.refresh(release)
    return release


_VERSIONS: dict[str, str] = {}


def tool_versions(runner: Runner) -> dict[str, str]:
    for tool in TOOLS:
        if tool not in _VERSIONS:
            _VERSIONS[tool] = skopeo.parse_version(runner.run(skopeo.version(tool)).stdout)
    return dict(_VERSIONS)
