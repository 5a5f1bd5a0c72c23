"""websonic spec CUSTOMER/SITE: the site's hosting specification (Markdown, HTML or JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json
from websonic.core.errors import InvalidInput
from websonic.hosting.spec import hosting_spec
from websonic.hosting.spec_render import FORMATS, render


def spec(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    fmt: str = typer.Option("md", "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    output: Path = typer.Option(None, "-o", "--output", help="Write to this file."),
    domains: list[str] = typer.Option(
        None, "--domain", help="A domain of the site (repeatable): DNS records to create."
    ),
    as_json: bool = JsonOption,
) -> None:
    """What the customer's server must provide for this site, for people and machines."""
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown format {fmt!r}: choose from {', '.join(FORMATS)}.")
    with get(ctx).platform.sessions() as session:
        document = hosting_spec(session, ref, domains=domains or ())
    text = render(document, fmt)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    if as_json:
        emit_json({"output": str(output), "format": fmt, "revision": document["revision"]})
    else:
        console.print(f"Wrote {output} (revision {document['revision']}).", highlight=False)
