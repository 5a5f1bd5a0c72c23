"""websonic base build|list, build, release list|verify|signature"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from sqlalchemy import select

from websonic.builds import base as bases
from websonic.builds import service
from websonic.builds.models import BaseImage, Release
from websonic.builds.oci import OciLayout
from websonic.builds.signing import public_pem
from websonic.builds.verify import verify_release, write_signature_bundle
from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, table
from websonic.cli.progress import run_with_progress
from websonic.core.errors import InvalidInput, VerificationFailed
from websonic.core.naming import parse_site_ref
from websonic.core.units import human_size
from websonic.jobs import service as jobs
from websonic.sites.service import get_site
from websonic.sites.source import shown

base_app = typer.Typer(help="Base images made from Debian packages.", no_args_is_help=True)
release_app = typer.Typer(help="Built, signed releases of a site.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(base_app, name="base")
    app.command("build")(build)
    app.add_typer(release_app, name="release")


@base_app.command("build")
def base_build(
    ctx: typer.Context,
    kinds: list[str] = typer.Argument(
        None, help=f"Kinds to build (default: all: {', '.join(bases.ALL_KINDS)})."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Build base images from Debian packages: the site kinds' (static, php, python, node) and
    the database services' (postgresql, mariadb; see docs/service-images.md)."""
    wanted = kinds or list(bases.ALL_KINDS)
    unknown = [k for k in wanted if k not in bases.ALL_KINDS]
    if unknown:
        raise InvalidInput(
            f"Unknown kind {unknown[0]!r}: choose from {', '.join(bases.ALL_KINDS)}."
        )
    cli = get(ctx)
    with cli.platform.transaction() as session:
        job_id = jobs.submit(session, "base-build", {"kinds": wanted}, requested_by=cli.actor).id
    job = run_with_progress(cli.platform, job_id, quiet=as_json, what="base images")
    if as_json:
        emit_json({"job": job_id, **job.result})
    else:
        for kind, digest in job.result["bases"].items():
            console.print(f"{kind}: {digest}")


@base_app.command("list")
def base_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List base images (newest per kind is used by builds)."""
    with get(ctx).platform.sessions() as session:
        rows = list(session.scalars(select(BaseImage).order_by(BaseImage.kind, BaseImage.id)))
        data: list[dict[str, Any]] = [
            {
                "kind": b.kind,
                "image": b.image,
                "digest": b.digest,
                "size": b.size,
                "packages": len(b.packages),
                "created_at": b.created_at,
            }
            for b in rows
        ]
    if as_json:
        emit_json({"bases": data})
    else:
        table(
            "Base images",
            ["kind", "digest", "size", "packages", "created"],
            [
                (d["kind"], d["digest"][:19], human_size(d["size"]), d["packages"], d["created_at"])
                for d in data
            ],
        )


def build(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    git_ref: str = typer.Option(None, "--ref", help="Git sources: branch, tag or commit."),
    background: bool = typer.Option(
        False, "--background", help="Queue it for `websonic serve`'s workers and return."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Build a release: a reproducible, signed image stored in the built-in registry."""
    cli = get(ctx)
    with cli.platform.transaction() as session:
        site = get_site(session, ref)
        job_id = service.request_build(session, site, ref=git_ref, requested_by=cli.actor).id
    if background:
        from websonic.worker import Workers

        Workers(cli.platform).enqueue(job_id)
        emit_json({"job": job_id, "status": "queued"}) if as_json else console.print(
            f"Build queued as job {job_id}: websonic job log {job_id} --follow"
        )
        return
    job = run_with_progress(cli.platform, job_id, quiet=as_json, what=f"build {ref}")
    if as_json:
        emit_json({"job": job_id, "site": ref, **job.result})
    else:
        console.print(
            f"{ref}: release [bold]{job.result['release']}[/], image digest "
            f"{job.result['digest']}, {human_size(job.result['size'])}, signed."
        )


def release_data(release: Release) -> dict[str, Any]:
    return {
        "release": release.number,
        "digest": release.digest,
        "size": release.size,
        "layers": release.layers,
        "base_digest": release.base_digest,
        "source": shown(release.source_ref),
        "revision": release.source_revision,
        "epoch": release.source_epoch,
        "sbom_digest": release.sbom_digest,
        "services": [
            {"engine": s["engine"], "version": s["version"], "digest": s["digest"]}
            for s in release.services or []
        ],
        "signing_key": release.signing_key_id,
        "tool_versions": release.tool_versions,
        "build_seconds": release.build_seconds,
        "created_at": release.created_at,
    }


@release_app.command("list")
def release_list(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    as_json: bool = JsonOption,
) -> None:
    """List the releases of a site."""
    with get(ctx).platform.sessions() as session:
        data = [release_data(r) for r in service.list_releases(session, get_site(session, ref))]
    if as_json:
        emit_json({"site": ref, "releases": data})
    else:
        table(
            f"Releases of {ref}",
            ["release", "digest", "size", "source", "built"],
            [
                (
                    d["release"],
                    d["digest"],
                    human_size(d["size"]),
                    d["revision"] or d["source"],
                    d["created_at"],
                )
                for d in data
            ],
        )


@release_app.command("verify")
def release_verify(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE[:RELEASE]"),
    as_json: bool = JsonOption,
) -> None:
    """Check digests of every blob, the SBOM and the signature; exit non-zero on any mismatch."""
    site_ref = parse_site_ref(ref, allow_release=True)
    platform = get(ctx).platform
    with platform.sessions() as session:
        release = service.get_release(session, get_site(session, site_ref), site_ref.release)
        reference = f"{site_ref.repository}:{release.number}"
        report = verify_release(
            OciLayout(platform.settings.oci_dir), release, platform.signer.public, reference
        )
    if as_json:
        emit_json(
            {
                "reference": reference,
                "digest": report.digest,
                "ok": report.ok,
                "checks": [c.__dict__ for c in report.checks],
            }
        )
    else:
        table(
            f"Verify {reference}",
            ["check", "result", "detail"],
            [(c.name, "ok" if c.ok else "FAILED", c.detail) for c in report.checks],
        )
    if not report.ok:
        raise VerificationFailed(f"{reference} failed verification: do not install it.")


@release_app.command("signature")
def release_signature(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE[:RELEASE]"),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the files to."),
    as_json: bool = JsonOption,
) -> None:
    """Write the signed payload, signature and public key for offline checks with OpenSSL."""
    site_ref = parse_site_ref(ref, allow_release=True)
    platform = get(ctx).platform
    with platform.sessions() as session:
        release = service.get_release(session, get_site(session, site_ref), site_ref.release)
        paths = write_signature_bundle(release, public_pem(platform.signer.public), output)
    if as_json:
        emit_json({k: str(v) for k, v in paths.items()})
        return
    console.print(
        "Verify offline with:\n  openssl pkeyutl -verify -pubin -inkey "
        f"{paths['public_key']} -rawin -in {paths['payload']} -sigfile {paths['signature']}"
    )
