"""websonic image export"""

from __future__ import annotations

from pathlib import Path

import typer

from websonic.builds import exports, service
from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json
from websonic.core.naming import parse_site_ref
from websonic.core.units import human_size
from websonic.sites.service import get_site

app = typer.Typer(help="Release images as files.", no_args_is_help=True)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(
        ..., metavar="CUSTOMER/SITE[:RELEASE]", help="The release (default: the newest)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="The archive to write, e.g. site.tar."),
    as_json: bool = JsonOption,
) -> None:
    """Write a release as a signed oci-archive FILE, with FILE.sha256, FILE.sig.json,
    FILE.payload.json, FILE.sig and FILE.pub.pem beside it (see docs/downloads.md)."""
    site_ref = parse_site_ref(ref, allow_release=True)
    cli = get(ctx)
    with cli.platform.transaction() as session:
        release = service.get_release(session, get_site(session, site_ref), site_ref.release)
        result = exports.export_release(cli.platform, session, release, output, actor=cli.actor)
    archive, files = result.archive, result.files
    if as_json:
        emit_json(
            {
                "reference": archive.reference,
                "digest": archive.digest,
                "sha256": archive.sha256,
                "size": archive.size,
                "files": {name: str(path) for name, path in files.items()},
            }
        )
        return
    console.print(
        f"{archive.reference} ({archive.digest}) written to {files['archive']}, "
        f"{human_size(archive.size)}, sha256 {archive.sha256}.\n"
        f"Check it: sha256sum -c {files['sha256']}\n"
        f"Load it:  podman load -i {files['archive']}",
        highlight=False,
    )
