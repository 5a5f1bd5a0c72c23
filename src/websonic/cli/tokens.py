"""websonic token create|code|list|revoke"""

from __future__ import annotations

from typing import Any

import typer

from websonic.accounts import tokens
from websonic.accounts.models import ApiToken, Customer
from websonic.accounts.service import get_customer
from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, errors, table
from websonic.sites.models import Site
from websonic.sites.service import get_site

app = typer.Typer(help="Customers' tokens for the registry and downloads.", no_args_is_help=True)

SHOWN_ONCE = "This is the only time the token is shown: it cannot be displayed again."
CODE_NOTE = (
    "A one-time install code: good for one run of the one-liner, for 15 minutes. "
    "It goes in a header, never in a URL."
)


def token_data(token: ApiToken, customer: str, site: Site | None = None) -> dict[str, Any]:
    """What may be shown of a token: never its secret nor the secret's hash."""
    status = "active" if tokens.is_active(token) else "revoked" if token.revoked_at else "expired"
    return {
        "id": token.public_id,
        "customer": customer,
        "site": site.ref_name if site else None,
        "scope": token.scope,
        "description": token.description,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
        "status": status,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    owner_ref: str = typer.Argument(
        ...,
        metavar="CUSTOMER[/SITE]",
        help="The customer the token belongs to, and the one site it is for (install tokens "
        "always name their site; pull tokens of a site pull only that site).",
    ),
    scope: str = typer.Option("pull", "--scope", help=f"One of: {', '.join(tokens.SCOPES)}."),
    expires: str = typer.Option(
        "30d",
        "--expires",
        help="Lifetime: a number and m, h, d or w (at most 366 days; 90 for install tokens).",
    ),
    description: str = typer.Option("", "--description", help="What or who it is for."),
    as_json: bool = JsonOption,
) -> None:
    """Make a token; its secret is printed once and cannot be shown again."""
    lifetime = tokens.parse_duration(expires)
    cli = get(ctx)
    with cli.platform.transaction() as session:
        site = get_site(session, owner_ref) if "/" in owner_ref else None
        owner = site.customer if site else get_customer(session, owner_ref)
        made = tokens.create_token(
            session,
            owner,
            scope=scope,
            expires_in=lifetime,
            description=description,
            actor=cli.actor,
            site=site,
        )
        data = {**token_data(made.token, owner.slug, site), "token": made.secret}
        data["note"] = SHOWN_ONCE
    if as_json:
        emit_json(data)
        return
    expires_at = made.token.expires_at
    until = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never"
    console.print(f"Token {data['id']} for {owner_ref} ({scope}), valid until {until}:")
    typer.echo(made.secret)
    errors.print(SHOWN_ONCE, highlight=False)


@app.command("code")
def code(
    ctx: typer.Context,
    site_ref: str = typer.Argument(..., metavar="CUSTOMER/SITE", help="The site to install."),
    as_json: bool = JsonOption,
) -> None:
    """Make a one-time install code (15 minutes) and print the one-liner that uses it."""
    cli = get(ctx)
    portal = cli.platform.settings.public_url
    with cli.platform.transaction() as session:
        site = get_site(session, site_ref)
        made = tokens.create_install_code(session, site, actor=cli.actor)
        data = {**token_data(made.token, site.customer.slug, site), "code": made.secret}
        data["one_liner"] = one_liner(portal, site.ref_name, made.secret) if portal else None
        data["note"] = CODE_NOTE
    if as_json:
        emit_json(data)
        return
    typer.echo(made.secret)
    if data["one_liner"]:
        errors.print("Run on the server, as root:", highlight=False)
        typer.echo(data["one_liner"])
    else:
        errors.print("Set WEBSONIC_PUBLIC_URL to print the one-liner.", highlight=False)
    errors.print(CODE_NOTE, highlight=False)


def one_liner(portal: str, site: str, code: str) -> str:
    url = f"{portal.rstrip('/')}/install/{site}"
    return f"curl -fsSL -H 'Authorization: Bearer {code}' '{url}' | sudo sh"


@app.command("list")
def list_(
    ctx: typer.Context,
    customer: str = typer.Argument(..., help="Whose tokens."),
    as_json: bool = JsonOption,
) -> None:
    """List a customer's tokens (never their secrets)."""
    with get(ctx).platform.sessions() as session:
        owner = get_customer(session, customer)
        data = [
            token_data(t, owner.slug, session.get(Site, t.site_id) if t.site_id else None)
            for t in tokens.list_tokens(session, owner)
        ]
    if as_json:
        emit_json({"customer": customer, "tokens": data})
        return
    columns = ["id", "site", "scope", "description", "created_at", "expires_at", "last_used_at"]
    columns.append("status")
    titles = ["id", "site", "scope", "description", "created", "expires", "last used", "status"]
    table(f"Tokens of {customer}", titles, [[d[c] for c in columns] for d in data])


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: str = typer.Argument(..., metavar="TOKEN_ID", help="The token's public id."),
    as_json: bool = JsonOption,
) -> None:
    """Revoke a token at once (revoking it again changes nothing)."""
    cli = get(ctx)
    with cli.platform.transaction() as session:
        token = tokens.revoke_token(session, token_id, actor=cli.actor)
        owner = session.get(Customer, token.customer_id) if token.customer_id else None
        data = token_data(token, owner.slug if owner else "")
    if as_json:
        emit_json(data)
    else:
        console.print(f"Token {token_id} revoked.")
