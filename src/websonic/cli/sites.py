"""websonic site add|list|show|secret"""

from __future__ import annotations

import sys
from typing import Any

import typer

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, table
from websonic.core.errors import InvalidInput
from websonic.sites import service
from websonic.sites.models import Site
from websonic.sites.source import shown

app = typer.Typer(help="Customer websites.", no_args_is_help=True)
secret_app = typer.Typer(help="Secret env values of a site (kept encrypted).", no_args_is_help=True)
app.add_typer(secret_app, name="secret")


def site_data(site: Site) -> dict[str, Any]:
    return {
        "site": site.ref_name,
        "kind": site.kind,
        "source": shown(site.source),  # a git URL's password as ***
        "ref": site.ref,
        "epoch": site.epoch,
        "manifest_detected": site.manifest_detected,
        "manifest": site.manifest,
        "secrets_set": sorted(s.name for s in site.secrets),
        "releases": len(site.releases),
    }


@app.command("add")
def add(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    source: str = typer.Option(..., "--source", help="A folder, or a git URL/repository#REF."),
    epoch: int = typer.Option(
        None, "--epoch", help="Folder sources: build timestamp (default 1980-01-01)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register a site; its websonic.toml is read and checked (or its kind detected)."""
    cli = get(ctx)
    with cli.platform.transaction() as session:
        site = service.add_site(
            session,
            cli.platform.runner,
            ref,
            source,
            actor=cli.actor,
            epoch=epoch,
            box=cli.platform.secrets,
        )
        data = site_data(site)
    if as_json:
        emit_json(data)
        return
    note = " (kind detected: no websonic.toml)" if data["manifest_detected"] else ""
    console.print(f"Site [bold]{data['site']}[/] added: {data['kind']}{note}.")


@app.command("list")
def list_(
    ctx: typer.Context,
    customer: str = typer.Argument(None, help="Only this customer's sites."),
    as_json: bool = JsonOption,
) -> None:
    """List sites."""
    with get(ctx).platform.sessions() as session:
        sites = [site_data(s) for s in service.list_sites(session, customer)]
    if as_json:
        emit_json({"sites": sites})
    else:
        table(
            "Sites",
            ["site", "kind", "source", "releases"],
            [
                (
                    s["site"],
                    s["kind"],
                    s["source"] + (f"#{s['ref']}" if s["ref"] else ""),
                    s["releases"],
                )
                for s in sites
            ],
        )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    as_json: bool = JsonOption,
) -> None:
    """Show a site and its manifest."""
    with get(ctx).platform.sessions() as session:
        data = site_data(service.get_site(session, ref))
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            console.print(f"[bold]{key}[/]: {value}", highlight=False)


@secret_app.command("set")
def secret_set(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    name: str = typer.Argument(..., help="A name declared { secret = true } in websonic.toml."),
) -> None:
    """Set a secret value, read from standard input (never from the command line)."""
    if sys.stdin.isatty():
        value = typer.prompt(f"Value of {name}", hide_input=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise InvalidInput("The secret value is empty.")
    cli = get(ctx)
    with cli.platform.transaction() as session:
        site = service.get_site(session, ref)
        service.set_secret(session, cli.platform.secrets, site, name, value, actor=cli.actor)
    console.print(f"Secret {name} of {ref} set (stored encrypted).")
