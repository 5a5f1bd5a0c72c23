"""websonic token create|list|revoke"""

from __future__ import annotations

from typing import Any

import typer

from websonic.accounts import tokens
from websonic.accounts.models import ApiToken, Customer
from websonic.accounts.service import get_customer
from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, errors, table

app = typer.Typer(help="Customers' tokens for the registry and downloads.", no_args_is_help=True)

SHOWN_ONCE = "This is the only time the token is shown: it cannot be displayed again."


def token_data(token: ApiToken, customer: str) -> dict[str, Any]:
    """What may be shown of a token: never its secret nor the secret's hash."""
    status = "active" if tokens.is_active(token) else "revoked" if token.revoked_at else "expired"
    return {
        "id": token.public_id,
        "customer": customer,
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
    customer: str = typer.Argument(..., help="The customer the token belongs to."),
    scope: str = typer.Option("pull", "--scope", help=f"One of: {', '.join(tokens.SCOPES)}."),
    expires: str = typer.Option(
        "30d", "--expires", help="Lifetime: a number and m, h, d or w (at most 366 days)."
    ),
    description: str = typer.Option("", "--description", help="What or who it is for."),
    as_json: bool = JsonOption,
) -> None:
    """Make a token; its secret is printed once and cannot be shown again."""
    lifetime = tokens.parse_duration(expires)
    cli = get(ctx)
    with cli.platform.transaction() as session:
        owner = get_customer(session, customer)
        made = tokens.create_token(
            session,
            owner,
            scope=scope,
            expires_in=lifetime,
            description=description,
            actor=cli.actor,
        )
        data = {**token_data(made.token, owner.slug), "token": made.secret, "note": SHOWN_ONCE}
    if as_json:
        emit_json(data)
        return
    expires_at = made.token.expires_at
    until = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never"
    console.print(f"Token {data['id']} for {customer} ({scope}), valid until {until}:")
    typer.echo(made.secret)
    errors.print(SHOWN_ONCE, highlight=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    customer: str = typer.Argument(..., help="Whose tokens."),
    as_json: bool = JsonOption,
) -> None:
    """List a customer's tokens (never their secrets)."""
    with get(ctx).platform.sessions() as session:
        owner = get_customer(session, customer)
        data = [token_data(t, owner.slug) for t in tokens.list_tokens(session, owner)]
    if as_json:
        emit_json({"customer": customer, "tokens": data})
        return
    columns = ["id", "scope", "description", "created_at", "expires_at", "last_used_at", "status"]
    titles = ["id", "scope", "description", "created", "expires", "last used", "status"]
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
