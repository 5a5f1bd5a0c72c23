"""websonic customer add|list"""

from __future__ import annotations

import typer

from websonic.accounts import service
from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, table

app = typer.Typer(help="The agency's customers.", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Short name: lowercase letters, digits and '-'."),
    name: str = typer.Option(None, "--name", help="Full name, e.g. 'Acme SA'."),
    as_json: bool = JsonOption,
) -> None:
    """Register a customer."""
    cli = get(ctx)
    with cli.platform.transaction() as session:
        customer = service.add_customer(session, slug, name, actor=cli.actor)
        data = {"id": customer.id, "slug": customer.slug, "name": customer.name}
    if as_json:
        emit_json(data)
    else:
        console.print(f"Customer [bold]{data['slug']}[/] ({data['name']}) added.")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List customers."""
    with get(ctx).platform.sessions() as session:
        rows = [
            (c.slug, c.name, len(c.sites), c.created_at) for c in service.list_customers(session)
        ]
    if as_json:
        emit_json(
            {
                "customers": [
                    {"slug": r[0], "name": r[1], "sites": r[2], "created_at": r[3]} for r in rows
                ]
            }
        )
    else:
        table("Customers", ["slug", "name", "sites", "created"], rows)
